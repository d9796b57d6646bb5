"""DRPO objective: loop reference, the authors' PyTorch form (gradients), masking, transforms."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lenrl.algorithms import drpo as D
from lenrl.algorithms.drpo import DRPOConfig

from .references import np_drpo_weights

P, G, T = 3, 4, 5

CONFIGS = {
    "default": DRPOConfig(),
    "no_kl": DRPOConfig(beta=0.0),
    "k1_loose": DRPOConfig(tau=1.0, lam=0.5, beta=10.0, delta=1e-3, kl_estimator="k1"),
}


def ref_drpo(logp, mask, correct, valid, cfg, logp_old=None, length=None, l_max=None):
    """Loop reference of the loss value."""
    p_, g_, t_ = logp.shape
    m = mask & valid[..., None]
    length = m.sum(-1) if length is None else length
    l_max = t_ if l_max is None else l_max
    s = np.zeros((p_, g_))
    for p in range(p_):
        for g in range(g_):
            toks = [logp[p, g, t] for t in range(t_) if m[p, g, t]]
            s[p, g] = sum(toks) / max(len(toks), 1)
    w = np_drpo_weights(length, correct, valid, l_max, cfg.lam)
    objectives = []
    for p in range(p_):
        pos = [g for g in range(g_) if valid[p, g] and correct[p, g] >= 0.5]
        neg = [g for g in range(g_) if valid[p, g] and correct[p, g] < 0.5]
        if pos and neg:
            lme = math.log(sum(math.exp(s[p, j] / cfg.tau) for j in neg) / len(neg))
            objectives.append(sum(w[p, i] * s[p, i] for i in pos) - cfg.tau * lme)
    loss = -sum(objectives) / len(objectives) if objectives else 0.0
    if cfg.beta > 0:
        kls = []
        for idx in zip(*np.nonzero(m), strict=True):
            d = logp[idx] - logp_old[idx]  # log pi_theta - log pi_old
            kls.append(math.exp(d) - d - 1 if cfg.kl_estimator == "k3" else -d)
        kl = sum(kls) / max(len(kls), 1)
        loss += 0.5 * cfg.beta * max(kl - cfg.delta, 0.0) ** 2
    return loss


def torch_authors_grad(logp, mask, correct, logp_old, cfg):
    """Gradient of the authors' DRPO loss (their PyTorch formulation, all groups qualifying)."""
    p_, g_, t_ = logp.shape
    lp = torch.tensor(logp.reshape(p_ * g_, t_), dtype=torch.float64, requires_grad=True)
    old = torch.tensor(logp_old.reshape(p_ * g_, t_), dtype=torch.float64)
    m = torch.tensor(mask.reshape(p_ * g_, t_)).double()
    log_ratio = lp - old
    kl = ((-log_ratio + torch.exp(log_ratio) - 1) * m).sum() / m.sum()
    scores = ((lp * m).sum(1) / m.sum(1)).view(p_, g_)
    length_ratio = (m.sum(1) / t_).view(p_, g_)
    rewards = torch.tensor(correct)
    pos, neg = rewards == 1, rewards == 0
    z = (scores / cfg.tau).masked_fill(~neg, float("-inf"))
    z_max = z.max(-1, keepdim=True).values
    neg_exp = torch.exp((scores / cfg.tau - z_max.detach()) * neg) * neg
    neg_sum = neg_exp.sum(-1, keepdim=True)
    neg_lme = neg_sum / neg_sum.detach()  # value 1, gradient of log-sum-exp
    weight = torch.exp((1 - length_ratio) / cfg.lam)
    per_q = (weight * (scores - cfg.tau * neg_lme) * pos).sum(1) / (weight * pos).sum(1)
    constraint = torch.clamp(cfg.beta * (kl - cfg.delta), min=0).detach() * kl
    loss = -per_q.sum() / p_ + constraint
    loss.backward()
    return lp.grad.numpy().reshape(p_, g_, t_)


