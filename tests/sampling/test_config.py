"""Settings validate themselves; prompt padding and the errors that name the fix."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from lenrl import models
from lenrl.sampling import (
    SamplingConfig,
    Slots,
    ThinkingConfig,
    check_budgets,
    make_sampler,
    pad_prompts,
)

CFG = SamplingConfig(buckets=(4, 8), max_new_tokens=6, pad_id=0)
TINY = models.ModelConfig(
    vocab_size=32,
    hidden_size=16,
    intermediate_size=16,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    head_dim=8,
)


def test_pad_prompts_left_pads_into_smallest_bucket():
    batch = pad_prompts([[5, 6], [7], [1, 2, 3]], CFG)
    np.testing.assert_array_equal(batch.tokens, [[0, 0, 5, 6], [0, 0, 0, 7], [0, 1, 2, 3]])
    np.testing.assert_array_equal(batch.lengths, [2, 1, 3])
    assert batch.tokens.dtype == np.int32
    assert pad_prompts([[1] * 5], CFG).tokens.shape == (1, 8)
    assert pad_prompts(batch, CFG) is batch


@pytest.mark.parametrize(
    "prompts, match",
    [
        ([[1, 2], list(range(9))], r"prompt 1 has 9 tokens.*SamplingConfig.buckets"),
        ([[1], []], "prompt 1 is empty"),
        ([], "no prompts"),
        ([[1], [2, 40]], r"prompt 1 holds token id 40.*\[0, 32\)"),
    ],
)
def test_pad_prompts_errors(prompts, match):
    with pytest.raises(ValueError, match=match):
        pad_prompts(prompts, CFG, vocab_size=32)


def test_budget_errors_name_prompt_and_key():
    with pytest.raises(ValueError, match=r"prompt 2: max_new_tokens=7.*SamplingConfig.max_new"):
        check_budgets("max_new_tokens", [1, 6, 7], 3, CFG, 4)
    with pytest.raises(ValueError, match=r"prompt 1: max_new_tokens=-1 is negative"):
        check_budgets("max_new_tokens", [1, -1], 2, CFG, 4)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        check_budgets("max_new_tokens", [1, 1], 3, CFG, 4)
    np.testing.assert_array_equal(check_budgets("max_new_tokens", 5, 3, CFG, 4), [5, 5, 5])


def test_sampler_call_validates_before_compiling():
    model = models.init_model(TINY)
    graphdef, state = nnx.split(model)
    sampler = make_sampler(graphdef, CFG)  # ModelConfig read from the graphdef
    assert sampler.model_cfg == TINY
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"prompt 1 has 9 tokens.*SamplingConfig.buckets"):
        sampler(state, [[1], [2] * 9], [1, 1], key)
    with pytest.raises(ValueError, match=r"prompt 0: max_new_tokens=100.*max_new_tokens"):
        sampler(state, [[1], [2]], [100, 1], key)
    assert sampler.num_compiled() == 0
    with pytest.raises(ValueError, match=r"stop_token_ids has ids \[99\].*\[0, 32\)"):
        make_sampler(model, dataclasses.replace(CFG, stop_token_ids=(99,)))


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(temperature=-1.0), "temperature"),
        (dict(top_p=2.0), "top_p"),
        (dict(buckets=(8, 4)), "strictly increasing"),
        (dict(buckets=()), "buckets"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(num_slots=0), "num_slots"),
        (dict(num_slots=2, refill_rows=3), "refill_rows=3 exceeds num_slots=2"),
        (dict(queue_order="random"), "queue_order"),
        (dict(stop_token_ids=(-1,)), "stop_token_ids"),
        (dict(stop_token_ids=(3,), thinking=ThinkingConfig((2,), (3,))), "share"),
    ],
)
def test_sampling_config_validates(kw, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CFG, **kw)


def test_thinking_config_validates():
    with pytest.raises(ValueError, match="end_token_ids is empty"):
        ThinkingConfig((), (1,))
    with pytest.raises(ValueError, match="forced_token_ids is empty"):
        ThinkingConfig((1,), ())
    with pytest.raises(ValueError, match="answer_budget"):
        ThinkingConfig((1,), (2,), answer_budget=-1)
    assert ThinkingConfig(5, [6, 7]).forced_token_ids == (6, 7)


def test_greedy_ignores_sampling_settings_and_slots_resolve():
    assert dataclasses.replace(CFG, greedy=True, temperature=0.0).method().__class__.__name__ == (
        "Greedy"
    )
    assert CFG.slots(10) == Slots(10, 10, 10)  # static batch
    assert dataclasses.replace(CFG, num_slots=16).slots(64) == Slots(16, 2, 2)
    assert dataclasses.replace(CFG, num_slots=16, refill_rows=4, refill_min_free=1).slots(64) == (
        Slots(16, 4, 1)
    )
    assert dataclasses.replace(CFG, num_slots=16).slots(8) == Slots(8, 1, 1)  # clamped to N
