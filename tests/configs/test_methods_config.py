"""configs/methods.py: every preset builds, follows the spec's recipe, and trains end to end.

Run as a script (`python tests/configs/test_methods_config.py WORKROOT [NAME ...]`) it trains the
named presets (default: all) one after the other in this one process, with the tiny settings of
`tiny(config)`; `test_every_preset_trains_end_to_end` runs it in a subprocess so that the
persistent compilation cache it switches on stays out of the other tests' process.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import traceback

import jax.numpy as jnp
import pytest

from lenrl.algorithms.drpo import DRPOConfig
from lenrl.algorithms.losses import LossConfig
from lenrl.train import setup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METHODS_PY = os.path.join(ROOT, "configs", "methods.py")


def load_methods():
    spec = importlib.util.spec_from_file_location("lenrl_configs_methods", METHODS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


METHODS = load_methods()
NAMES = sorted(METHODS.PRESETS)

# The spec's recipe per preset (shared/spec/length_methods.md), written independently of
# configs/methods.py: penalty name and hyperparameters that must be set, advantage (and its
# hyperparameters), objective, dynamic sampling, budget schedule. `None` = not checked.
DLER_LOSS = dict(eps_low=0.2, eps_high=0.28, beta=0.0, loss_agg="token_mean")
# Methods without a prescribed advantage keep the base config's group baseline.
GRPO = dict(advantage=None, adv=None, objective="pg", dynamic=False)
GROUP_BASELINES = ("grpo", "dr_grpo", "rloo")
DLER = dict(advantage="batch_whiten", adv={"boost": 0.1}, objective="pg", dynamic=True)
RECIPES = {
    "none": dict(GRPO, penalty="none", hp={}, schedule="constant"),
    "truncation": dict(DLER, penalty="truncation", hp={"kappa": 0.1}, schedule="constant"),
    "difficulty_aware_truncation": dict(
        DLER, penalty="difficulty_aware_truncation", hp={"kappa": 0.1}, schedule="constant"
    ),
    "kimi": dict(GRPO, penalty="kimi", hp={"w": 1.0}, schedule="constant"),
    "l1_exact": dict(GRPO, penalty="l1_exact", hp={}, schedule="constant"),
    "l1_max": dict(GRPO, penalty="l1_max", hp={"delta": 0.5}, schedule="constant"),
    "alp": dict(GRPO, penalty="alp", hp={}, schedule="constant"),
    "grpo_lambda": dict(
        GRPO, penalty="grpo_lambda", hp={"lam": 0.5, "p_min": 0.5}, schedule="constant"
    ),
    "hapo": dict(GRPO, penalty="hapo", hp={"mode": "min"}, schedule="constant"),
    "drpo_weights": dict(
        GRPO,
        penalty="drpo_weights",
        hp={"lam": 0.1},
        advantage="positive_group",
        adv=None,
        schedule="constant",
    ),
    "drpo": dict(
        GRPO, penalty="drpo_weights", hp={"lam": 0.1}, objective="drpo", schedule="constant"
    ),
    "hbpo": dict(GRPO, penalty="hbpo", hp={}, advantage="hbpo", adv=None, schedule="constant"),
    "cosine": dict(
        GRPO, penalty="cosine", hp={"r0_c": 2.0, "r_exceed": -10.0}, schedule="constant"
    ),
    "dapo_overlong": dict(GRPO, penalty="dapo_overlong", hp={}, dynamic=True, schedule="constant"),
    "thinkprune": dict(GRPO, penalty="thinkprune", hp={}, schedule="rounds"),
    "tlts": dict(GRPO, penalty="tlts", hp={"w_len": 0.5}, schedule="tlts"),
    "siri": dict(GRPO, penalty="siri", hp={}, schedule="siri"),
    "format_length": dict(GRPO, penalty="format_length", hp={"w": 0.5}, schedule="constant"),
    "adaptive_lambda": dict(GRPO, penalty="adaptive_lambda", hp={}, schedule="constant"),
}

PROMPT_TARGETS = ("l1_exact", "l1_max", "hbpo")  # presets that write a length into the prompt


def test_every_registered_method_has_a_preset_and_a_recipe():
    from lenrl.penalties import REGISTRY

    assert set(REGISTRY) <= set(METHODS.PRESETS)
    assert set(METHODS.PRESETS) == set(RECIPES) == set(REGISTRY) | {"drpo"}


@pytest.mark.parametrize("name", NAMES)
def test_preset_builds_and_follows_the_recipe(name):
    c = METHODS.get_config(name)
    setup.check(c)  # builds the method, loss, budget schedule and advantage without a model
    want = RECIPES[name]
    assert c.penalty.name == want["penalty"]
    hp = c.penalty.hparams.to_dict()
    assert "num_samples" not in hp  # the trainer passes it
    for key, value in want["hp"].items():
        assert hp[key] == value, key
    assert c.rl.objective == want["objective"]
    assert c.rl.dynamic_sampling is want["dynamic"]
    assert c.budget.schedule == want["schedule"]
    base = METHODS._load_default().get_config()
    if want["objective"] == "pg" and want["advantage"] is None:  # the shared base recipe
        assert c.rl.advantage == base.rl.advantage and c.rl.advantage in GROUP_BASELINES
        assert c.rl.advantage_hparams.to_dict() == base.rl.advantage_hparams.to_dict()
    elif want["objective"] == "pg":
        assert c.rl.advantage == want["advantage"]
        if want["adv"] is not None:
            assert setup._dict(c.rl.advantage_hparams) == want["adv"]
    # Everything outside the RL recipe is the base config's: the same warm start for all.
    for section in ("model", "data", "sft", "sampling", "eval", "checkpoint", "mesh"):
        got, ref = c[section].to_dict(), base[section].to_dict()
        if section == "data" and name in PROMPT_TARGETS:  # room for the length instruction
            assert got.pop("max_prompt_len") > ref.pop("max_prompt_len")
        assert got == ref, section
    assert c.preset == name


@pytest.mark.parametrize("name", ["truncation", "difficulty_aware_truncation"])
def test_dler_recipe(name):
    c = METHODS.get_config(name)
    loss = setup.build_loss(c)
    assert isinstance(loss, LossConfig)
    for key, value in DLER_LOSS.items():
        assert getattr(loss, key) == value, key
    assert c.rl.advantage == "batch_whiten" and c.rl.advantage_hparams.boost == 0.1
    assert c.rl.dynamic_sampling is True


@pytest.mark.parametrize("name", PROMPT_TARGETS)
def test_length_instruction_fits_the_prompt_width(name, tmp_path):
    """The longest synthetic question with the longest target still fits data.max_prompt_len."""
    from lenrl.data.synthetic import SyntheticConfig, synthetic_record
    from lenrl.train.rollout import TARGET_TEMPLATES, prompt_ids

    c = METHODS.get_config(name)
    tokenizer = setup.build_tokenizer(c, str(tmp_path))
    hp = c.penalty.hparams
    target = max(hp.subgroup_budgets) if name == "hbpo" else hp.t_max
    synth = SyntheticConfig(**c.data.synthetic.to_dict())
    questions = [synthetic_record(0, i, "train", synth)["prompt"] for i in range(200)]
    longest = max(questions, key=lambda q: len(prompt_ids(tokenizer, q)))
    ids = prompt_ids(tokenizer, longest, target, TARGET_TEMPLATES[name])
    assert len(ids) <= c.data.max_prompt_len


def test_alp_preset_is_the_default_run():
    base = METHODS._load_default().get_config()
    if base.penalty.name != "alp":
        pytest.skip("configs/default.py no longer runs ALP")
    c = METHODS.get_config("alp").to_dict()
    assert c.pop("preset") == "alp"
    assert c == base.to_dict()


def test_aliases():
    assert METHODS.get_config("dler").to_dict() == METHODS.get_config("truncation").to_dict()
    assert METHODS.get_config("grpo").to_dict() == METHODS.get_config("none").to_dict()


@pytest.mark.parametrize("bad", [None, "", "dpo", "Kimi"])
def test_unknown_name_lists_the_valid_ones(bad):
    with pytest.raises(ValueError, match="valid") as e:
        METHODS.get_config(bad)
    for name in ("none", "truncation", "hbpo", "drpo", "dler"):
        assert repr(name) in str(e.value)


def test_drpo_presets_share_lam_and_l_max():
    weights, full = METHODS.get_config("drpo_weights"), METHODS.get_config("drpo")
    assert weights.rl.advantage_hparams.lam == weights.penalty.hparams.lam
    assert weights.rl.advantage_hparams.l_max == weights.budget.max_new_tokens
    loss = setup.build_loss(full)
    assert isinstance(loss, DRPOConfig) and loss.lam == full.penalty.hparams.lam


def test_hbpo_subgroups_fit_the_group_and_the_sampler():
    c = METHODS.get_config("hbpo")
    budgets = c.penalty.hparams.subgroup_budgets
    assert c.rl.advantage_hparams.num_subgroups == len(budgets)
    assert c.rl.group_size % len(budgets) == 0
    assert max(budgets) + c.penalty.hparams.margin <= c.budget.max_new_tokens


def _task_lengths(c, tmp_dir, n=400):
    """(longest minimal solution, longest verbose solution) of the config's synthetic task, in
    tokens with the stop token."""
    from lenrl.data.synthetic import SyntheticConfig, synthetic_example

    tokenizer = setup.build_tokenizer(c, str(tmp_dir))
    synth = SyntheticConfig(**c.data.synthetic.to_dict())
    examples = [synthetic_example(c.seed, i, "train", synth) for i in range(n)]

    def longest(texts):
        return max(len(tokenizer.encode(t, add_special_tokens=False)) + 1 for t in texts)

    return longest(e.minimal for e in examples), longest(e.verbose for e in examples)


def test_scaled_lengths_match_the_task(tmp_path):
    """The task lengths configs/methods.py scales its budgets to are the base config's task's."""
    minimal, verbose = _task_lengths(METHODS._load_default().get_config(), tmp_path)
    assert minimal <= METHODS.MINIMAL_MAX < METHODS.SHORT
    assert METHODS.TRUNCATE < verbose <= METHODS.LONG


@pytest.mark.parametrize("name", NAMES)
def test_budgets_fit_the_sampler_and_the_minimal_solutions(name):
    """Over the whole run, every budget a sample can get is <= max_new_tokens and leaves room for
    the task's minimal solutions (test_scaled_lengths_match_the_task)."""
    c = METHODS.get_config(name)
    method, budget = setup.build_method(c), setup.build_budget(c)
    num_prompts = 8
    state = method.init(num_prompts)
    if name == "difficulty_aware_truncation":  # the tightest state: every prompt always solved
        state = type(state)(jnp.ones((num_prompts,), jnp.float32))
    index = jnp.arange(num_prompts, dtype=jnp.int32)
    for step in range(c.rl.steps + 1):
        b, _ = method.budgets(state, index, step, budget(step))
        assert int(b.max()) <= c.budget.max_new_tokens, step
        assert int(b.min()) >= METHODS.MINIMAL_MAX, step


