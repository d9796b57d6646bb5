"""Windowed decoding (`SamplingConfig.decode_window`) changes the cost, never the results.

Tokens, masks, forced flags, lengths and step counts are identical; log-probs agree to f32
rounding (attention sums over a shorter row of zero-weight slots, in another order: ~1e-7).
Every run here uses ``max_new_tokens=12`` and ``decode_window=4``: three cache windows
``T+4, T+8, T+12`` (a row emits up to ``e + 1`` tokens in window ``T + e``), with budgets that
end inside, at and across window boundaries. The whole-cache runs are themselves checked against
cache-free references in test_sampler.py.
"""

import dataclasses
import re

import jax
import numpy as np
import pytest
import tiny_hf
from flax import nnx

from lenrl import models
from lenrl.sampling import SamplingConfig, ThinkingConfig, make_sampler, pad_prompts

BASE = SamplingConfig(buckets=(8, 16), max_new_tokens=12, pad_id=0, decode_window=4)
BUDGETS = np.array([12, 1, 5, 0, 12, 2, 9, 6, 12, 8, 4])
EXACT = ("tokens", "mask", "forced", "lengths", "truncated")


def run(model, cfg, prompts, budgets, key=3, think=None):
    graphdef, state = nnx.split(model)
    return make_sampler(graphdef, cfg)(state, prompts, budgets, jax.random.key(key), think)


def assert_same(windowed, whole):
    for name in EXACT:
        np.testing.assert_array_equal(
            np.asarray(getattr(windowed, name)), np.asarray(getattr(whole, name)), err_msg=name
        )
    for name in ("logprobs", "sampling_logprobs"):
        np.testing.assert_allclose(
            np.asarray(getattr(windowed, name)), np.asarray(getattr(whole, name)), atol=1e-5
        )
    assert int(windowed.decode_steps) == int(whole.decode_steps)


