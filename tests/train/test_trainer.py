"""The whole run on the smoke config: outputs, resume after SIGKILL, and bad-config errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = [
    f"--config={ROOT}/configs/default.py:smoke",
    "--config.checkpoint.every=1",
    "--config.rl.steps=4",
]


def _launch(workdir, *extra, wait=True):
    cmd = [sys.executable, "-m", "lenrl.launch", *SMOKE, f"--workdir={workdir}", *extra]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if not wait:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _rows(workdir, phase):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [r for r in map(json.loads, f) if r["phase"] == phase and "reward" in r]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    proc = _launch(workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir, proc


@pytest.mark.slow
def test_smoke_run_writes_everything(finished):
    workdir, proc = finished
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) >= {"accuracy_before", "accuracy_after", "length_before", "length_after"}
    for name in (
        "metrics.jsonl",
        "training.png",
        "budget_curve.png",
        "summary.json",
        "eval_before.json",
        "eval_after.json",
        "export/config.json",
        "export/model.safetensors",
        "export/tokenizer.json",
    ):
        assert (workdir / name).exists(), name
    assert list((workdir / "tb").glob("events.out.tfevents.*"))
    rows = _rows(workdir, "rl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in (
        "reward",
        "accuracy",
        "length_mean",
        "length_median",
        "length_p90",
        "truncation_rate",
        "base_budget",
        "kl",
        "entropy",
        "clip_frac",
        "grad_norm",
        "learning_rate",
        "tokens_per_s",
        "sample_time",
        "update_time",
    ):
        assert all(np.isfinite(r[key]) for r in rows), key
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["after"]["num_problems"] == 16


@pytest.mark.slow
def test_export_loads_in_transformers(finished):
    import torch
    import transformers

    workdir, _ = finished
    tok = transformers.AutoTokenizer.from_pretrained(workdir / "export")
    model = transformers.AutoModelForCausalLM.from_pretrained(workdir / "export")
    ids = tok("<think> 1 + 2 = 3 </think>", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()


@pytest.mark.slow
def test_sigkill_mid_step_then_resume_matches_uninterrupted(finished, tmp_path):
    reference, _ = finished
    workdir = tmp_path / "killed"
    proc = _launch(workdir, wait=False)
    deadline = time.time() + 600
    # Wait until RL step 2 is logged (checkpoint 2 is being written or done), then kill -9.
    while time.time() < deadline and len(_rows(workdir, "rl")) < 2:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_rows(workdir, "rl")) < 4, "the run finished before it could be killed"
    resumed = _launch(workdir)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    a = load_file(reference / "export" / "model.safetensors")
    b = load_file(workdir / "export" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:  # bitwise: same data, same keys, same programs on CPU
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ref_rows = {r["step"]: r for r in _rows(reference, "rl")}
    for r in _rows(workdir, "rl"):  # every step, re-run or not, saw the same samples
        assert r["reward"] == ref_rows[r["step"]]["reward"]
        assert r["length_mean"] == ref_rows[r["step"]]["length_mean"]


@pytest.mark.slow
def test_packed_rl_update_matches_padded(tmp_path):
    """rl.packing=True: the same rollouts (the warm start is identical), and the first update's
    loss, KL, entropy and gradient norm equal the padded run's to f32 rounding. One minibatch:
    with several, packing forms them by balancing tokens, not by the padded path's shuffle."""
    one = ("--config.rl.steps=1", "--config.rl.num_minibatches=1")
    runs = {}
    for name, extra in (("padded", ()), ("packed", ("--config.rl.packing=True",))):
        proc = _launch(tmp_path / name, *one, *extra)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        runs[name] = _rows(tmp_path / name, "rl")[0]
    padded, packed = runs["padded"], runs["packed"]
    for k in ("reward", "accuracy", "length_mean"):
        assert packed[k] == padded[k], k
    for k in ("loss", "pg_loss", "kl", "entropy", "grad_norm", "clip_frac"):
        np.testing.assert_allclose(packed[k], padded[k], rtol=2e-4, atol=1e-6, err_msg=k)
    assert 0.0 <= packed["padding_fraction"] < 1.0


@pytest.mark.slow
def test_packed_warm_start_matches_padded(finished, tmp_path):
    """sft.packing=True: every warm-start step's loss equals the padded run's to f32 rounding."""
    workdir, _ = finished
    proc = _launch(tmp_path, "--config.sft.packing=True", "--config.rl.steps=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    path = "metrics.jsonl"

    def nll(d):
        with open(os.path.join(d, path)) as f:
            return [r["nll"] for r in map(json.loads, f) if r["phase"] == "sft" and "nll" in r]

    padded, packed = nll(workdir), nll(tmp_path)
    assert len(packed) == len(padded) > 0
    np.testing.assert_allclose(packed, padded, rtol=1e-4)


def test_unknown_config_key_stops_before_any_work(tmp_path):
    proc = _launch(tmp_path / "w", "--config.rl.stepz=3")
    assert proc.returncode != 0
    assert "unknown config key" in proc.stderr and "rl.stepz" in proc.stderr
    assert "steps" in proc.stderr  # the suggestion
    assert not (tmp_path / "w").exists()


def test_wrong_type_names_the_key(tmp_path):
    proc = _launch(tmp_path / "w", "--config.rl.steps=abc")
    assert proc.returncode != 0
    assert "--config.rl.steps" in proc.stderr


def test_missing_checkpoint_dir_says_what_to_do(tmp_path):
    proc = _launch(
        tmp_path / "w", f"--config.model.path={tmp_path}/nowhere", "--config.model.tokenizer="
    )
    assert proc.returncode != 0
    assert "config.model.path" in proc.stderr and "local" in proc.stderr


def test_unknown_penalty_lists_valid_names(tmp_path):
    proc = _launch(tmp_path / "w", "--config.penalty.name=shorter")
    assert proc.returncode != 0
    assert "shorter" in proc.stderr and "alp" in proc.stderr and "hapo" in proc.stderr
