"""Packed training (lenrl.train.packing): first-fit-decreasing rows, and packed losses, metrics,
gradients and updates equal to the padded layout's on the same samples."""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_model import tiny_config

from lenrl import models
from lenrl.algorithms.drpo import DRPOConfig
from lenrl.algorithms.losses import LossConfig, kl_k3, per_sample_mean
from lenrl.train import batch as B
from lenrl.train import packing as P
from lenrl.train import update as U
from lenrl.train.logprobs import completion_logprobs, packed_logprobs

CFG = tiny_config(vocab_size=37)
TP, TC, G, R = 5, 9, 2, 16  # prompt width, completion width, group size, packed row length
MODEL = models.init_model(CFG, seed=1)
GRAPHDEF, PARAMS = nnx.split(MODEL)


_current_logprobs = jax.jit(lambda t, a: completion_logprobs(MODEL, t, a, TP))


def _padded_batch(seed, groups=4) -> B.UpdateBatch:
    """A random uneven RL batch: short and long completions, an invalid (padding) group, a
    truncated sample, forced (non-loss) tokens, old log-probs near the current policy's."""
    rng = np.random.RandomState(seed)
    n = groups * G
    prompts = [list(rng.randint(3, 37, rng.randint(1, TP + 1))) for _ in range(n)]
    lengths = np.where(rng.rand(n) < 0.7, rng.randint(1, 4, n), rng.randint(4, TC + 1, n))
    comps = [list(rng.randint(3, 37, k)) for k in lengths]
    valid = np.ones(n, bool)
    valid[-G:] = False  # a padding group, no tokens (as the rollout builds it)
    for i in np.flatnonzero(~valid):
        prompts[i], comps[i] = [], []
    tokens, attn = B.pad_rows(prompts, comps, TP, TC, pad_id=0)
    loss_mask = attn[:, TP:] & (rng.rand(n, TC) > 0.15)  # some forced tokens
    logp, _ = _current_logprobs(tokens, attn)
    return B.UpdateBatch(
        tokens=jnp.asarray(tokens),
        attn_mask=jnp.asarray(attn),
        loss_mask=jnp.asarray(loss_mask),
        advantages=jnp.asarray(rng.randn(n), jnp.float32),
        logp_old=jnp.asarray(np.asarray(logp) + 0.3 * rng.randn(n, TC), jnp.float32),
        logp_ref=jnp.asarray(np.asarray(logp) + 0.2 * rng.randn(n, TC), jnp.float32),
        truncated=jnp.asarray(rng.rand(n) < 0.25),
        valid=jnp.asarray(valid),
        correct=jnp.asarray(rng.rand(n) < 0.5, jnp.float32),
    )


def _one_bin(packed: P.PackedBatch) -> P.PackedBatch:
    return jax.tree.map(lambda x: jnp.asarray(x[0]), packed)


def _value_and_grad(loss_fn, batch):
    def f(params, batch):
        return loss_fn(nnx.merge(GRAPHDEF, params), batch, 0)

    return jax.jit(jax.value_and_grad(f, has_aux=True))(PARAMS, batch)


def _assert_same(padded_out, packed_out):
    (v0, m0), g0 = padded_out
    (v1, m1), g1 = packed_out
    np.testing.assert_allclose(v1, v0, rtol=1e-5, atol=1e-7)
    assert m0.keys() == m1.keys()
    for k in m0:
        np.testing.assert_allclose(m1[k], m0[k], rtol=1e-5, atol=1e-6, err_msg=k)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1), strict=True):
        scale = float(np.abs(np.asarray(a)).max()) + 1e-12
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-5 * scale)


PG_CONFIGS = [  # every aggregation, every KL estimator, truncation masking and dual clip
    LossConfig(loss_agg="token_mean", beta=0.1, kl_estimator="k1", dual_clip=3.0),
    LossConfig(loss_agg="seq_mean_token_mean", beta=0.04, kl_estimator="k3", mask_truncated=True),
    LossConfig(loss_agg="seq_mean_token_sum_norm", beta=0.1, kl_estimator="k2", l_max=TC),
]


