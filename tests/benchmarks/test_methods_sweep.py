"""benchmarks/methods.py (the length-method sweep of issue #8) and its report functions.

The aggregation, table and plots run on fabricated per-run records (statistics checked against
NumPy); the sweep's configs are checked to reach `python -m lenrl.launch` intact through its
`--config.*` flags, at every scale; one slow test runs the whole script at smoke size.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from lenrl.data.synthetic import SyntheticConfig, synthetic_record
from lenrl.data.tokenizer import build_synthetic_tokenizer
from lenrl.train import setup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "benchmarks")
if BENCH not in sys.path:
    sys.path.append(BENCH)  # methods.py imports its sibling methods_report


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", os.path.join(BENCH, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load("methods_report")
sweep = _load("methods")
NAMES = ("none", "alp", "tlts", "siri", "l1_exact", "l1_max")
SEEDS = (0, 1, 2)


def _metrics(rng, length):
    m = {
        "accuracy": rng.uniform(0.5, 1),
        "length_mean": length,
        "acc_per_1k_tokens": rng.uniform(5, 40),
        "truncation_rate": rng.uniform(0, 0.1),
        "format_ok": 1.0,
    }
    for d in (2, 3, 4):
        m[f"accuracy/d{d}"] = rng.uniform(0.4, 1)
        m[f"length_mean/d{d}"] = rng.uniform(10, 90)
    return m


def fake_runs(seed: int = 0) -> list[dict]:
    """Per-run records shaped like the sweep's: summary + method, seed, wall_s, curves, L1."""
    rng = np.random.default_rng(seed)
    runs = []
    for name in NAMES:
        for s in SEEDS:
            before = _metrics(np.random.default_rng(100 + s), 45.0 + s)  # one per seed
            after = _metrics(rng, rng.uniform(15, 50))
            steps = list(range(1, 11))
            run = {
                "before": before,
                "after": after,
                "length_reduction": 1 - after["length_mean"] / before["length_mean"],
                "accuracy_change": after["accuracy"] - before["accuracy"],
                "method": name,
                "seed": s,
                "wall_s": rng.uniform(60, 120),
                "curves": {
                    "step": steps,
                    "length_mean": rng.uniform(10, 60, 10).tolist(),
                    "accuracy": rng.uniform(0.5, 1, 10).tolist(),
                    "base_budget": [128 - 8 * (t // 3) for t in steps],
                    "eval_step": [0, 5, 10],
                    "eval_accuracy": rng.uniform(0.5, 1, 3).tolist(),
                    "eval_length_mean": rng.uniform(10, 60, 3).tolist(),
                },
            }
            if name.startswith("l1"):
                run["l1_targets"] = [
                    {"target": t, "length_mean": t * rng.uniform(0.8, 1.2), "accuracy": 0.9}
                    for t in (16, 44, 72, 100, 128)
                ]
            runs.append(run)
    return runs


def test_aggregate_matches_numpy():
    runs = fake_runs()
    results = report.aggregate(runs, baseline="none")
    assert list(results["methods"]) == list(NAMES)
    for name in NAMES:
        rs = [r for r in runs if r["method"] == name]
        entry = results["methods"][name]
        assert entry["seeds"] == list(SEEDS)
        for key in (*report.METRICS, "accuracy/d3", "length_mean/d4"):
            x = np.array([r["after"][key] for r in rs])
            np.testing.assert_allclose(entry[key]["mean"], np.mean(x), rtol=1e-12)
            np.testing.assert_allclose(entry[key]["std"], np.std(x, ddof=1), rtol=1e-12)
        for key in report.RUN_SCALARS:
            x = np.array([r[key] for r in rs])
            np.testing.assert_allclose(entry[key]["mean"], np.mean(x), rtol=1e-12)
            np.testing.assert_allclose(entry[key]["std"], np.std(x, ddof=1), rtol=1e-12)
    befores = [next(r["before"] for r in runs if r["seed"] == s) for s in SEEDS]
    x = np.array([b["length_mean"] for b in befores])
    warm = results["warm_start"]["length_mean"]
    np.testing.assert_allclose([warm["mean"], warm["std"]], [x.mean(), x.std(ddof=1)])


def test_one_seed_has_zero_spread_and_order_is_kept():
    runs = [r for r in fake_runs() if r["seed"] == 1]
    results = report.aggregate(runs, order=("tlts", "none"))
    assert list(results["methods"])[:2] == ["tlts", "none"]
    acc = results["methods"]["alp"]["accuracy"]
    assert acc["std"] == 0.0 and acc["n"] == 1


def test_table_lists_every_method_and_difficulty():
    results = report.aggregate(fake_runs())
    table = report.markdown_table(results)
    lines = table.splitlines()
    for name in NAMES:
        assert any(line.startswith(f"| {name} ") for line in lines), name
    assert "| **none** (baseline) |" in table
    assert "warm start (before RL)" in lines[2]
    assert "d=2" in table and "d=4" in table
    acc = results["methods"]["alp"]["accuracy"]
    assert f"{acc['mean']:.3f} ± {acc['std']:.3f}" in table


def test_report_files_are_written(tmp_path):
    runs = fake_runs()
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    for r in runs:
        (runs_dir / f"{r['method']}_seed{r['seed']}.json").write_text(json.dumps(r))
    loaded = report.load_runs(str(runs_dir))
    assert len(loaded) == len(runs)
    results = report.write_report(loaded, str(tmp_path))
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(results))
    assert (tmp_path / "table.md").read_text() == report.markdown_table(results)
    for png in ("pareto.png", "l1_targets.png", "schedules.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png


def test_plots_without_l1_or_schedule_runs(tmp_path):
    runs = [r for r in fake_runs() if r["method"] in ("none", "alp")]
    report.l1_targets_plot(runs, str(tmp_path / "l1.png"))
    report.schedules_plot(runs, str(tmp_path / "s.png"))
    assert (tmp_path / "l1.png").stat().st_size > 0 and (tmp_path / "s.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------
# The sweep's configs.


def _parse_launch_flags(cmd: list[str], monkeypatch):
    """The config `python -m lenrl.launch` builds from ``cmd`` (ml_collections reads the
    override flags from sys.argv when the flag is defined)."""
    argv = ["launch", cmd[3], *cmd[5:]]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(ROOT)
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True)
    fv(argv)
    return fv.config


@pytest.mark.parametrize("scale", [["--smoke"], ["--scale=gpu"], ["--rl-steps=7"]])
def test_launch_flags_rebuild_every_config(scale, monkeypatch):
    args = sweep.parse_args([*scale, "--methods=all", "--out=/tmp/x"])
    base, tokens = sweep.scale_of(args)
    configs = {}
    for name in args.names:
        config = sweep.run_config(name, 2, base, tokens, "/tmp/x/export")
        cmd = sweep.launch_command(name, "/tmp/wd", config)
        assert cmd[3] == f"--config=configs/methods.py:{name}" and "--config.seed=2" in cmd
        parsed = sweep.flatten(_parse_launch_flags(cmd, monkeypatch))
        assert parsed == sweep.flatten(config), name
        configs[name] = config
    sweep.check_comparable(configs)
    if scale == ["--rl-steps=7"]:  # derived step counts follow rl.steps
        assert configs["siri"].budget.hparams.total_steps == 7
        assert configs["thinkprune"].budget.hparams.steps_per_round == 2


def test_check_comparable_rejects_a_different_eval():
    args = sweep.parse_args(["--smoke", "--methods=none,alp"])
    base, tokens = sweep.scale_of(args)
    a, b = (sweep.run_config(m, 0, base, tokens, "/x") for m in ("none", "alp"))
    b.eval.budget = 100
    with pytest.raises(AssertionError, match="eval.budget"):
        sweep.check_comparable({"none": a, "alp": b})


def test_token_keys_cover_every_preset():
    """Every integer knob of a preset is a token count (scaled) or a step / count (not)."""
    not_tokens = {"warmup_steps", "seed", "steps_per_round", "every", "period", "total_steps"}
    not_tokens |= {"num_subgroups"}
    args = sweep.parse_args(["--methods=all"])
    for name in args.names:
        flat = sweep.flatten(sweep.build_config(name, {}, 1))
        for key, v in flat.items():
            if not key.startswith(("penalty.hparams", "budget.hparams", "rl.advantage_hparams")):
                continue
            ints = isinstance(v, int) and not isinstance(v, bool)
            ints |= isinstance(v, tuple) and all(isinstance(x, int) for x in v)
            if ints and key.rsplit(".", 1)[1] not in not_tokens:
                assert key in sweep.TOKEN_KEYS, f"{name}: {key} is not in TOKEN_KEYS"


def test_gpu_scale():
    args = sweep.parse_args(["--scale=gpu", "--methods=all"])
    base, tokens = sweep.scale_of(args)
    warm = sweep.build_config(None, base, tokens)
    params = setup.model_config(warm, build_synthetic_tokenizer()).num_params()
    assert 80e6 < params < 130e6
    synth = SyntheticConfig(**setup._dict(warm.data.synthetic))
    tok = build_synthetic_tokenizer()
    longest = max(
        len(tok.encode(synthetic_record(0, i, "train", synth)["solution"])) + 1 for i in range(300)
    )
    assert 250 < longest <= warm.sft.max_len < warm.budget.max_new_tokens
    minimal = 4 * synth.max_ops + 6  # longest minimal solution, stop token included
    for name in args.names:
        small = sweep.flatten(sweep.build_config(name, {}, 1))
        config = sweep.run_config(name, 0, base, tokens, "/x")
        setup.check(config)
        flat = sweep.flatten(config)
        for key in sweep.TOKEN_KEYS:
            if flat.get(key) is not None:
                want = small[key] * 3 if isinstance(small[key], int) else small[key]
                if isinstance(small[key], tuple):
                    want = tuple(3 * x for x in small[key])
                assert flat[key] == want, (name, key)
                if key.startswith("budget.hparams") or key.endswith(("subgroup_budgets", "l_min")):
                    assert min(np.atleast_1d(flat[key])) >= minimal, (name, key)
        if name.startswith("l1"):
            assert flat["penalty.hparams.alpha"] == pytest.approx(
                small["penalty.hparams.alpha"] / 3
            )


# ---------------------------------------------------------------------------------------------
# The script end to end.


@pytest.mark.slow
def test_smoke_sweep(tmp_path):
    """Warm start, `none` and `l1_exact` for 3 RL steps, report; then a resumed call skips."""
    out = tmp_path / "sweep"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, os.path.join(BENCH, "methods.py"), "--smoke", f"--out={out}"]

    def sweep_call(*flags, timeout=300):
        return subprocess.run(
            [*cmd, *flags], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )

    proc = sweep_call(timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    digest = json.loads(proc.stdout)
    assert set(digest["methods"]) == {"none", "l1_exact"} and not digest["failed"]
    assert set(digest["statuses"].values()) == {"trained"}
    runs = report.load_runs(str(out / "runs"))
    assert [(r["method"], r["seed"]) for r in runs] == [("l1_exact", 0), ("none", 0)]
    warm = json.loads((out / "work" / "warm_start" / "warm_start.json").read_text())
    for r in runs:
        assert r["curves"]["step"] == [1, 2, 3] and len(r["curves"]["base_budget"]) == 3
        assert r["command"][3] == f"--config=configs/methods.py:{r['method']}"
        assert "--config.sft.steps=0" in r["command"] and r["wall_s"] > 0
        if r["method"] == "none":  # same policy, same held-out set: the warm start's numbers
            for k in ("accuracy", "length_mean"):
                assert r["before"][k] == pytest.approx(warm["metrics"][k], abs=1e-9)
    (l1,) = [r for r in runs if r["method"] == "l1_exact"]
    assert [row["target"] for row in l1["l1_targets"]] == [16, 44, 72, 100, 128]
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"none", "l1_exact"}
    table = (out / "table.md").read_text()
    assert "| **none** (baseline) |" in table and "| l1_exact |" in table
    for png in ("pareto.png", "l1_targets.png", "schedules.png"):
        assert (out / png).stat().st_size > 10_000
    again = sweep_call()
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(json.loads(again.stdout)["statuses"].values()) == {"skipped"}
    # A run made elsewhere (e.g. on another machine), copied into runs/: --report-only counts it
    # without training it, and trains nothing else.
    foreign = {**json.loads((out / "runs" / "none_seed0.json").read_text()), "seed": 1}
    foreign["after"] = {**foreign["after"], "accuracy": foreign["after"]["accuracy"] - 0.5}
    (out / "runs" / "none_seed1.json").write_text(json.dumps(foreign))
    only = sweep_call("--seeds=0,1", "--report-only")
    assert only.returncode == 0, only.stderr[-3000:]
    assert json.loads(only.stdout)["statuses"] == {}
    assert not (out / "work" / "none" / "seed1").exists()
    merged = json.loads((out / "results.json").read_text())["methods"]
    assert merged["none"]["seeds"] == [0, 1] and merged["l1_exact"]["seeds"] == [0]
    want = np.mean([r["after"]["accuracy"] for r in runs if r["method"] == "none"]) - 0.25
    assert merged["none"]["accuracy"]["mean"] == pytest.approx(want)


def test_deadline_stops_a_command_and_later_runs_do_not_start(tmp_path):
    args = types.SimpleNamespace(out=str(tmp_path), parallel=1, deadline=time.time() + 1.0)
    log = tmp_path / "log.txt"
    t0 = time.time()
    rc = sweep._call([sys.executable, "-c", "import time; time.sleep(60)"], str(log), args)
    assert rc == sweep.STOPPED and time.time() - t0 < 30
    assert "stopped at the deadline" in log.read_text()
    # past the deadline a run that is not done is not started (its workdir holds no command)
    args.deadline = time.time() - 1.0
    status = sweep.run_one(args, "none", 0, sweep.run_config("none", 0, {}, 1, "/nonexistent"))
    assert status.startswith("not started")
    assert not (tmp_path / "work" / "none" / "seed0" / "launch.log").exists()


def test_a_command_that_ends_before_the_deadline_returns_its_code(tmp_path):
    args = types.SimpleNamespace(out=str(tmp_path), parallel=1, deadline=time.time() + 60)
    assert (
        sweep._call([sys.executable, "-c", "raise SystemExit(3)"], str(tmp_path / "l"), args) == 3
    )
    args.deadline = None
    assert sweep._call([sys.executable, "-c", "pass"], str(tmp_path / "l"), args) == 0
