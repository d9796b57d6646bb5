"""The warm start with length buckets (``sft.bucketing``), padded or packed: the loss is the true
token mean of each variable-size batch, each bucket compiles once, a resumed run equals an
uninterrupted one, and two processes train like one (sharded rows, packed per process)."""

import json
import os
import sys

import jax
import multidevice
import numpy as np
import pytest
from flax import nnx

from lenrl import config_files
from lenrl.train import sft
from lenrl.train.metrics import read_metrics
from lenrl.train.multihost import to_host
from lenrl.train.run import Run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _config(steps=8, packing=False, bucketing=True):
    """configs/default.py:smoke with one layer, warm start only, a budget of 1024 tokens (buckets
    of 21, 12, 9 and 7 examples)."""
    c = config_files.load(os.path.join(ROOT, "configs", "default.py"), "smoke")
    c.model.num_layers = 1
    c.data.num_eval = 4
    c.rl.steps = 0
    c.sft.steps = steps
    c.sft.packing = packing
    c.sft.bucketing = bucketing
    c.sft.token_budget = 1024
    c.checkpoint.every = 1
    return c


def _nll(workdir):
    return {r["step"]: r for r in read_metrics(workdir, "sft")}


def _on_write(run, hook):
    """Calls ``hook(step, metrics)`` at every metric row of ``run`` (before writing it)."""
    write = run.writer.write

    def wrapped(step, metrics, *, phase):
        hook(step, metrics)
        write(step, metrics, phase=phase)

    run.writer.write = wrapped


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_nll_is_the_token_mean_of_the_bucket_batch(tmp_path, packing):
    """Step 1's nll against log-probs of each example alone (no padding, no packing). A small
    window makes the first batch a short one: 3 examples padded to the bucket's 12."""
    config = _config(steps=1, packing=packing)
    config.sft.bucket_window = 32
    run = Run(config, tmp_path)
    batch = next(sft._bucketed_iterator(run, run.rows(1), 1, None))
    assert len(batch["prompt_ids"]) < batch["bucket_size"]
    # Each example from position 0, right-padded (causal: padding after it changes nothing).
    examples = list(zip(batch["prompt_ids"], batch["completion_ids"], strict=True))
    tokens = np.zeros((len(examples), 144), np.int32)
    mask = np.zeros(tokens.shape, bool)
    for i, (p, c) in enumerate(examples):
        tokens[i, : len(p) + len(c)], mask[i, : len(p) + len(c)] = p + c, True
    model = nnx.merge(run.graphdef, run.params)
    logits = np.asarray(model(tokens, attention_mask=mask), np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    total, count = 0.0, 0
    for i, (p, c) in enumerate(examples):
        at = np.arange(len(p) - 1, len(p) + len(c) - 1)  # the logits that predict c
        total, count = total - logp[i, at, c].sum(), count + len(c)
    sft.run_sft(run)
    run.writer.close()
    row = _nll(tmp_path)[1]
    assert row["examples"] == len(batch["prompt_ids"]) and row["bucket_len"] == batch["bucket_len"]
    np.testing.assert_allclose(row["nll"], total / count, rtol=2e-6)


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_each_bucket_compiles_once(tmp_path, packing):
    """Compiles (JAX's monitoring event, any program in the process) happen only at steps that
    bring a bucket not seen before: one update shape per bucket."""
    config = _config(steps=10, packing=packing)
    config.checkpoint.every = 100  # the last step's save comes after its metric row
    run = Run(config, tmp_path)
    events, marks = [], []

    def listener(name, duration, **kwargs):
        if name == COMPILE_EVENT:
            events.append(name)

    _on_write(run, lambda step, m: marks.append((step, int(m["bucket_len"]), len(events))))
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        sft.run_sft(run)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        run.writer.close()
    seen, compiled_at, before = set(), [], 0
    for step, bucket, count in marks:
        new = bucket not in seen
        seen.add(bucket)
        if count > before:
            compiled_at.append(step)
        assert new or count == before, f"step {step} (bucket {bucket} again) compiled"
        before = count
    assert len(seen) >= 3 and len(marks) > len(seen)  # several buckets, some repeated
    assert len(compiled_at) <= len(seen)


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, packing):
    """Stopped after step 3 (checkpoint 3 written, step 4 dies), then restarted on the same
    workdir: the same batches (the bucketed iterator's state is in the checkpoint), losses and
    parameters as a run that never stopped."""
    whole = Run(_config(steps=6, packing=packing), tmp_path / "whole")
    sft.run_sft(whole)
    whole.writer.close()

    class Crash(Exception):
        pass

    def crash(step, m):
        if step == 4:
            raise Crash

    first = Run(_config(steps=6, packing=packing), tmp_path / "resumed")
    _on_write(first, crash)
    with pytest.raises(Crash):
        sft.run_sft(first)
    first.writer.close()
    data = json.loads((tmp_path / "resumed/checkpoints/sft/3/data/metadata").read_text())
    assert set(data["lenrl_per_process"][0]) == {"window", "batch"}
    resumed = Run(_config(steps=6, packing=packing), tmp_path / "resumed")
    sft.run_sft(resumed)
    resumed.writer.close()

    a, b = _nll(tmp_path / "whole"), _nll(tmp_path / "resumed")
    assert sorted(b) == list(range(1, 7))
    for step in range(1, 7):
        assert b[step]["bucket_len"] == a[step]["bucket_len"], step
        assert b[step]["examples"] == a[step]["examples"], step
        np.testing.assert_allclose(b[step]["nll"], a[step]["nll"], rtol=1e-6)
    pa, pb = to_host(whole.params), to_host(resumed.params)
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------------------------------
# Several processes.

