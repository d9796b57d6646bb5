"""Benchmarks: train_step.py's lenrl side runs in tiny mode with sane numbers; the MFU numerator.

The benchmark is a script (it imports its sibling ``common`` module), so it runs as a subprocess
exactly as on the GPU host; TRL / Tunix / torch are not needed (``--skip-torch``). The model-FLOPs
formula of ``common.train_flops`` is checked against XLA's own count of the compiled gradient.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from lenrl import models
from lenrl.train.logprobs import completion_logprobs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "train_step.py")


def _load_common():
    spec = importlib.util.spec_from_file_location(
        "bench_common", os.path.join(ROOT, "benchmarks", "common.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "train_step.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, SCRIPT, "--tiny", "--skip-torch", "--variants", "none:xla,dots:cudnn"]
    proc = subprocess.run(
        [*cmd, "--out", str(out)], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)
    with open(out) as f:
        assert json.load(f) == printed  # --out holds the same report
    return printed


def _positive(x):
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_report_fields(report):
    for key in ("device", "backend", "setup", "flops_formula", "peak_tflops", "sizes"):
        assert key in report, key
    assert _positive(report["peak_tflops"])
    assert "6 * N_dense" in report["flops_formula"]
    (row,) = report["sizes"]
    assert row["size"] == "smoke" and _positive(row["params"])
    assert _positive(row["model_tflops_per_step"])
    assert "torch_eager" not in row  # --skip-torch


def test_lenrl_variant_is_timed(report):
    (row,) = report["sizes"]
    timed, cudnn = row["lenrl"]
    assert timed["variant"] == "none:xla" and row["lenrl_best"] == "none:xla"
    for key in ("step_s", "tokens_per_s", "model_tflops_per_s", "mfu", "compile_s", "grad_norm"):
        assert _positive(timed[key]), (key, timed[key])
    assert math.isfinite(timed["loss"])
    assert timed["mfu"] < 1.0  # a model-FLOPs rate above the measured peak would be a bug
    setup = report["setup"]
    tokens = setup["batch"] * setup["seq_len"]
    assert timed["tokens_per_s"] == pytest.approx(tokens / timed["step_s"])
    flops = row["model_tflops_per_step"] * 1e12
    assert timed["mfu"] == pytest.approx(flops / timed["step_s"] / (report["peak_tflops"] * 1e12))
    # On a CPU the cudnn variant is skipped with a reason, not an error.
    assert cudnn["variant"] == "dots:cudnn" and cudnn["status"].startswith("skipped")


@pytest.mark.parametrize(
    "dims", [{}, dict(hidden_size=128, intermediate_size=512, vocab_size=1024)]
)
def test_train_flops_matches_xla_cost_analysis(dims):
    """XLA's FLOP count of forward + backward of the log-prob loss is the formula's plus only the
    elementwise work (norms, softmax, SiLU, rope) it leaves out: within [1.0, 1.15] of it."""
    common = _load_common()
    cfg = common.model_config("smoke", **dims)
    graphdef, state = models.abstract_model(cfg)
    b, t, tp = 2, 64, 16

    def loss(state, tokens_BxT):
        model = nnx.merge(graphdef, state)
        return completion_logprobs(model, tokens_BxT, jnp.ones_like(tokens_BxT, bool), tp)[0].sum()

    tokens = jax.ShapeDtypeStruct((b, t), jnp.int32)
    cost = jax.jit(jax.grad(loss)).lower(state, tokens).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    ratio = cost["flops"] / common.train_flops(cfg, b, t, t - tp)
    assert 1.0 <= ratio <= 1.15, ratio
