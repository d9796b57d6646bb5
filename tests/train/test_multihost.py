"""`lenrl.train.multihost` on two real processes (jax.distributed, 4 fake CPU devices each)."""

import multidevice

CODE = """
import json
import jax, numpy as np
from lenrl import distributed
distributed.initialize()
from lenrl.sharding import AxisRules, MeshConfig, make_mesh
from lenrl.train import multihost as mh

pid = jax.process_index()
out = {}
for shape in [(2, 2, 2), (8, 1, 1), (1, 1, 8)]:
    rows = mh.Rows.of(make_mesh(MeshConfig(*shape)), AxisRules(), 16)
    local = np.arange(16)[rows.local] * 10  # this process's rows of a known global array
    both = rows.gather({"x": local, "y": local[:, None] * np.ones((1, 3), np.float32)})
    g = rows.to_global(local)
    out[str(shape)] = dict(
        lo=rows.lo, hi=rows.hi, index=rows.index, count=rows.count,
        x=both["x"].tolist(), y_ok=bool((both["y"][:, 2] == both["x"]).all()),
        host=mh.to_host(g).tolist(),
    )
out["max"] = mh.agree_max(3 + 4 * pid)
out["bcast"] = mh.broadcast_json({"from": pid, "s": "é" * (1 + pid)})
out["all"] = mh.gather_json({"p": pid, "pad": "x" * (5 * pid)})
out["main"] = mh.is_main()
print(json.dumps(out))
"""


def test_rows_gather_and_json_across_two_processes():
    p0, p1 = multidevice.run_processes(CODE)
    want = [10 * i for i in range(16)]
    for shape, block in [("(2, 2, 2)", 8), ("(8, 1, 1)", 8), ("(1, 1, 8)", 16)]:
        for pid, r in enumerate((p0[shape], p1[shape])):
            assert r["hi"] - r["lo"] == block, shape
            if block == 8:  # batch split over the processes: process i holds rows 8i .. 8i+7
                assert (r["lo"], r["index"], r["count"]) == (8 * pid, pid, 2), shape
            else:  # batch replicated (tensor-parallel over all 8): both hold all rows
                assert (r["lo"], r["index"], r["count"]) == (0, 0, 1), shape
            assert r["x"] == want and r["host"] == want and r["y_ok"], shape
    for r in (p0, p1):
        assert r["max"] == 7
        assert r["bcast"] == {"from": 0, "s": "é"}
        assert r["all"] == [{"p": 0, "pad": ""}, {"p": 1, "pad": "xxxxx"}]
    assert (p0["main"], p1["main"]) == (True, False)