WORKER = """
import json, os, sys
import numpy as np
from lenrl import config_files, distributed
distributed.initialize()
import jax
from lenrl.train import sft
from lenrl.train.metrics import read_metrics
from lenrl.train.multihost import to_host
from lenrl.train.run import Run

root, out = sys.argv[1], sys.argv[2]
result = {}
for name, packing, bucketing in VARIANTS:
    c = config_files.load(os.path.join(root, "configs", "default.py"), "smoke")
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 2, 2, 2  # the batch over both processes
    c.model.num_layers = 1
    c.data.num_eval = 4
    c.rl.steps = 0
    c.sft.steps = STEPS
    c.sft.packing, c.sft.bucketing = packing, bucketing
    c.sft.token_budget = 1024
    c.checkpoint.every = STEPS
    workdir = os.path.join(out, name)
    run = Run(c, workdir)
    sft.run_sft(run)
    run.writer.close()
    params = {str(i): x for i, x in enumerate(jax.tree.leaves(to_host(run.params)))}
    if jax.process_index() == 0:
        np.savez(os.path.join(workdir, "params.npz"), **params)
    meta = os.path.join(workdir, "checkpoints", "sft", str(STEPS), "data", "metadata")
    data = json.loads(open(meta).read())
    result[name] = dict(
        rows=[{k: r[k] for k in ("nll", "examples", "bucket_len") if k in r}
              for r in read_metrics(workdir, "sft")],
        data=data["lenrl_per_process"],
    )
result["process_count"] = jax.process_count()
print(json.dumps(result), flush=True)
"""
VARIANTS = [("packed", True, False), ("bucketed_packed", True, True), ("bucketed", False, True)]
STEPS = 3


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    """Two processes x 4 fake CPU devices against one process x 8 on the same (2, 2, 2) mesh: each
    process packs (or pads) only its own examples; the global batches are the same, so losses and
    parameters agree to f32 rounding (different row layouts and gloo all-reduces change the
    order of the sums; rtol 1e-5 as in test_multiprocess)."""
    code = WORKER.replace("VARIANTS", repr(VARIANTS)).replace("STEPS", str(STEPS))
    one, two = tmp_path / "one", tmp_path / "two"
    argv = [sys.executable, "-c", code, ROOT]
    launches = multidevice.one_and_two_processes(argv + [str(one)], argv + [str(two)])
    ref, p0, p1 = multidevice.run_all(launches, timeout=600, logdir=str(tmp_path))
    assert (ref["process_count"], p0["process_count"]) == (1, 2)
    for name, _, bucketing in VARIANTS:
        a, b = ref[name]["rows"], p0[name]["rows"]
        assert len(a) == len(b) == STEPS, name
        for x, y in zip(a, b, strict=True):
            assert {k: v for k, v in x.items() if k != "nll"} == {
                k: v for k, v in y.items() if k != "nll"
            }
            np.testing.assert_allclose(y["nll"], x["nll"], rtol=1e-5, err_msg=name)
        if bucketing:  # several buckets of multiples of the 4 data shards
            assert len({r["bucket_len"] for r in a}) >= 2 and all(r["examples"] % 4 == 0 for r in a)
        states = p0[name]["data"]
        assert len(states) == 2 and states[0] == states[1] == p1[name]["data"][0], name
        pa = np.load(one / name / "params.npz")
        pb = np.load(two / name / "params.npz")
        for k in pa:
            np.testing.assert_allclose(pb[k], pa[k], rtol=1e-5, atol=1e-6, err_msg=f"{name} {k}")