def make_batch(seed, p=P, g=G, t=T, dtype=np.float32, all_valid=False, qualifying=False):
    rng = np.random.default_rng(seed)
    logp = (rng.normal(size=(p, g, t)) - 1.0).astype(dtype)
    lengths = rng.integers(1, t + 1, (p, g))
    correct = (rng.random((p, g)) < 0.5).astype(np.float32)
    if qualifying:  # at least one correct and one wrong per group
        correct[:, 0], correct[:, 1] = 1.0, 0.0
    return dict(
        logp=logp,
        mask=np.arange(t) < lengths[..., None],
        correct=correct,
        valid=np.ones((p, g), bool) if all_valid else rng.random((p, g)) < 0.85,
        logp_old=(logp + rng.normal(size=(p, g, t)) * 0.05).astype(dtype),
    )


def call(cfg, b):
    return D.drpo_loss(b["logp"], b["mask"], b["correct"], b["valid"], cfg, logp_old=b["logp_old"])


@functools.cache
def jitted(cfg):
    return jax.jit(functools.partial(call, cfg))


# ------------------------------------------------------------------------------------------------
# References.


@pytest.mark.parametrize("name", sorted(CONFIGS))
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_matches_loop_reference(name, seed):
    cfg, b = CONFIGS[name], make_batch(seed)
    loss, metrics = jitted(cfg)(b)
    b64 = {k: v.astype(float) if v.dtype == np.float32 else v for k, v in b.items()}
    want = ref_drpo(b64["logp"], b["mask"], b["correct"], b["valid"], cfg, b64["logp_old"])
    np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-5)
    pos, neg = b["valid"] & (b["correct"] >= 0.5), b["valid"] & (b["correct"] < 0.5)
    assert float(metrics["num_groups"]) == float((pos.any(-1) & neg.any(-1)).sum())


@pytest.mark.parametrize("name", ["default", "k1_loose"])
def test_gradient_matches_authors_pytorch(name):
    cfg = CONFIGS[name]
    if cfg.kl_estimator != "k3":  # the authors' reference below uses their low_var_kl (k3)
        cfg = DRPOConfig(tau=cfg.tau, lam=cfg.lam, beta=cfg.beta, delta=cfg.delta)
    grad_fn = jax.jit(jax.grad(lambda x, b: call(cfg, {**b, "logp": x})[0]))
    for seed in range(3):
        b = make_batch(seed, all_valid=True, qualifying=True)
        b["logp_old"] = b["logp"] + 0.3 * np.random.default_rng(seed).normal(size=b["logp"].shape)
        b["logp_old"] = b["logp_old"].astype(np.float32)  # KL above delta: the constraint is active
        want = torch_authors_grad(
            b["logp"].astype(float), b["mask"], b["correct"], b["logp_old"].astype(float), cfg
        )
        np.testing.assert_allclose(grad_fn(b["logp"], b), want, rtol=1e-4, atol=1e-6)


def test_hand_example():
    # One group: scores s = (-1, -2, -3) (one token each); sample 0 correct (w = 1).
    logp = np.array([[[-1.0], [-2.0], [-3.0]]])
    loss, m = D.drpo_loss(
        logp, np.ones((1, 3, 1), bool), np.array([[1.0, 0.0, 0.0]]), np.ones((1, 3), bool),
        DRPOConfig(beta=0.0),
    )  # fmt: skip
    want = -(-1.0 - 10.0 * math.log((math.exp(-0.2) + math.exp(-0.3)) / 2))
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(m["score_pos"], -1.0)
    np.testing.assert_allclose(m["score_neg"], -2.5)


# ------------------------------------------------------------------------------------------------
# Group dropping and masking.


