"""Advantage estimators against loop references, hand-worked examples and masking properties."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenrl.algorithms import advantages as adv

from .references import np_drpo_weights

EPS = 1e-6
SHAPES = ((3, 4), (2, 8))  # [P, G]; few shapes so jit compiles stay cheap
HP = {"positive_group": {"l_max": 64.0}, "hbpo": {"num_subgroups": 2}}


# ------------------------------------------------------------------------------------------------
# Loop references (population std over valid samples, as the library documents).


def _group(row, mask):
    return [float(x) for x, m in zip(row, mask, strict=True) if m]


def _std(xs):
    mu = sum(xs) / len(xs)
    return (sum((x - mu) ** 2 for x in xs) / len(xs)) ** 0.5


def _constant(xs):
    return len(xs) < 2 or max(xs) == min(xs)


def ref_grpo(r, valid, **_):
    out = np.zeros(r.shape)
    for p in range(r.shape[0]):
        xs = _group(r[p], valid[p])
        if _constant(xs):
            continue
        mu, sd = sum(xs) / len(xs), _std(xs)
        for g in range(r.shape[1]):
            if valid[p, g]:
                out[p, g] = (r[p, g] - mu) / (sd + EPS)
    return out


def ref_dr_grpo(r, valid, **_):
    out = np.zeros(r.shape)
    for p in range(r.shape[0]):
        xs = _group(r[p], valid[p])
        if not _constant(xs):
            for g in range(r.shape[1]):
                out[p, g] = r[p, g] - sum(xs) / len(xs) if valid[p, g] else 0.0
    return out


def ref_rloo(r, valid, **_):
    out = np.zeros(r.shape)
    for p in range(r.shape[0]):
        xs = _group(r[p], valid[p])
        if not _constant(xs):
            for g in range(r.shape[1]):
                if valid[p, g]:
                    out[p, g] = r[p, g] - (sum(xs) - r[p, g]) / (len(xs) - 1)
    return out


def ref_batch_whiten(r, valid, correct, length, boost=0.0, **_):
    a, used = np.zeros(r.shape), np.zeros(r.shape, bool)
    for p in range(r.shape[0]):
        xs = _group(r[p], valid[p])
        if not _constant(xs):
            for g in range(r.shape[1]):
                if valid[p, g]:
                    a[p, g], used[p, g] = r[p, g] - sum(xs) / len(xs), True
    tokens = [
        x
        for x, n, u in zip(a.ravel(), length.ravel(), used.ravel(), strict=True)
        if u
        for _ in range(n)
    ]
    if not tokens:
        return np.zeros(r.shape)
    mu, sd = np.mean(tokens), np.std(tokens)  # expand every sample into its tokens
    return np.where(used, (a - mu) / (sd + EPS) + boost * correct, 0.0)


def ref_positive_group(r, valid, correct, length, l_max, lam=0.1, **_):
    w = np_drpo_weights(length, correct, valid, l_max, lam)
    out = np.zeros(r.shape)
    for p in range(r.shape[0]):
        c = _group(correct[p] >= 0.5, valid[p])
        if _constant(c):
            continue
        k, mu, sd = sum(c), sum(c) / len(c), _std(c)
        for g in range(r.shape[1]):
            if valid[p, g]:
                base = (float(correct[p, g] >= 0.5) - mu) / (sd + EPS)
                out[p, g] = base * k * w[p, g] if correct[p, g] >= 0.5 else base
    return out


def ref_hbpo(r, valid, num_subgroups, **_):
    out = np.zeros(r.shape)
    size = r.shape[1] // num_subgroups
    for p in range(r.shape[0]):
        xs = _group(r[p], valid[p])
        if _constant(xs):
            continue
        mu, sd = sum(xs) / len(xs), _std(xs)
        for k in range(num_subgroups):
            idx = range(k * size, (k + 1) * size)
            sub = [float(r[p, g]) for g in idx if valid[p, g]]
            if not sub:
                continue
            mu_k, sd_k = sum(sub) / len(sub), _std(sub)
            for g in idx:
                if valid[p, g]:
                    intra = 0.0 if _constant(sub) else (r[p, g] - mu_k) / (sd_k + EPS)
                    out[p, g] = intra + (mu_k - mu) / (sd + EPS)
    return out


REFS = {
    "grpo": ref_grpo,
    "dr_grpo": ref_dr_grpo,
    "rloo": ref_rloo,
    "batch_whiten": ref_batch_whiten,
    "positive_group": ref_positive_group,
    "hbpo": ref_hbpo,
}


@functools.cache
def jitted(name):
    return jax.jit(adv.get_advantage(name, **HP.get(name, {})))


# ------------------------------------------------------------------------------------------------
# Random batches.


@st.composite
def batches(draw):
    p, g = draw(st.sampled_from(SHAPES))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    correct = (rng.random((p, g)) < draw(st.sampled_from([0.2, 0.5, 0.8]))).astype(np.float32)
    length = rng.integers(1, 64, (p, g)).astype(np.int32)
    if draw(st.booleans()):  # discrete rewards: ties and constant groups are common
        rewards = correct - 0.5 * rng.integers(0, 2, (p, g))
    else:
        rewards = rng.normal(size=(p, g))
    rewards = rewards.astype(np.float32)
    valid = rng.random((p, g)) < draw(st.sampled_from([1.0, 0.8, 0.5]))
    return dict(rewards=rewards, valid=valid, correct=correct, length=length)


def run(name, b, **kw):
    return np.asarray(
        jitted(name)(b["rewards"], valid=b["valid"], correct=b["correct"], length=b["length"], **kw)
    )


@pytest.mark.parametrize("name", sorted(REFS))
@settings(max_examples=25, deadline=None)
@given(b=batches())
def test_matches_reference(name, b):
    ref = REFS[name](
        b["rewards"].astype(float),
        valid=b["valid"],
        correct=b["correct"],
        length=b["length"],
        **HP.get(name, {}),
    )
    np.testing.assert_allclose(run(name, b), ref, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("name", sorted(REFS))
@settings(max_examples=20, deadline=None)
@given(b=batches(), seed=st.integers(0, 2**31 - 1))
def test_invalid_entries_change_nothing(name, b, seed):
    rng = np.random.default_rng(seed)
    invalid = ~b["valid"]
    garbage = dict(b)
    garbage["rewards"] = np.where(invalid, rng.normal(size=invalid.shape) * 1e3, b["rewards"])
    garbage["rewards"] = np.where(
        invalid & (rng.random(invalid.shape) < 0.3), np.nan, garbage["rewards"]
    )
    garbage["correct"] = np.where(invalid, 1.0 - b["correct"], b["correct"])
    garbage["length"] = np.where(invalid, 10_000, b["length"]).astype(np.int32)
    base, other = run(name, b), run(name, garbage)
    np.testing.assert_array_equal(other, base)
    assert np.all(base[invalid] == 0.0)


@pytest.mark.parametrize("name", sorted(REFS))
def test_eager_jit_vmap_agree(name):
    rng = np.random.default_rng(0)
    rewards = rng.integers(0, 3, (3, 2, 8)).astype(np.float32)  # [B, P, G]
    data = dict(
        valid=rng.random((3, 2, 8)) < 0.8,
        correct=(rewards > 0).astype(np.float32),
        length=rng.integers(1, 64, (3, 2, 8)).astype(np.int32),
    )
    fn = adv.get_advantage(name, **HP.get(name, {}))
    loop = np.stack([fn(rewards[i], **{k: v[i] for k, v in data.items()}) for i in range(3)])
    mapped = jax.vmap(lambda r, v, c, n: fn(r, valid=v, correct=c, length=n))(
        rewards, data["valid"], data["correct"], data["length"]
    )
    jit_one = jax.jit(fn)(rewards[0], **{k: v[0] for k, v in data.items()})
    np.testing.assert_allclose(mapped, loop, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jit_one, loop[0], rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Hand-worked examples.

ALL = np.ones((1, 4), bool)


def test_grpo_hand():
    a = adv.grpo(np.array([[1.0, 0.0, 1.0, 0.0]]), valid=ALL)  # mean 0.5, std 0.5
    np.testing.assert_allclose(a, [[0.5 / (0.5 + EPS), -0.5 / (0.5 + EPS)] * 2], rtol=1e-6)


def test_rloo_and_dr_grpo_hand():
    r, v = np.array([[1.0, 0.0, 0.0]]), np.ones((1, 3), bool)
    np.testing.assert_allclose(adv.rloo(r, valid=v), [[1.0, -0.5, -0.5]], rtol=1e-6)
    np.testing.assert_allclose(adv.dr_grpo(r, valid=v), [[2 / 3, -1 / 3, -1 / 3]], rtol=1e-6)
    # An invalid third sample is as if absent: G_valid = 2.
    v2 = np.array([[True, True, False]])
    np.testing.assert_allclose(adv.rloo(r, valid=v2), [[1.0, -1.0, 0.0]], rtol=1e-6)


def test_batch_whiten_hand():
    # Group 1: a = (+0.5, -0.5) with lengths (3, 1) -> tokens {0.5 x3, -0.5}: mu = 0.25,
    # sigma = sqrt(0.75 * 0.0625 + 0.25 * 0.5625) = sqrt(0.1875). Group 2 is constant: left out, 0.
    r = np.array([[1.0, 0.0], [1.0, 1.0]])
    length = np.array([[3, 1], [5, 5]])
    a = adv.batch_whiten(r, valid=np.ones((2, 2), bool), correct=r, length=length, boost=0.1)
    s = np.sqrt(0.1875)
    np.testing.assert_allclose(a, [[0.25 / (s + EPS) + 0.1, -0.75 / (s + EPS)], [0, 0]], rtol=1e-5)


def test_positive_group_hand():
    # Two correct (lengths 10, 30, l_max 100, lam 0.1): w = softmax(9, 7) = (0.8808, 0.1192);
    # base a = +-0.5 / 0.5 = +-1, K = 2 -> (1.7616, 0.2384), wrong samples -1.
    a = adv.positive_group(
        None,
        valid=ALL,
        correct=np.array([[1.0, 1.0, 0.0, 0.0]]),
        length=np.array([[10, 30, 20, 40]]),
        l_max=100.0,
    )
    w0 = 1.0 / (1.0 + np.exp(-2.0))
    np.testing.assert_allclose(a, [[2 * w0, 2 * (1 - w0), -1, -1]], rtol=1e-5)


def test_hbpo_hand():
    # Subgroups (1, 0) (mean 0.5, std 0.5) and (1, 1) (constant: intra 0); group mean 0.75,
    # std sqrt(3) / 4.
    a = adv.hbpo(np.array([[1.0, 0.0, 1.0, 1.0]]), valid=ALL, num_subgroups=2)
    sd = np.sqrt(3) / 4
    inter1, inter2 = (0.5 - 0.75) / (sd + EPS), (1 - 0.75) / (sd + EPS)
    np.testing.assert_allclose(
        a, [[0.5 / (0.5 + EPS) + inter1, -0.5 / (0.5 + EPS) + inter1, inter2, inter2]], rtol=1e-5
    )


def test_constant_groups_get_zero():
    r = np.full((2, 4), 0.1, np.float32)  # mean may round; the result must still be exactly 0
    n = np.full((2, 4), 7)
    for name, fn in adv.ADVANTAGES.items():
        out = fn(r, valid=np.ones((2, 4), bool), correct=r * 0 + 1, length=n, **HP.get(name, {}))
        assert np.all(np.asarray(out) == 0.0), name


# ------------------------------------------------------------------------------------------------
# positive_group: correct samples never negative; all-correct / all-wrong groups get 0.


@settings(max_examples=30, deadline=None)
@given(b=batches())
def test_positive_group_signs(b):
    a = run("positive_group", b)
    pos = b["valid"] & (b["correct"] >= 0.5)
    neg = b["valid"] & (b["correct"] < 0.5)
    assert np.all(a[pos] >= 0.0)
    assert np.all(a[neg] <= 0.0)
    one_sided = ~(pos.any(-1) & neg.any(-1))
    assert np.all(a[one_sided] == 0.0)


# ------------------------------------------------------------------------------------------------
# Registry and errors.


def test_registry_names_match_spec():
    assert set(adv.ADVANTAGES) == {
        "grpo",
        "dr_grpo",
        "rloo",
        "batch_whiten",
        "positive_group",
        "hbpo",
    }


def test_get_advantage_errors():
    with pytest.raises(ValueError, match="valid: .*grpo"):
        adv.get_advantage("ppo")
    with pytest.raises(ValueError, match="drpo"):
        adv.get_advantage("drpo")
    with pytest.raises(ValueError, match="valid: \\['eps'\\]"):
        adv.get_advantage("grpo", boost=0.1)
    fn = adv.get_advantage("batch_whiten", boost=0.1)
    with pytest.raises(ValueError, match="needs `length`"):
        fn(np.ones((1, 4)), valid=ALL, correct=np.ones((1, 4)))
    with pytest.raises(ValueError, match="multiple of num_subgroups"):
        adv.hbpo(np.ones((1, 6)), valid=np.ones((1, 6), bool), num_subgroups=4)
    with pytest.raises(ValueError, match="needs `l_max`"):
        adv.positive_group(None, valid=ALL, correct=np.ones((1, 4)), length=np.ones((1, 4)))
    with pytest.raises(ValueError, match="needs `correct`"):
        adv.positive_group(None, valid=ALL, length=np.ones((1, 4)), l_max=10.0)


def test_bound_hyperparameters_apply():
    r, v = jnp.array([[1.0, 0.0, 0.0, 0.0]]), ALL
    loose = adv.get_advantage("grpo", eps=1.0)(r, valid=v)
    np.testing.assert_allclose(loose, adv.grpo(r, valid=v, eps=1.0))