@pytest.mark.parametrize("config", PG_CONFIGS, ids=lambda c: f"{c.loss_agg}-{c.kl_estimator}")
def test_pg_loss_and_gradients_packed_equal_padded(config):
    padded = _padded_batch(0)
    packed = _one_bin(P.pack_update_batch(padded, prompt_len=TP, row_len=R, group_size=G))
    assert packed.tokens.shape[0] < padded.tokens.shape[0]  # it did pack
    _assert_same(
        _value_and_grad(U.pg_loss(TP, config), padded),
        _value_and_grad(U.pg_loss(TP, config, packed=True), packed),
    )


def test_sft_loss_and_gradients_packed_equal_padded():
    rng = np.random.RandomState(3)
    prompts = [list(rng.randint(3, 37, rng.randint(1, TP + 1))) for _ in range(6)]
    comps = [list(rng.randint(3, 37, rng.randint(1, TC + 1))) for _ in range(6)]
    tokens, attn = B.pad_rows(prompts, comps, TP, TC, pad_id=0)
    padded = B.supervised_batch(tokens, attn, TP)
    packed = _one_bin(P.pack(prompts, comps, row_len=R))
    _assert_same(
        _value_and_grad(U.sft_loss(TP), padded),
        _value_and_grad(U.sft_loss(TP, packed=True), packed),
    )