def test_windows():
    assert BASE.windows(8) == (12, 16, 20)
    assert dataclasses.replace(BASE, decode_window=3).windows(8) == (11, 14, 17, 20)
    assert dataclasses.replace(BASE, decode_window=None).windows(8) == (20,)
    assert dataclasses.replace(BASE, decode_window=5).windows(8) == (14, 20)  # 12 / 5 -> 2
    assert dataclasses.replace(BASE, decode_window=9).windows(8) == (20,)  # 12 / 9 -> 1
    assert dataclasses.replace(BASE, decode_window=3, max_windows=2).windows(8) == (14, 20)
    assert dataclasses.replace(BASE, decode_window=1, max_windows=5).windows(0) == (3, 5, 8, 10, 12)
    assert SamplingConfig(max_new_tokens=512).windows(128) == (256, 384, 512, 640)
    assert SamplingConfig(max_new_tokens=160).windows(128) == (288,)  # default run: one loop
    long = SamplingConfig(max_new_tokens=4096).windows(128)
    assert long == tuple(128 + 1024 * k for k in range(1, 5))  # capped at max_windows = 4
    for bad in (dict(decode_window=0), dict(max_windows=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SamplingConfig(**bad)


@pytest.mark.parametrize(
    "sampling, slots",
    [
        (dict(greedy=True), dict()),
        (dict(greedy=True), dict(num_slots=4, refill_rows=2, refill_min_free=1)),
        (dict(temperature=0.7), dict()),
        (dict(temperature=1.3, top_k=20, top_p=0.9), dict(num_slots=4, refill_rows=2)),
    ],
    ids=["greedy", "greedy_refill", "temperature", "top_k_top_p_refill"],
)
def test_windowed_equals_whole_cache(sampling, slots, tiny_model, reference):
    _, model = tiny_model("qwen2")
    prompts = reference.prompts(2, len(BUDGETS), 16, tiny_hf.VOCAB)
    stop = (5, 17)
    cfg = dataclasses.replace(BASE, stop_token_ids=stop, **sampling, **slots)
    windowed = run(model, cfg, prompts, BUDGETS)
    whole = run(model, dataclasses.replace(cfg, decode_window=None), prompts, BUDGETS)
    assert_same(windowed, whole)
    lengths = np.asarray(windowed.lengths)
    assert lengths.max() > 9 and ((lengths > 0) & (lengths < 9)).any()  # several windows used
    if sampling.get("greedy") and not slots:
        ref, _ = reference.greedy(model, prompts, BUDGETS, stop)
        got = [list(np.asarray(windowed.tokens)[i, :n]) for i, n in enumerate(lengths)]
        assert got == ref


def test_windowed_budget_forcing(tiny_model, reference):
    _, model = tiny_model("qwen2")
    prompts = reference.prompts(4, 6, 8, tiny_hf.VOCAB)
    budgets = np.array([12, 12, 12, 6, 12, 10])
    think = np.array([4, 2, 0, 5, 12, 8])  # forcing starts inside and across window ends
    free_run, _ = reference.greedy(model, prompts, budgets)
    others = {t for r in free_run for t in r}
    end, *forced_ids = [t for t in range(3, tiny_hf.VOCAB) if t not in others][:3]
    thinking = ThinkingConfig(end_token_ids=(end,), forced_token_ids=forced_ids, answer_budget=3)
    for slots in (dict(), dict(num_slots=3, refill_rows=1, refill_min_free=1)):
        cfg = dataclasses.replace(BASE, greedy=True, thinking=thinking, **slots)
        windowed = run(model, cfg, prompts, budgets, think=think)
        whole = run(
            model, dataclasses.replace(cfg, decode_window=None), prompts, budgets, think=think
        )
        assert_same(windowed, whole)
        forced = np.asarray(windowed.forced)
        assert forced[[0, 1, 2, 3, 5]].any(-1).all() and not forced[4].any()


def cache_widths(sampler, state, prompts, budgets):
    """Cache widths of the K-cache arrays in the lowered program (``[S, W, Hkv, D]`` tensors)."""
    batch = pad_prompts(prompts, sampler.cfg)
    n = len(prompts)
    text = sampler.jitted.lower(
        state,
        batch.tokens,
        batch.lengths,
        np.asarray(budgets, np.int32),
        np.full(n, 12, np.int32),
        jax.random.key_data(jax.random.key(0)),
    ).as_text()
    cfg = sampler.model_cfg
    shape = rf"tensor<(\d+)x(\d+)x{cfg.num_kv_heads}x{cfg.head_dim}xf32>"
    t = batch.tokens.shape[1]
    return {int(w) for s, w in re.findall(shape, text) if int(s) == n and int(w) > t}


def test_program_holds_one_loop_per_window(tiny_model, reference):
    """The decode loops run on caches of the window widths, not only on the whole cache."""
    _, model = tiny_model("qwen2")
    graphdef, state = nnx.split(model)
    prompts = reference.prompts(0, 3, 8, tiny_hf.VOCAB)
    windowed = make_sampler(graphdef, dataclasses.replace(BASE, greedy=True))
    assert cache_widths(windowed, state, prompts, [12, 4, 7]) == {12, 16, 20}
    whole = make_sampler(graphdef, dataclasses.replace(BASE, greedy=True, decode_window=None))
    assert cache_widths(whole, state, prompts, [12, 4, 7]) == {20}


def test_windows_do_not_double_the_cache_memory():
    """Each layer's grow frees the old layer's cache: peak memory stays ~ one whole cache."""
    cfg = models.ModelConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=16,
        num_layers=4,
        num_heads=2,
        num_kv_heads=2,
        head_dim=32,
    )
    graphdef, state = nnx.split(models.init_model(cfg))
    temp = {}
    for window in (None, 16):
        sc = SamplingConfig(greedy=True, buckets=(8,), max_new_tokens=64, decode_window=window)
        batch = pad_prompts([[3, 4]] * 8, sc)
        sampler = make_sampler(graphdef, sc)
        budgets = np.full(8, 64, np.int32)
        lowered = sampler.jitted.lower(
            state,
            batch.tokens,
            batch.lengths,
            budgets,
            budgets,
            jax.random.key_data(jax.random.key(0)),
        )
        temp[window] = lowered.compile().memory_analysis().temp_size_in_bytes
    cache = 8 * 72 * cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim * 4  # [S, C] f32 K+V
    assert temp[None] >= cache
    assert temp[16] <= temp[None] + cache // 4, (temp, cache)
