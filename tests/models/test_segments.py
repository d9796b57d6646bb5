"""Segment-aware full forward: packed rows give each sequence the logits it has alone."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tiny_model import tiny_config

from lenrl import models
from lenrl.models.transformer import segment_positions

BASE = tiny_config()
VARIANTS = [
    dict(model_type="qwen2"),
    dict(model_type="qwen3", qkv_bias=False, qk_norm=True, tie_word_embeddings=False),
    dict(model_type="llama", qkv_bias=False, remat="full"),
]


def _packed(rng, lengths_per_row, width, vocab):
    """Rows of random sequences back to back: (tokens, segment ids, the sequences by row)."""
    tokens = np.zeros((len(lengths_per_row), width), np.int32)
    seg = np.zeros_like(tokens)
    seqs = []
    for r, lengths in enumerate(lengths_per_row):
        start, row = 0, []
        for s, n in enumerate(lengths, start=1):
            x = rng.randint(1, vocab, n)
            tokens[r, start : start + n] = x
            seg[r, start : start + n] = s
            row.append((start, x))
            start += n
        seqs.append(row)
    return tokens, seg, seqs


def test_segment_positions_against_numpy():
    seg = np.array([[1, 1, 1, 2, 2, 3, 0, 0], [1, 2, 2, 2, 2, 2, 2, 0], [0, 0, 1, 1, 2, 2, 2, 2]])
    ref = np.zeros_like(seg)
    for r in range(seg.shape[0]):
        for t in range(seg.shape[1]):
            ref[r, t] = 0 if t == 0 or seg[r, t] != seg[r, t - 1] else ref[r, t - 1] + 1
    np.testing.assert_array_equal(segment_positions(jnp.asarray(seg)), ref)


@pytest.mark.parametrize("overrides", VARIANTS)
def test_packed_rows_match_each_sequence_alone(overrides):
    cfg = dataclasses.replace(BASE, **overrides)
    model = models.init_model(cfg, seed=2)
    rng = np.random.RandomState(0)
    tokens, seg, seqs = _packed(rng, [[5, 3, 7], [11], [2, 2, 2, 4]], 16, cfg.vocab_size)
    logits = np.asarray(jax.jit(lambda t, s: model(t, segment_ids=s))(tokens, seg))
    # Reference: every sequence in its own right-padded row (the attention-mask path, checked
    # against transformers in test_parity.py).
    flat = [(r, start, x) for r, row in enumerate(seqs) for start, x in row]
    width = max(len(x) for _, _, x in flat)
    alone_tokens = np.zeros((len(flat), width), np.int32)
    for i, (_, _, x) in enumerate(flat):
        alone_tokens[i, : len(x)] = x
    alone = np.asarray(jax.jit(model)(alone_tokens, alone_tokens > 0))
    for i, (r, start, x) in enumerate(flat):
        np.testing.assert_allclose(logits[r, start : start + len(x)], alone[i, : len(x)], atol=2e-5)
    # Explicit positions equal to the default ones change nothing.
    again = jax.jit(lambda t, p, s: model(t, positions=p, segment_ids=s))(
        tokens, segment_positions(jnp.asarray(seg)), seg
    )
    np.testing.assert_allclose(again, logits, atol=1e-5)


def test_perturbing_one_segment_leaves_the_others_unchanged():
    model = models.init_model(BASE, seed=5)
    rng = np.random.RandomState(1)
    tokens, seg, _ = _packed(rng, [[4, 6, 5], [9, 6]], 16, BASE.vocab_size)
    fwd = jax.jit(lambda t: model(t, segment_ids=seg))
    before = np.asarray(fwd(tokens))
    for r, s in [(0, 1), (0, 2), (1, 2)]:
        changed = tokens.copy()
        inside = seg[r] == s
        changed[r, inside] = (changed[r, inside] + 1 + rng.randint(0, 50, inside.sum())) % 61
        after = np.asarray(fwd(changed))
        others = seg > 0  # padding queries see no key: their (unused) output is arbitrary
        others[r, inside] = False
        np.testing.assert_allclose(after[others], before[others], rtol=0, atol=1e-6)
        assert np.abs(after[r, inside] - before[r, inside]).max() > 1e-3  # the segment did change


def test_one_segment_per_row_equals_the_attention_mask_path():
    model = models.init_model(BASE, seed=0)
    rng = np.random.RandomState(2)
    lengths = np.array([7, 3, 10])
    mask = np.arange(10)[None] < lengths[:, None]
    tokens = np.where(mask, rng.randint(1, 61, (3, 10)), 0)
    packed = jax.jit(lambda t, s: model(t, segment_ids=s))(tokens, mask.astype(np.int32))
    padded = jax.jit(lambda t, m: model(t, attention_mask=m))(tokens, mask)
    np.testing.assert_allclose(packed[mask], padded[mask], atol=1e-6)


def test_gradients_do_not_cross_segments():
    """d(loss on segment 1) / d(embedding of a token only in segment 2) is exactly zero."""
    cfg = dataclasses.replace(BASE, vocab_size=20, tie_word_embeddings=False)  # embed: input only
    model = models.init_model(cfg, seed=1)
    tokens = np.array([[1, 2, 3, 4, 10, 11, 12, 0]], np.int32)
    seg = np.array([[1, 1, 1, 1, 2, 2, 2, 0]], np.int32)

    graphdef, state = nnx.split(model)

    def loss(state):
        return nnx.merge(graphdef, state)(tokens, segment_ids=seg)[0, :4].sum()

    g = np.asarray(jax.jit(jax.grad(loss))(state)["embed"][...])
    assert np.abs(g[[10, 11, 12]]).max() == 0.0
    assert np.abs(g[[1, 2, 3, 4]]).max() > 0.0


def test_cudnn_setting_passes_the_segment_mask(monkeypatch):
    """``attention="cudnn"`` hands the block-diagonal mask to ``jax.nn.dot_product_attention``;
    run it with the XLA implementation (CPU) and compare."""
    real = jax.nn.dot_product_attention

    def on_cpu(*args, implementation=None, **kwargs):
        assert implementation == "cudnn"
        return real(*args, implementation="xla", **kwargs)

    monkeypatch.setattr(jax.nn, "dot_product_attention", on_cpu)
    xla = models.init_model(BASE, seed=3)
    cudnn = models.init_model(dataclasses.replace(BASE, attention="cudnn"), seed=3)
    tokens, seg, _ = _packed(np.random.RandomState(3), [[5, 6], [3, 3, 3]], 12, BASE.vocab_size)
    np.testing.assert_allclose(
        jax.jit(lambda t, s: cudnn(t, segment_ids=s))(tokens, seg),
        jax.jit(lambda t, s: xla(t, segment_ids=s))(tokens, seg),
        atol=2e-5,
    )
