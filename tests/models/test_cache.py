"""Prefill + single-token decode over the KV cache equals the full forward."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_model import tiny_config

from lenrl import models

BASE = tiny_config()


@pytest.mark.parametrize(
    "overrides",
    [
        dict(model_type="qwen2"),
        dict(model_type="qwen3", qkv_bias=False, qk_norm=True, tie_word_embeddings=False),
        dict(
            model_type="llama",
            qkv_bias=False,
            rope_scaling=models.RopeScaling(original_max_position_embeddings=8),
        ),
    ],
)
def test_prefill_then_decode_matches_full_forward(overrides):
    cfg = dataclasses.replace(BASE, **overrides)
    model = models.init_model(cfg, seed=3)
    rng = np.random.RandomState(0)
    prompt_len, new = 6, 5
    tokens = rng.randint(0, cfg.vocab_size, (3, prompt_len + new))
    prompt_mask = np.ones((3, prompt_len), bool)
    prompt_mask[1, :2] = False  # left padding in row 1
    prompt_mask[2, :4] = False  # and more in row 2
    full_mask = np.concatenate([prompt_mask, np.ones((3, new), bool)], axis=1)
    full = np.asarray(model(tokens, attention_mask=full_mask))

    cache = models.KVCache.init(cfg, batch=3, size=prompt_len + new + 2)
    positions = np.maximum(np.cumsum(prompt_mask, axis=1) - 1, 0)
    hidden, cache = model.extend(
        tokens[:, :prompt_len], positions, cache, jnp.zeros(3, jnp.int32), prompt_mask
    )
    got = [np.asarray(model.logits(hidden))]
    next_pos = prompt_mask.sum(1)
    step = jax.jit(lambda m, t, p, c, w: m.extend(t, p, c, w))
    for t in range(new):
        write = jnp.full((3,), prompt_len + t, jnp.int32)
        hidden, cache = step(
            model, tokens[:, prompt_len + t, None], (next_pos + t)[:, None], cache, write
        )
        got.append(np.asarray(model.logits(hidden)))
    got = np.concatenate(got, axis=1)
    np.testing.assert_allclose(got[full_mask], full[full_mask], atol=1e-5)


def test_rows_write_at_their_own_offsets_and_clear():
    """Rows of one cache can be at different lengths (what slot refill relies on)."""
    cfg = BASE
    model = models.init_model(cfg, seed=1)
    rng = np.random.RandomState(1)
    a, b = rng.randint(0, cfg.vocab_size, 7), rng.randint(0, cfg.vocab_size, 4)
    cache = models.KVCache.init(cfg, batch=2, size=8)
    # Row 0 gets 7 tokens, row 1 gets 4 (right-padded prompt written at offset 0).
    toks = np.stack([a, np.concatenate([b, np.zeros(3, int)])])
    mask = np.stack([np.ones(7, bool), np.arange(7) < 4])
    _, cache = model.extend(
        toks, np.tile(np.arange(7), (2, 1)), cache, jnp.zeros(2, jnp.int32), mask
    )
    # Next token for each row: row 0 at slot 7 / position 7, row 1 at slot 4 / position 4.
    nxt = rng.randint(0, cfg.vocab_size, (2, 1))
    h, cache = model.extend(nxt, np.array([[7], [4]]), cache, jnp.array([7, 4], jnp.int32))
    got = np.asarray(model.logits(h))[:, 0]
    ref0 = np.asarray(model(np.concatenate([a, nxt[0]])[None]))[0, -1]
    ref1 = np.asarray(model(np.concatenate([b, nxt[1]])[None]))[0, -1]
    np.testing.assert_allclose(got, np.stack([ref0, ref1]), atol=1e-5)
    # Clearing row 1 and writing a new sequence there forgets the old one.
    cache = cache.clear_rows(jnp.array([False, True]))
    assert (np.asarray(cache.pos)[1] == -1).all() and (np.asarray(cache.pos)[0] >= 0).all()
    c = rng.randint(0, cfg.vocab_size, (1, 3))
    h, _ = model.extend(
        np.concatenate([np.zeros((1, 3), int), c]),
        np.tile(np.arange(3), (2, 1)),
        cache,
        jnp.array([0, 0], jnp.int32),
        np.array([[False] * 3, [True] * 3]),
    )
    np.testing.assert_allclose(np.asarray(model.logits(h))[1], np.asarray(model(c))[0], atol=1e-5)


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_same_values_and_grads(remat):
    from flax import nnx

    ids = np.random.RandomState(0).randint(0, BASE.vocab_size, (2, 5))
    plain = models.init_model(BASE, seed=2)
    rem = models.init_model(dataclasses.replace(BASE, remat=remat), seed=2)

    def loss(m):
        return m(ids).astype(jnp.float32).std()

    g0 = nnx.grad(loss)(plain)
    g1 = nnx.grad(loss)(rem)
    np.testing.assert_allclose(loss(rem), loss(plain), rtol=1e-6)
    for x, y in zip(jax.tree.leaves(g0), jax.tree.leaves(g1), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)
