"""Sampling methods draw from the distribution they claim, on fixed logits (chi-square)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from lenrl.sampling import Greedy, Sample, token_logprob

LOGITS_V = np.array([2.0, 1.5, 1.2, 0.3, 0.0, -0.5, -1.0, -3.0], np.float32)
DRAWS = 20_000


def np_expected(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Independent numpy reference: temperature, then top-k, then nucleus, renormalised."""
    z = logits.astype(np.float64) / temperature
    order = np.argsort(-z, kind="stable")
    keep = np.zeros(z.shape, bool)
    keep[order[: top_k or len(z)]] = True
    p = np.where(keep, np.exp(z - z.max()), 0.0)
    p /= p.sum()
    mass = 0.0
    for i in order:
        if not keep[i]:
            continue
        if mass >= top_p:
            keep[i] = False
        mass += p[i]
    p = np.where(keep, p, 0.0)
    return p / p.sum()


def draw(method, logits_V, n=DRAWS, seed=0, use_jit=True):
    keys = jax.random.split(jax.random.key(seed), n)
    logits = jnp.broadcast_to(jnp.asarray(logits_V), (n, len(logits_V)))
    fn = jax.jit(method.__call__) if use_jit else method.__call__
    tokens, logp = fn(logits, keys)
    return np.asarray(tokens), np.asarray(logp)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(temperature=0.6),
        dict(top_k=3),
        dict(top_p=0.7),
        dict(temperature=1.4, top_k=5, top_p=0.8),
    ],
)
def test_sample_matches_distribution(kw):
    want = np_expected(LOGITS_V, **kw)
    tokens, logp = draw(Sample(**kw), LOGITS_V)
    counts = np.bincount(tokens, minlength=len(LOGITS_V))
    support = want > 0
    assert counts[~support].sum() == 0, f"sampled outside the kept set: {counts}"
    p_value = stats.chisquare(counts[support], DRAWS * want[support]).pvalue
    assert p_value > 1e-3, (kw, counts, DRAWS * want)
    np.testing.assert_allclose(logp, np.log(want[tokens]), atol=1e-5)
    # log_prob gives the same numbers for given tokens, and -inf outside the kept set
    lp = Sample(**kw).log_prob(jnp.tile(LOGITS_V, (len(LOGITS_V), 1)), jnp.arange(len(LOGITS_V)))
    np.testing.assert_allclose(np.exp(np.asarray(lp)), want, atol=1e-6)


@pytest.mark.parametrize("use_jit", [True, False])
def test_deterministic_per_key(use_jit):
    method = Sample(temperature=1.0, top_k=4, top_p=0.9)
    a, _ = draw(method, LOGITS_V, n=64, seed=1, use_jit=use_jit)
    b, _ = draw(method, LOGITS_V, n=64, seed=1, use_jit=use_jit)
    c, _ = draw(method, LOGITS_V, n=64, seed=2, use_jit=use_jit)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_greedy_and_policy_logprob():
    logits = np.random.RandomState(0).randn(5, 11).astype(np.float32)
    tokens, logp = Greedy()(jnp.asarray(logits), jax.random.split(jax.random.key(0), 5))
    np.testing.assert_array_equal(tokens, logits.argmax(-1))
    assert (np.asarray(logp) == 0).all()
    assert np.isneginf(np.asarray(Greedy().log_prob(logits, (logits.argmax(-1) + 1) % 11))).all()
    pick = np.array([0, 3, 10, 7, 7])
    ref = logits[np.arange(5), pick] - np.log(np.exp(logits).sum(-1))
    np.testing.assert_allclose(
        token_logprob(jnp.asarray(logits), jnp.asarray(pick)), ref, atol=1e-6
    )


def test_top_k_larger_than_vocab_is_off():
    want = np_expected(LOGITS_V)
    lp = Sample(top_k=100).log_prob(jnp.tile(LOGITS_V, (8, 1)), jnp.arange(8))
    np.testing.assert_allclose(np.exp(np.asarray(lp)), want, atol=1e-6)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(top_k=-1), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
    ],
)
def test_invalid_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        Sample(**kw)


@pytest.mark.parametrize(
    "kw",
    [None, dict(), dict(temperature=0.6), dict(top_k=3), dict(temperature=1.4, top_p=0.8)],
    ids=["greedy", "plain", "temperature", "top_k", "top_p"],
)
def test_step_gives_the_policy_normaliser_and_sampling_logprob(kw):
    """``step`` = ``__call__`` plus ``logsumexp(logits)``; log-probs against numpy (f64)."""
    logits = (3 * np.random.RandomState(1).randn(6, 11)).astype(np.float32)
    logits[2, [0, 4]] = -np.inf  # masked vocabulary entries stay out of both normalisers
    method = Greedy() if kw is None else Sample(**kw)
    keys = jax.random.split(jax.random.key(0), 6)
    tokens, samp_logp, lse = jax.jit(method.step)(jnp.asarray(logits), keys)
    np.testing.assert_allclose(lse, special.logsumexp(logits.astype(np.float64), -1), atol=1e-5)
    again = method(jnp.asarray(logits), keys)
    np.testing.assert_array_equal(again[0], tokens)
    np.testing.assert_array_equal(again[1], samp_logp)
    tokens = np.asarray(tokens)
    if kw is None:
        np.testing.assert_array_equal(tokens, logits.argmax(-1))
        assert (np.asarray(samp_logp) == 0).all()
        return
    want = np.array([np_expected(row, **kw)[t] for row, t in zip(logits, tokens, strict=True)])
    assert (want > 0).all()
    np.testing.assert_allclose(samp_logp, np.log(want), atol=1e-5)