def test_drpo_objective_packed_equals_padded():
    padded = _padded_batch(1)
    # Groups with one correct and one wrong sample qualify.
    padded = padded._replace(correct=jnp.tile(jnp.array([1.0, 0.0]), padded.correct.shape[0] // 2))
    packed = _one_bin(P.pack_update_batch(padded, prompt_len=TP, row_len=R, group_size=G))
    config = DRPOConfig(beta=1e3, delta=1e-4)
    padded_out = _value_and_grad(U.drpo_objective(TP, G, config, l_max=TC), padded)
    packed_out = _value_and_grad(U.drpo_objective(TP, G, config, l_max=TC, packed=True), packed)
    _assert_same(padded_out, packed_out)
    assert float(padded_out[0][1]["num_groups"]) == 3.0
    assert float(padded_out[0][1]["kl_penalty"]) > 0.0  # the KL constraint is exercised


def test_per_sample_kl_and_entropy_means_equal():
    padded = _padded_batch(2)
    packed = _one_bin(P.pack_update_batch(padded, prompt_len=TP, row_len=R, group_size=G))
    n = padded.valid.shape[0]

    logp, ent = completion_logprobs(MODEL, padded.tokens, padded.attn_mask, TP)
    m = padded.loss_mask & padded.valid[:, None]
    kl = kl_k3(logp, padded.logp_ref)
    padded_kl, padded_ent = per_sample_mean(kl, m), per_sample_mean(ent, m)
    # Independent reference for the padded means: a numpy loop over samples.
    for i in range(n):
        sel = np.asarray(m[i])
        ref = np.asarray(kl[i])[sel].mean() if sel.any() else 0.0
        np.testing.assert_allclose(padded_kl[i], ref, rtol=1e-5, atol=1e-7)

    plogp, pent = packed_logprobs(MODEL, packed.tokens, packed.segment_ids, packed.positions)
    pm = packed.loss_mask & packed.valid[packed.sample_ids]
    pkl = kl_k3(plogp, packed.logp_ref)
    ids = packed.sample_ids
    np.testing.assert_allclose(per_sample_mean(pkl, pm, ids, n), padded_kl, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(per_sample_mean(pent, pm, ids, n), padded_ent, rtol=1e-5, atol=1e-6)


def _sgd_update(loss_fn, batch, *, packed, minibatches=1, micro=1, epochs=1, lr=0.5):
    update = U.make_update(
        GRAPHDEF,
        optax.sgd(lr),
        loss_fn,
        batch_size=8,
        group_size=G,
        epochs=epochs,
        num_minibatches=minibatches,
        num_microbatches=micro,
        packed=packed,
    )
    params, _, metrics = jax.jit(update)(PARAMS, optax.sgd(lr).init(PARAMS), batch, KEY, 0)
    return params, metrics


KEY = jax.random.key(7)


def _assert_params_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-5)


def test_packed_update_equals_padded_update():
    padded = _padded_batch(4)
    cfg = LossConfig.grpo(beta=0.04)
    packed = P.pack_update_batch(padded, prompt_len=TP, row_len=R, group_size=G)
    p0, m0 = _sgd_update(U.pg_loss(TP, cfg), padded, packed=False)
    p1, m1 = _sgd_update(
        U.pg_loss(TP, cfg, packed=True), jax.tree.map(jnp.asarray, packed), packed=True
    )
    _assert_params_close(p0, p1)
    for k in m0:
        np.testing.assert_allclose(m1[k], m0[k], rtol=1e-5, atol=1e-6, err_msg=k)


def _select(batch, rows):
    return jax.tree.map(lambda x: x[rows], batch)


def _rows_of(groups):
    return np.asarray([g * G + j for g in groups for j in range(G)])


@pytest.mark.parametrize("minibatches,micro,epochs", [(1, 2, 1), (2, 1, 2)])
def test_packed_bins_are_the_microbatches(minibatches, micro, epochs):
    """The packed update equals plain SGD on the padded loss of each bin's samples: gradients
    averaged over a minibatch's bins, bins in the order of each epoch's permutation."""
    padded = _padded_batch(5)
    cfg = LossConfig.grpo(beta=0.0)
    k = minibatches * micro
    packed = P.pack_update_batch(padded, prompt_len=TP, row_len=R, group_size=G, num_bins=k)
    groups_tokens = np.asarray(padded.attn_mask).reshape(4, -1).sum(-1)
    bins = P.balance_groups(groups_tokens, k)
    for b, groups in enumerate(bins):  # each bin holds its groups' samples, in order
        np.testing.assert_array_equal(packed.valid[b], np.asarray(padded.valid)[_rows_of(groups)])
    lr = 0.5
    got, _ = _sgd_update(
        U.pg_loss(TP, cfg, packed=True),
        jax.tree.map(jnp.asarray, packed),
        packed=True,
        minibatches=minibatches,
        micro=micro,
        epochs=epochs,
        lr=lr,
    )

    loss_fn = U.pg_loss(TP, cfg)
    grad = jax.jit(jax.grad(lambda p, b: loss_fn(nnx.merge(GRAPHDEF, p), b, 0)[0]))
    params = PARAMS
    for e_key in jax.random.split(KEY, epochs):
        order = np.asarray(jax.random.permutation(e_key, k)).reshape(minibatches, micro)
        for mb in order:
            grads = [grad(params, _select(padded, _rows_of(bins[b]))) for b in mb]
            mean = jax.tree.map(lambda *g: sum(g) / len(g), *grads)
            params = jax.tree.map(lambda p, g: p - lr * g, params, mean)
    _assert_params_close(params, got)


def test_pack_layout_and_determinism():
    padded = _padded_batch(6)
    packed = P.pack_update_batch(padded, prompt_len=TP, row_len=R, group_size=G, num_bins=2)
    again = P.pack_update_batch(padded, prompt_len=TP, row_len=R, group_size=G, num_bins=2)
    for f in P.PackedBatch._fields:
        np.testing.assert_array_equal(getattr(packed, f), getattr(again, f), err_msg=f)

    pad = {k: np.asarray(v) for k, v in padded._asdict().items()}
    bins = P.balance_groups(pad["attn_mask"].reshape(4, -1).sum(-1), 2)
    seen = set()
    for b, groups in enumerate(bins):
        for local, i in enumerate(_rows_of(groups)):
            at = packed.sample_ids[b] == local
            at &= packed.segment_ids[b] > 0
            if not pad["valid"][i]:
                assert not at.any()
                continue
            rows = np.flatnonzero(at.any(-1))
            assert len(rows) == 1  # a sample is one contiguous segment of one row
            cols = np.flatnonzero(at[rows[0]])
            assert np.all(np.diff(cols) == 1)
            r = rows[0]
            assert len(set(packed.segment_ids[b, r, cols])) == 1
            np.testing.assert_array_equal(packed.positions[b, r, cols], np.arange(len(cols)))
            prompt = pad["tokens"][i, :TP][pad["attn_mask"][i, :TP]]
            comp = pad["tokens"][i, TP:][pad["attn_mask"][i, TP:]]
            np.testing.assert_array_equal(packed.tokens[b, r, cols], np.concatenate([prompt, comp]))
            c = cols[len(prompt) :]
            n = len(comp)
            np.testing.assert_array_equal(packed.loss_mask[b, r, c], pad["loss_mask"][i, :n])
            np.testing.assert_array_equal(packed.logp_old[b, r, c], pad["logp_old"][i, :n])
            np.testing.assert_array_equal(packed.logp_ref[b, r, c], pad["logp_ref"][i, :n])
            np.testing.assert_array_equal(packed.advantages[b, r, c], pad["advantages"][i])
            assert not packed.loss_mask[b, r, cols[: len(prompt)]].any()
            seen.add(int(i))
    assert seen == set(np.flatnonzero(pad["valid"]).tolist())
    stats = P.padding_stats(packed)
    assert stats["real_tokens"] == int(pad["attn_mask"][pad["valid"]].sum())


def test_rows_multiple_and_fixed_rows():
    padded = _padded_batch(0)
    need = P.pack_update_batch(padded, prompt_len=TP, row_len=R).tokens.shape[1]
    four = P.pack_update_batch(padded, prompt_len=TP, row_len=R, rows_multiple=4)
    assert four.tokens.shape[1] == -(-need // 4) * 4
    fixed = P.pack_update_batch(padded, prompt_len=TP, row_len=R, num_rows=need + 3)
    assert fixed.tokens.shape == (1, need + 3, R) and not fixed.segment_ids[0, need:].any()
    with pytest.raises(ValueError, match="num_rows"):
        P.pack_update_batch(padded, prompt_len=TP, row_len=R, num_rows=need - 1)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="sample 1 has 3 \\+ 4 tokens.*row length 6"):
        P.pack([[1], [1, 2, 3]], [[1], [1, 2, 3, 4]], row_len=6)
    with pytest.raises(ValueError, match="sample 0 has an empty prompt"):
        P.pack([[]], [[1]], row_len=6)
    with pytest.raises(ValueError, match="num_bins=2"):
        P.pack([[1]] * 6, [[1]] * 6, row_len=6, num_bins=2, group_size=2)
    update = U.make_update(
        GRAPHDEF,
        optax.sgd(1.0),
        U.sft_loss(TP, packed=True),
        batch_size=4,
        num_microbatches=2,
        packed=True,
    )
    one_bin = jax.tree.map(jnp.asarray, P.pack([[1]] * 4, [[2]] * 4, row_len=4))
    with pytest.raises(ValueError, match="pack with num_bins=2"):
        jax.eval_shape(update, PARAMS, optax.sgd(1.0).init(PARAMS), one_bin, KEY, 0)


# --------------------------------------------------------------------------------------------------
# First-fit decreasing.


def _optimal_bins(lengths, capacity):
    """Fewest bins, by exhaustive search over assignments (small inputs only)."""
    n = len(lengths)
    for k in range(1, n + 1):
        for assign in itertools.product(range(k), repeat=n):
            loads = np.bincount(assign, weights=lengths, minlength=k)
            if loads.max() <= capacity:
                return k
    return n


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=1, max_size=40), st.integers(20, 48))
def test_ffd_rows_never_overflow_and_are_near_minimal(lengths, capacity):
    bins = P.first_fit_decreasing(lengths, capacity)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    loads = [sum(lengths[i] for i in b) for b in bins]
    assert max(loads) <= capacity
    # First fit: an item went to a later bin only because it did not fit in any earlier one, so
    # any two bins together hold more than the capacity; hence rows < 2 * sum / capacity + 1.
    for a, b in itertools.combinations(loads, 2):
        assert a + b > capacity
    assert len(bins) >= -(-sum(lengths) // capacity)
    assert P.first_fit_decreasing(lengths, capacity) == bins  # deterministic


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 10), min_size=1, max_size=6), st.integers(10, 16))
def test_ffd_within_its_bound_of_the_optimum(lengths, capacity):
    opt = _optimal_bins(lengths, capacity)
    assert len(P.first_fit_decreasing(lengths, capacity)) <= 11 / 9 * opt + 6 / 9


