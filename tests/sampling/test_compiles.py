"""Compilation is bounded: one program per (number of prompts, bucket); nothing else recompiles.

Two independent counters: the jitted entry point's own cache (``_cache_size()``) and JAX's
monitoring event ``/jax/core/compile/backend_compile_duration``, fired once per XLA compile of
anything in the process (so it also catches stray compiles outside the entry point).
"""

import contextlib

import jax
import numpy as np
import pytest
from flax import nnx

from lenrl import models
from lenrl.sampling import SamplingConfig, ThinkingConfig, make_sampler

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compiles():
    events = []

    def listener(name, duration, **kwargs):
        if name == COMPILE_EVENT:
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("decode_window", [None, 3])  # one window, or three: still one program
def test_same_bucket_compiles_nothing_new(decode_window):
    cfg = models.ModelConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=16,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        head_dim=8,
    )
    graphdef, state = nnx.split(models.init_model(cfg))
    thinking = ThinkingConfig(end_token_ids=(3,), forced_token_ids=(4, 5), answer_budget=2)
    sampler = make_sampler(
        graphdef,
        SamplingConfig(
            buckets=(4, 8),
            max_new_tokens=8,
            stop_token_ids=(1, 2),
            num_slots=2,
            refill_rows=1,
            thinking=thinking,
            temperature=0.7,
            top_k=5,
            decode_window=decode_window,
        ),
    )
    rng = np.random.RandomState(0)

    def prompts(max_len):
        return [list(rng.randint(6, 32, rng.randint(1, max_len + 1))) for _ in range(3)]

    first = sampler(state, prompts(4), [8, 2, 5], jax.random.key(0), [3, 8, 0])
    jax.block_until_ready(first)
    assert sampler.num_compiled() == 1
    keys = [jax.random.key(1), jax.random.PRNGKey(2), jax.random.key(3)]  # typed and raw
    with count_compiles() as events:
        for key in keys:  # new prompts, budgets, thinking budgets and keys
            budgets = rng.randint(0, 9, 3)
            out = sampler(state, prompts(4), budgets, key, rng.randint(0, 9, 3))
            jax.block_until_ready(out)
            assert (np.asarray(out.lengths) <= budgets).all()
    assert events == [] and sampler.num_compiled() == 1

    key = jax.random.key(9)
    with count_compiles() as events:
        jax.block_until_ready(sampler(state, [[7] * 6, [8], [9, 9]], [4, 4, 4], key))
    assert sampler.num_compiled() == 2 and len(events) >= 1  # the second bucket: one program
    with count_compiles() as events:
        jax.block_until_ready(sampler(state, [[7] * 5, [8], [9]], [1, 2, 3], key))
    assert events == [] and sampler.num_compiled() == 2