def test_one_sided_groups_are_dropped():
    cfg = CONFIGS["no_kl"]
    b = make_batch(0, p=2, all_valid=True, qualifying=True)
    base, _ = jitted(cfg)(b)
    extra = make_batch(1, p=2, all_valid=True)
    extra["correct"][0], extra["correct"][1] = 1.0, 0.0  # all correct, all wrong
    both = {k: np.concatenate([b[k], extra[k]]) for k in b}
    loss, m = jitted(cfg)(both)
    np.testing.assert_allclose(loss, base, rtol=1e-6)
    assert float(m["num_groups"]) == 2.0
    # No qualifying group at all: zero objective, finite zero gradient.
    fn = jax.jit(jax.value_and_grad(lambda x: call(cfg, {**extra, "logp": x})[0]))
    loss, grad = fn(extra["logp"])
    assert float(loss) == 0.0 and np.all(np.asarray(grad) == 0.0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_invalid_samples_change_nothing(name):
    cfg = CONFIGS[name]
    b = make_batch(4)
    b["valid"][0, :2] = [True, False]
    inv = ~b["valid"]
    junk = dict(b)
    rng = np.random.default_rng(1)
    for key in ("logp", "logp_old"):
        junk[key] = np.where(inv[..., None], rng.normal(size=b[key].shape) * 30, b[key])
        junk[key] = junk[key].astype(np.float32)
    junk["correct"] = np.where(inv, 1.0 - b["correct"], b["correct"]).astype(np.float32)
    fn = jax.jit(jax.value_and_grad(lambda x, bb: call(cfg, {**bb, "logp": x})[0]))
    l0, g0 = fn(b["logp"], b)
    l1, g1 = fn(junk["logp"], junk)
    np.testing.assert_allclose(l1, l0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g1)[~inv], np.asarray(g0)[~inv], rtol=1e-5, atol=1e-8)
    assert np.all(np.asarray(g1)[inv] == 0.0)


def test_grad_finite_with_garbage_in_masked_positions():
    b = make_batch(2)
    pad = ~b["mask"]
    b["logp"] = np.where(pad, np.nan, b["logp"]).astype(np.float32)
    b["logp_old"] = np.where(pad, np.inf, b["logp_old"]).astype(np.float32)
    loss, grad = jax.jit(jax.value_and_grad(lambda x: call(DRPOConfig(), {**b, "logp": x})[0]))(
        b["logp"]
    )
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


# ------------------------------------------------------------------------------------------------
# Gradients and transforms.


def test_grad_matches_finite_differences(x64):
    cfg = CONFIGS["k1_loose"]
    b = make_batch(3, p=2, g=3, t=2, dtype=np.float64, qualifying=True, all_valid=True)
    b["logp_old"] = b["logp"] + 0.2  # KL above delta: the hinge is active

    def f(x):
        return call(cfg, {**b, "logp": x})[0]

    x0 = jnp.asarray(b["logp"])
    assert x0.dtype == jnp.float64
    grad = np.asarray(jax.jit(jax.grad(f))(x0))
    f = jax.jit(f)
    h, fd = 1e-6, np.zeros(x0.shape)
    for idx in np.ndindex(*x0.shape):
        e = np.zeros(x0.shape)
        e[idx] = h
        fd[idx] = (f(x0 + e) - f(x0 - e)) / (2 * h)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


def test_eager_jit_vmap_agree():
    cfg = CONFIGS["default"]
    batches = [make_batch(s) for s in range(3)]
    stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
    loop = [call(cfg, b) for b in batches]
    mapped = jax.vmap(functools.partial(call, cfg))(stacked)
    for i, (loss, metrics) in enumerate(loop):
        np.testing.assert_allclose(mapped[0][i], loss, rtol=1e-6)
        np.testing.assert_allclose(jitted(cfg)(batches[i])[0], loss, rtol=1e-6)
        for key, value in metrics.items():
            np.testing.assert_allclose(mapped[1][key][i], value, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------------------
# Config.


@pytest.mark.parametrize(
    "kwargs",
    [dict(tau=0.0), dict(lam=-1.0), dict(beta=-1.0), dict(delta=-1e-4), dict(kl_estimator="k2")],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        DRPOConfig(**kwargs)


def test_kl_needs_logp_old():
    b = make_batch(0)
    with pytest.raises(ValueError, match="logp_old"):
        D.drpo_loss(b["logp"], b["mask"], b["correct"], b["valid"], DRPOConfig())
    loss, _ = D.drpo_loss(b["logp"], b["mask"], b["correct"], b["valid"], DRPOConfig(beta=0.0))
    assert np.isfinite(loss)
