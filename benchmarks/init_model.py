"""Random init of a Qwen2.5-shaped model: `init_model` (one small jit per distinct leaf) against the
old single jit that builds the whole `Decoder`. Prints one JSON object.

python benchmarks/init_model.py --size=0.5b --dtype=float32            # CPU or GPU
python benchmarks/init_model.py --size=1.5b --dtype=bfloat16 --methods=per_leaf
python benchmarks/init_model.py --tiny                                 # seconds, for tests

Each method runs in a fresh subprocess (so neither profits from the other's compile cache);
``seconds`` is the wall time from the call to parameters ready on device, compile included;
``compile_seconds`` (single jit only) is lowering + compiling of that one program. Both methods
make bitwise the same parameters (``tests/models/test_init.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

_CHILD = """
import json, sys, time
sys.path.insert(0, {here!r})
import jax
from flax import nnx
from common import SIZES  # benchmarks/common.py
from lenrl import models
from lenrl.models.checkpoint import abstract_model, param_shardings
from lenrl.models.transformer import Decoder

cfg = models.ModelConfig(model_type="qwen2", qkv_bias=True, tie_word_embeddings=True,
                         param_dtype={dtype!r}, dtype={dtype!r}, **SIZES[{size!r}])
jax.devices()  # backend start-up is not init time
out = {{}}
t0 = time.perf_counter()
if {method!r} == "per_leaf":
    state = nnx.state(models.init_model(cfg, seed=0))
else:  # what init_model did before: one jit that runs the module's constructor
    _, abs_state = abstract_model(cfg)
    make = jax.jit(lambda: nnx.state(Decoder(cfg, rngs=nnx.Rngs(0))),
                   out_shardings=param_shardings(abs_state, None))
    compiled = make.lower().compile()
    out["compile_seconds"] = time.perf_counter() - t0
    state = compiled()
jax.block_until_ready(jax.tree.leaves(state))
out["seconds"] = time.perf_counter() - t0
out["params"] = sum(x.size for x in jax.tree.leaves(state))
print(json.dumps(out))
"""


def run_one(method: str, size: str, dtype: str, timeout: int) -> dict:
    code = _CHILD.format(here=HERE, method=method, size=size, dtype=dtype)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"status": f"did not finish in {timeout} s"}
    if proc.returncode != 0:
        return {"status": "failed: " + proc.stderr.strip().splitlines()[-1][:300]}
    return {"status": "ok", **json.loads(proc.stdout.strip().splitlines()[-1])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="0.5b", help="0.5b | 1.5b | smoke (benchmarks/common.py)")
    ap.add_argument("--dtype", default="float32", help="param dtype: float32 | bfloat16")
    ap.add_argument("--methods", default="per_leaf,single_jit", help="comma-separated")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per method")
    ap.add_argument("--tiny", action="store_true", help="the smoke shape (CPU, seconds)")
    args = ap.parse_args(argv)
    size = "smoke" if args.tiny else args.size
    import jax

    result = {
        "benchmark": "init_model",
        "size": size,
        "dtype": args.dtype,
        "device": str(jax.devices()[0].device_kind),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "methods": {m: run_one(m, size, args.dtype, args.timeout) for m in args.methods.split(",")},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
