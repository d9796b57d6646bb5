"""Two processes on 127.0.0.1 (``jax.distributed``, 4 fake CPU devices each, gloo collectives)
train like one process with 8 devices on the same (2, 2, 2) mesh, and resume across both.

The worker (`tests/multiprocess_worker.py`) runs 2 SFT + 2 RL steps of a one-layer smoke config;
the two-process run stops after RL step 1 and is restarted, so its step 2 comes from restored
checkpoints (parameters, optimizer, penalty state, each process's data iterator).

Tolerance: the data, the sampled tokens, rewards and lengths are identical; losses, gradient norms
and parameters agree to f32 rounding (rtol 1e-5, atol 1e-6; about 1e-7 is seen), not bitwise:
cross-process all-reduces (gloo) add the shards' partial sums in another order than XLA's
in-process CPU all-reduce, and the sampler's prompts enter batch-sharded instead of replicated.
"""

import json
import os
import sys

import multidevice
import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "multiprocess_worker.py")


def _rows(workdir, phase, key):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["phase"] == phase and key in r]


@pytest.mark.slow
def test_two_processes_match_one_process_and_resume(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    cmd = [sys.executable, WORKER]
    launches = multidevice.one_and_two_processes(cmd + [str(one)], cmd + [str(two), "--resume"])
    results = multidevice.run_all(launches, timeout=600, logdir=str(tmp_path))

    ref, p0, p1 = results
    assert (ref["process_count"], ref["device_count"], ref["started"]) == (1, 8, False)
    for i, r in enumerate((p0, p1)):
        assert (r["process_index"], r["process_count"], r["device_count"]) == (i, 2, 8)
        assert r["started"] is True
    assert p0["after"] == p1["after"]  # every process computes the same host-side results
    for k, v in ref["after"].items():
        assert p0["after"][k] == pytest.approx(v, nan_ok=True), k

    # The same curves: SFT losses, then RL rewards, lengths and losses step by step.
    np.testing.assert_allclose(
        [r["nll"] for r in _rows(two, "sft", "nll")],
        [r["nll"] for r in _rows(one, "sft", "nll")],
        rtol=1e-5,
    )
    rl_one, rl_two = _rows(one, "rl", "reward"), _rows(two, "rl", "reward")
    assert [r["step"] for r in rl_two] == [1, 2]  # step 1 was not run again: it resumed
    for a, b in zip(rl_one, rl_two, strict=True):
        assert (a["reward"], a["length_mean"]) == (b["reward"], b["length_mean"])
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)

    # The same parameters at the end (exported once, by process 0, from a collective gather).
    a = load_file(one / "export" / "model.safetensors")
    b = load_file(two / "export" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)

    # Each process's iterator state is in the checkpoint; they drew in lockstep.
    data = json.loads((two / "checkpoints" / "rl" / "2" / "data" / "metadata").read_text())
    states = data["lenrl_per_process"]
    assert len(states) == 2 and states[0] == states[1] and states[0]["next_index"] == 2