# --------------------------------------------------------------------------------------------------
# End to end: every preset, 2 RL steps on a tiny random model, in one process.

FINITE_KEYS = ("reward", "accuracy", "length_mean", "base_budget", "loss", "grad_norm")


def tiny(c):
    """The preset shrunk to seconds on a CPU: no warm start, 2 RL steps, a 1-layer model."""
    c.sft.steps = 0
    c.rl.steps = 2
    c.rl.prompts_per_step = 2
    c.rl.group_size = 4  # HBPO's 4 subgroups of one sample each
    c.data.num_train = 64
    c.data.num_eval = 4
    c.eval.every = 0
    c.eval.sweep = ()
    c.checkpoint.export = False
    c.progress = False
    c.model.hidden_size = 32
    c.model.intermediate_size = 64
    c.model.num_layers = 1
    c.model.num_heads = 2
    c.model.num_kv_heads = 1
    c.model.head_dim = 16
    return c


def _sweep(workroot: str, names: list[str]) -> int:
    from lenrl.train.trainer import train

    failed = []
    for name in names:
        t0 = time.perf_counter()
        try:
            train(tiny(METHODS.get_config(name)), os.path.join(workroot, name))
            print(f"{name}: {time.perf_counter() - t0:.1f}s", flush=True)
        except Exception:
            failed.append(name)
            print(f"{name}: FAILED\n{traceback.format_exc()}", flush=True)
    if failed:
        print(f"failed: {failed}", flush=True)
    return 1 if failed else 0


@pytest.mark.slow
def test_every_preset_trains_end_to_end(tmp_path):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        # The presets share most programs (same model, sampler and update shapes): compile once.
        JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    for name in NAMES:
        with open(tmp_path / name / "metrics.jsonl") as f:
            rows = [r for r in map(json.loads, f) if r["phase"] == "rl" and "reward" in r]
        assert [r["step"] for r in rows] == [1, 2], name
        for key in FINITE_KEYS:
            assert all(math.isfinite(r[key]) for r in rows), (name, key)
        assert not (tmp_path / name / "export").exists()
    print(f"{len(NAMES)} presets end to end in {elapsed:.0f}s")


if __name__ == "__main__":
    sys.exit(_sweep(sys.argv[1], sys.argv[2:] or NAMES))