def test_balance_groups():
    tokens = [50, 3, 3, 40, 10, 2, 7, 30]
    bins = P.balance_groups(tokens, 4)
    assert sorted(g for b in bins for g in b) == list(range(8))
    assert all(len(b) == 2 and b == sorted(b) for b in bins)
    totals = [sum(tokens[g] for g in b) for b in bins]
    assert max(totals) - min(totals) <= max(tokens) - min(tokens)
    assert P.balance_groups(tokens, 4) == bins
    with pytest.raises(ValueError, match="3 equal bins"):
        P.balance_groups(tokens, 3)


def test_dr_grpo_on_packed_rows_needs_l_max():
    packed = _one_bin(P.pack_update_batch(_padded_batch(0), prompt_len=TP, row_len=R))
    cfg = dataclasses.replace(LossConfig(), loss_agg="seq_mean_token_sum_norm", l_max=None)
    with pytest.raises(ValueError, match="needs l_max"):
        U.pg_loss(TP, cfg, packed=True)(MODEL, packed, 0)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 40), st.integers(1, 24), st.integers(24, 80), st.integers(0, 2**31 - 1))
def test_max_rows_bounds_ffd_for_samples_up_to_a_length(n, max_len, row_len, seed):
    lengths = np.random.RandomState(seed).randint(1, max_len + 1, n)
    assert len(P.first_fit_decreasing(lengths, row_len)) <= P.max_rows(n, max_len, row_len)
    # Tight when every sample has the full length: k = row_len // max_len to a row.
    full = [max_len] * n
    assert len(P.first_fit_decreasing(full, row_len)) == P.max_rows(n, max_len, row_len)
    with pytest.raises(ValueError, match="do not fit"):
        P.max_rows(n, row_len + 1, row_len)


def test_add_rows_appends_empty_rows_with_the_same_loss():
    rng = np.random.RandomState(4)
    prompts = [list(rng.randint(3, 37, rng.randint(1, TP + 1))) for _ in range(5)]
    comps = [list(rng.randint(3, 37, rng.randint(1, TC + 1))) for _ in range(5)]
    packed = P.pack(prompts, comps, row_len=R, pad_id=2)
    need = packed.tokens.shape[1]
    more = P.add_rows(packed, need + 3, pad_id=2)
    assert more.tokens.shape == (1, need + 3, R) and more.valid.shape == packed.valid.shape
    assert (more.tokens[0, need:] == 2).all() and not more.segment_ids[0, need:].any()
    assert not more.loss_mask[0, need:].any()
    np.testing.assert_array_equal(more.tokens[:, :need], packed.tokens)
    assert P.add_rows(packed, need) is not None
    _assert_same(
        _value_and_grad(U.sft_loss(TP, packed=True), _one_bin(packed)),
        _value_and_grad(U.sft_loss(TP, packed=True), _one_bin(more)),
    )
    with pytest.raises(ValueError, match="num_rows"):
        P.add_rows(packed, need - 1)
