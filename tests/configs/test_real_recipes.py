"""configs/gsm8k_qwen2_5.py and configs/math_r1_distill.py: they load, pass the setup checks,
and with the placeholder paths stop at once, naming the config key, before any checkpoint."""

from __future__ import annotations

import importlib.util
import os

import pytest

from lenrl.algorithms.losses import LossConfig
from lenrl.train import setup
from lenrl.train.trainer import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = {  # file -> (its arguments, verifier, penalty of the default variant)
    "gsm8k_qwen2_5.py": ((None, "dler"), "gsm8k", "alp"),
    "math_r1_distill.py": ((None, "tlts"), "math", "truncation"),
}
CASES = [(f, arg) for f, (args, _, _) in RECIPES.items() for arg in args]


def load(filename):
    path = os.path.join(ROOT, "configs", filename)
    spec = importlib.util.spec_from_file_location(f"lenrl_configs_{filename[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("filename,arg", CASES)
def test_recipe_loads_and_passes_the_checks(filename, arg):
    _, verifier, penalty = RECIPES[filename]
    c = load(filename).get_config(arg)
    setup.check(c)
    assert c.model.path.startswith("/path/to/") and c.data.path.startswith("/path/to/")
    assert c.model.tokenizer == ""  # the checkpoint's tokenizer
    assert c.model.dtype == "bfloat16"
    assert c.data.kind in ("jsonl", "parquet") and "{split}" in c.data.path
    assert c.data.verifier == verifier
    assert c.sft.steps == 0
    assert c.rl.group_size == 8 and c.rl.prompts_per_step >= 32
    if arg is None:
        assert c.penalty.name == penalty
    # Every budget a sample can get fits the sampler, and evaluation measures up to the width.
    budget = setup.build_budget(c)
    assert all(int(budget(s)) <= c.budget.max_new_tokens for s in range(c.rl.steps + 1))
    assert c.eval.budget <= c.budget.max_new_tokens
    assert max(c.eval.sweep) <= c.budget.max_new_tokens


@pytest.mark.parametrize(
    "filename,arg", [("gsm8k_qwen2_5.py", "dler"), ("math_r1_distill.py", None)]
)
def test_dler_variants_follow_the_recipe(filename, arg):
    c = load(filename).get_config(arg)
    loss = setup.build_loss(c)
    assert isinstance(loss, LossConfig)
    assert (loss.eps_low, loss.eps_high, loss.beta, loss.loss_agg) == (0.2, 0.28, 0.0, "token_mean")
    assert c.penalty.name == "truncation" and c.penalty.hparams.kappa == 0.1
    assert c.rl.advantage == "batch_whiten" and c.rl.advantage_hparams.boost == 0.1
    assert c.rl.dynamic_sampling is True


@pytest.mark.parametrize("filename", sorted(RECIPES))
def test_unknown_argument_is_an_error(filename):
    with pytest.raises(ValueError, match="takes no argument"):
        load(filename).get_config("nope")


@pytest.mark.parametrize("filename,arg", CASES)
def test_placeholder_model_path_stops_before_any_work(filename, arg, tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match=r"config\.model\.path") as e:
        train(load(filename).get_config(arg), str(workdir))
    assert "/path/to/" in str(e.value)
    assert not (workdir / "checkpoints").exists()


@pytest.mark.parametrize("filename", sorted(RECIPES))
def test_placeholder_data_path_stops_before_any_checkpoint(filename, tmp_path):
    """With a (tiny) checkpoint in place, the missing data is named next, still before training."""
    import tiny_hf

    from lenrl.data.tokenizer import save_synthetic_tokenizer

    ckpt = tmp_path / "ckpt"
    save_synthetic_tokenizer(str(ckpt))
    tiny_hf.make("qwen2", ckpt)
    c = load(filename).get_config()
    c.model.path = str(ckpt)
    c.model.dtype = "float32"  # CPU
    workdir = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match=r"config\.data\.path") as e:
        train(c, str(workdir))
    assert "/path/to/" in str(e.value)
    assert not (workdir / "checkpoints").exists()


def test_eval_num_slots_streams_the_eval_set():
    """eval.num_slots bounds the evaluation KV cache (slot refill); 0 keeps one static batch;
    the rollout sampler keeps sampling.num_slots."""
    from lenrl.data.tokenizer import build_synthetic_tokenizer

    tok = build_synthetic_tokenizer()
    c = load("default.py").get_config()
    assert setup.sampling_config(c, tok, num_prompts=500).slots(500).num_slots == 500
    c.eval.num_slots = 64
    assert setup.sampling_config(c, tok, num_prompts=500).slots(500).num_slots == 64
    assert setup.sampling_config(c, tok).num_slots is None
    assert load("math_r1_distill.py").get_config().eval.num_slots == 128


def test_eval_seed_fixes_the_held_out_set_across_seeds():
    """data.eval_seed >= 0: runs of any seed evaluate on the same synthetic problems; -1 follows
    config.seed (train data always follows config.seed)."""

    def prompts(seed, eval_seed, split="eval"):
        c = load("default.py").get_config()
        c.seed, c.data.eval_seed, c.data.num_eval, c.data.num_train = seed, eval_seed, 20, 20
        src = setup.build_source(c, split)
        return [src[i]["prompt"] for i in range(len(src))]

    assert prompts(1, 0) == prompts(0, -1) == prompts(0, 0)
    assert prompts(1, -1) != prompts(0, -1)
    assert prompts(1, 0, "train") == prompts(1, -1, "train") != prompts(0, 0, "train")
