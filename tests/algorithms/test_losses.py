"""Clipped policy loss: loop and PyTorch references, hand examples, gradients, masking, config."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lenrl.algorithms import losses as L
from lenrl.algorithms.losses import LossConfig

N, T = 6, 5  # one shape for the random tests: one compile per config

CONFIGS = {
    "grpo": LossConfig.grpo(),
    "dapo": LossConfig.dapo(),
    "dapo_dual_masktrunc": LossConfig.dapo(dual_clip=3.0, mask_truncated=True),
    "drgrpo_k1": LossConfig(beta=0.1, kl_estimator="k1", loss_agg="seq_mean_token_sum_norm"),
    "drgrpo_k2_lmax": LossConfig(
        beta=0.05, kl_estimator="k2", loss_agg="seq_mean_token_sum_norm", l_max=8
    ),
    "seqmean_dual_masktrunc": LossConfig(dual_clip=2.0, mask_truncated=True, beta=0.0),
}


# ------------------------------------------------------------------------------------------------
# Loop reference.


def ref_loss(new, old, adv, mask, cfg, ref=None, truncated=None, valid=None):
    """Token-by-token Python reference; returns (loss, clip_frac)."""
    n, t = new.shape
    valid = np.ones(n, bool) if valid is None else valid
    truncated = np.zeros(n, bool) if truncated is None else truncated
    per_sample, clipped, count = [], 0, 0
    for i in range(n):
        if not valid[i] or (cfg.mask_truncated and truncated[i]):
            continue
        toks = []
        for j in range(t):
            if not mask[i, j]:
                continue
            rho, a = math.exp(new[i, j] - old[i, j]), adv[i]
            clip = min(max(rho, 1 - cfg.eps_low), 1 + cfg.eps_high)
            pg = -min(rho * a, clip * a)
            is_clipped = (a > 0 and rho > 1 + cfg.eps_high) or (a < 0 and rho < 1 - cfg.eps_low)
            if cfg.dual_clip is not None and a < 0:
                is_clipped = is_clipped or rho > cfg.dual_clip
                pg = min(pg, cfg.dual_clip * abs(a))
            if cfg.beta:
                d = new[i, j] - ref[i, j]
                kl = {"k1": d, "k2": 0.5 * d * d, "k3": math.exp(-d) + d - 1}[cfg.kl_estimator]
                pg += cfg.beta * kl
            toks.append(pg)
            clipped += is_clipped
            count += 1
        per_sample.append(toks)
    clip_frac = clipped / max(count, 1)
    if cfg.loss_agg == "token_mean":
        flat = [x for toks in per_sample for x in toks]
        return sum(flat) / max(len(flat), 1), clip_frac
    if cfg.loss_agg == "seq_mean_token_mean":
        means = [sum(toks) / len(toks) for toks in per_sample if toks]
        return sum(means) / max(len(means), 1), clip_frac
    total = sum(x for toks in per_sample for x in toks)
    return total / (max(len(per_sample), 1) * (cfg.l_max or t)), clip_frac


def torch_loss(new, old, adv, mask, cfg, ref=None, truncated=None, valid=None):
    """Vectorised PyTorch reference (verl-style); returns (loss, d loss / d logp_new)."""
    new = torch.tensor(new, dtype=torch.float64, requires_grad=True)
    old, adv = torch.tensor(old, dtype=torch.float64), torch.tensor(adv, dtype=torch.float64)
    keep = torch.tensor(valid if valid is not None else np.ones(new.shape[0], bool))
    if cfg.mask_truncated:
        keep = keep & ~torch.tensor(truncated)
    m = (torch.tensor(mask) & keep[:, None]).double()
    ratio = torch.exp(new - old)
    a = adv[:, None]
    loss1 = -a * ratio
    loss2 = -a * torch.clamp(ratio, 1 - cfg.eps_low, 1 + cfg.eps_high)
    pg = torch.maximum(loss1, loss2)
    if cfg.dual_clip is not None:
        pg = torch.where(a < 0, torch.minimum(pg, -a * cfg.dual_clip), pg)
    if cfg.beta:
        d = torch.tensor(ref, dtype=torch.float64) - new
        kl = {"k1": -d, "k2": 0.5 * d**2, "k3": torch.exp(d) - d - 1}[cfg.kl_estimator]
        pg = pg + cfg.beta * kl
    if cfg.loss_agg == "token_mean":
        loss = (pg * m).sum() / m.sum().clamp(min=1)
    elif cfg.loss_agg == "seq_mean_token_mean":
        cnt = m.sum(-1)
        seq = (pg * m).sum(-1) / cnt.clamp(min=1)
        has = (cnt > 0).double()
        loss = (seq * has).sum() / has.sum().clamp(min=1)
    else:
        loss = (pg * m).sum() / (keep.sum().clamp(min=1) * (cfg.l_max or new.shape[1]))
    loss.backward()
    return loss.item(), new.grad.numpy()


# ------------------------------------------------------------------------------------------------
# Random batches.


def make_batch(seed, n=N, t=T, dtype=np.float32):
    rng = np.random.default_rng(seed)
    new = (rng.normal(size=(n, t)) * 0.5 - 1.0).astype(dtype)
    old = (new + rng.normal(size=(n, t)) * 0.4).astype(dtype)
    ref = (new + rng.normal(size=(n, t)) * 0.3).astype(dtype)
    lengths = rng.integers(0, t + 1, n)
    mask = np.arange(t)[None] < lengths[:, None]
    return dict(
        logp_new=new,
        logp_old=old,
        logp_ref=ref,
        advantages=rng.normal(size=n).astype(dtype),
        mask=mask,
        truncated=rng.random(n) < 0.3,
        valid=rng.random(n) < 0.8,
    )


@functools.cache
def jitted_loss(cfg):
    return jax.jit(functools.partial(L.policy_loss, config=cfg))


def call(cfg, b, jit=True):
    """policy_loss on batch ``b``: jitted once per config, or plain (eager or in a transform)."""
    fn = jitted_loss(cfg) if jit else functools.partial(L.policy_loss, config=cfg)
    return fn(
        b["logp_new"],
        b["logp_old"],
        b["advantages"],
        b["mask"],
        logp_ref=b["logp_ref"],
        truncated=b["truncated"],
        valid=b["valid"],
    )


def ref_args(b):
    return (b["logp_new"], b["logp_old"], b["advantages"], b["mask"])


def ref_kwargs(b):
    return dict(ref=b["logp_ref"], truncated=b["truncated"], valid=b["valid"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_matches_loop_reference(name, seed):
    cfg, b = CONFIGS[name], make_batch(seed)
    loss, metrics = call(cfg, b)
    b64 = {k: v.astype(float) if v.dtype == np.float32 else v for k, v in b.items()}
    want, clip_frac = ref_loss(*ref_args(b64), cfg, **ref_kwargs(b64))
    np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["clip_frac"], clip_frac, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_torch_value_and_grad(name):
    cfg = CONFIGS[name]
    for seed in range(3):
        b = make_batch(seed)
        b64 = {k: v.astype(float) if v.dtype == np.float32 else v for k, v in b.items()}
        want, want_grad = torch_loss(*ref_args(b64), cfg, **ref_kwargs(b64))
        fn = jax.jit(
            jax.value_and_grad(lambda x, b=b: call(cfg, {**b, "logp_new": x}, jit=False)[0])
        )
        loss, grad = fn(b["logp_new"])
        np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Hand-worked examples.


def test_clipped_surrogate_hand():
    ratio = jnp.array([[1.5, 0.5, 0.7, 5.0, 1.1]])
    a = jnp.array([[1.0, 1.0, -1.0, -1.0, -1.0]])
    # A > 0: min(1.5, 1.2) = 1.2 -> -1.2; min(0.5, 0.8) = 0.5 -> -0.5.
    # A < 0: -min(-0.7, -0.8) = 0.8; -min(-5, -1.2) = 5 (dual clip c = 3 -> 3); 1.1 inside -> 1.1.
    out = L.clipped_surrogate(ratio, a, 0.2, 0.2)
    np.testing.assert_allclose(out, [[-1.2, -0.5, 0.8, 5.0, 1.1]], rtol=1e-6)
    out = L.clipped_surrogate(ratio, a, 0.2, 0.2, dual_clip=3.0)
    np.testing.assert_allclose(out, [[-1.2, -0.5, 0.8, 3.0, 1.1]], rtol=1e-6)
    # Clip-higher: 1.5 is capped at 1.28.
    np.testing.assert_allclose(L.clipped_surrogate(1.5, 1.0, 0.2, 0.28), -1.28, rtol=1e-6)


def test_kl_estimators_hand():
    logp, ref = jnp.log(0.5), jnp.log(0.25)  # d = log pi_ref - log pi = -log 2
    np.testing.assert_allclose(L.kl_k1(logp, ref), math.log(2), rtol=1e-6)
    np.testing.assert_allclose(L.kl_k2(logp, ref), 0.5 * math.log(2) ** 2, rtol=1e-6)
    np.testing.assert_allclose(L.kl_k3(logp, ref), 0.5 - 1 + math.log(2), rtol=1e-6)


def test_aggregations_hand():
    x = jnp.array([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    mask = jnp.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], bool)
    assert float(L.aggregate(x, mask, "token_mean")) == pytest.approx(10 / 4)
    assert float(L.aggregate(x, mask, "seq_mean_token_mean")) == pytest.approx((2 + 4) / 2)
    samples = jnp.array([True, True, False])
    got = L.aggregate(x, mask, "seq_mean_token_sum_norm", samples=samples, l_max=10)
    assert float(got) == pytest.approx(10 / (2 * 10))
    assert float(L.aggregate(x, mask, "seq_mean_token_sum_norm")) == pytest.approx(10 / (3 * 3))
    assert float(L.aggregate(x, jnp.zeros_like(mask), "token_mean")) == 0.0


def test_policy_loss_hand():
    # One sample, two tokens, A = 1: ratios 1.5 (clipped to 1.28 by DAPO's clip-higher) and 0.5
    # -> token mean (-1.28 - 0.5) / 2 = -0.89.
    new = jnp.log(jnp.array([[0.75, 0.25]]))
    old = jnp.log(jnp.array([[0.5, 0.5]]))
    loss, m = L.policy_loss(new, old, jnp.array([1.0]), jnp.ones((1, 2), bool), LossConfig.dapo())
    np.testing.assert_allclose(loss, -0.89, rtol=1e-6)
    np.testing.assert_allclose(m["clip_frac"], 0.5)
    np.testing.assert_allclose(m["ratio_mean"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(m["ratio_max"], 1.5, rtol=1e-6)
    np.testing.assert_allclose(m["clip_frac_high"], 0.5)


# ------------------------------------------------------------------------------------------------
# Gradients: finite, and equal to central finite differences in f64.


@pytest.mark.parametrize("name", ["grpo", "dapo_dual_masktrunc", "drgrpo_k2_lmax"])
def test_grad_matches_finite_differences(name, x64):
    cfg = CONFIGS[name]
    b = make_batch(1, n=3, t=3, dtype=np.float64)
    assert b["valid"].any()

    def f(x):
        return call(cfg, {**b, "logp_new": x}, jit=False)[0]

    x0 = jnp.asarray(b["logp_new"])
    assert x0.dtype == jnp.float64
    grad = np.asarray(jax.jit(jax.grad(f))(x0))
    f = jax.jit(f)
    assert np.all(np.isfinite(grad))
    h, fd = 1e-6, np.zeros(x0.shape)
    for idx in np.ndindex(*x0.shape):
        e = np.zeros(x0.shape)
        e[idx] = h
        fd[idx] = (f(x0 + e) - f(x0 - e)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


def test_grad_finite_with_garbage_in_masked_positions():
    b = make_batch(3)
    pad = ~b["mask"]
    b["logp_new"] = np.where(pad, 200.0, b["logp_new"]).astype(np.float32)  # exp overflow if used
    b["logp_old"] = np.where(pad, np.nan, b["logp_old"]).astype(np.float32)
    b["logp_ref"] = np.where(pad, -np.inf, b["logp_ref"]).astype(np.float32)
    cfg = CONFIGS["grpo"]
    fn = jax.jit(jax.value_and_grad(lambda x: call(cfg, {**b, "logp_new": x}, jit=False)[0]))
    loss, grad = fn(b["logp_new"])
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert np.all(np.asarray(grad)[pad] == 0.0)


# ------------------------------------------------------------------------------------------------
# Masking: invalid and truncated samples are as if absent.


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_invalid_samples_change_nothing(name):
    cfg = CONFIGS[name]
    b = make_batch(7)
    b["valid"][:2] = [True, False]
    rng = np.random.default_rng(0)
    junk = dict(b)
    inv = ~b["valid"]
    for key in ("logp_new", "logp_old", "logp_ref"):
        junk[key] = np.where(inv[:, None], rng.normal(size=(N, T)) * 50, b[key]).astype(np.float32)
    junk["advantages"] = np.where(inv, 1e6, b["advantages"]).astype(np.float32)
    fn = jax.jit(jax.value_and_grad(lambda bb: call(cfg, bb, jit=False)[0], allow_int=True))
    (l0, g0), (l1, g1) = fn(b), fn(junk)
    np.testing.assert_allclose(l1, l0, rtol=1e-6)
    np.testing.assert_allclose(g1["logp_new"][~inv], g0["logp_new"][~inv], rtol=1e-6)
    assert np.all(np.asarray(g1["logp_new"])[inv] == 0.0)
    # ... and equal to the loss on the batch without them.
    keep = b["valid"]
    small = {k: v[keep] for k, v in b.items()}
    l2, _ = call(cfg, small, jit=False)
    np.testing.assert_allclose(l2, l0, rtol=1e-6)


def test_mask_truncated_drops_samples():
    b = make_batch(11)
    b["valid"][:] = True
    cfg = LossConfig.dapo(mask_truncated=True)
    loss, m = call(cfg, b, jit=False)
    keep = ~b["truncated"]
    small = {k: v[keep] for k, v in b.items()}
    l2, m2 = call(LossConfig.dapo(), small, jit=False)
    np.testing.assert_allclose(loss, l2, rtol=1e-6)
    assert float(m["num_tokens"]) == float(b["mask"][keep].sum()) == float(m2["num_tokens"])
    with pytest.raises(ValueError, match="truncated"):
        L.policy_loss(b["logp_new"], b["logp_old"], b["advantages"], b["mask"], cfg)


# ------------------------------------------------------------------------------------------------
# Eager = jit = vmap; traced KL coefficient.


def test_eager_jit_vmap_agree():
    cfg = CONFIGS["drgrpo_k1"]
    batches = [make_batch(s) for s in range(3)]
    stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
    loop = [call(cfg, b, jit=False) for b in batches]
    mapped = jax.vmap(lambda bb: call(cfg, bb, jit=False))(stacked)
    jit0 = call(cfg, batches[0])
    for i, (loss, metrics) in enumerate(loop):
        np.testing.assert_allclose(mapped[0][i], loss, rtol=1e-6)
        for key, value in metrics.items():
            np.testing.assert_allclose(mapped[1][key][i], value, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(jit0[0], loop[0][0], rtol=1e-6)


def test_traced_beta_overrides_config():
    b = make_batch(5)
    cfg = LossConfig.dapo(kl_estimator="k2")  # beta = 0 in the config
    with_beta = dataclasses.replace(cfg, beta=0.3)
    fn = jax.jit(
        lambda beta: L.policy_loss(
            b["logp_new"], b["logp_old"], b["advantages"], b["mask"], cfg,
            logp_ref=b["logp_ref"], valid=b["valid"], beta=beta,
        )[0]
    )  # fmt: skip
    np.testing.assert_allclose(fn(0.3), call(with_beta, b, jit=False)[0], rtol=1e-6)
    with pytest.raises(ValueError, match="logp_ref"):
        L.policy_loss(b["logp_new"], b["logp_old"], b["advantages"], b["mask"], with_beta)


def test_bf16_inputs_computed_in_f32():
    b = make_batch(2)
    loss, _ = L.policy_loss(
        jnp.asarray(b["logp_new"], jnp.bfloat16),
        jnp.asarray(b["logp_old"], jnp.bfloat16),
        b["advantages"],
        b["mask"],
        LossConfig.dapo(),
    )
    assert loss.dtype == jnp.float32


# ------------------------------------------------------------------------------------------------
# Config.


def test_presets():
    g, d = LossConfig.grpo(), LossConfig.dapo()
    assert (g.eps_low, g.eps_high, g.beta, g.kl_estimator, g.loss_agg) == (
        0.2,
        0.2,
        0.04,
        "k3",
        "seq_mean_token_mean",
    )
    assert (d.eps_low, d.eps_high, d.beta, d.loss_agg) == (0.2, 0.28, 0.0, "token_mean")
    assert LossConfig.dapo(dual_clip=3.0).dual_clip == 3.0
    hash(g)  # static jit argument


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(eps_low=-0.1),
        dict(eps_low=1.0),
        dict(eps_high=-0.1),
        dict(dual_clip=1.0),
        dict(beta=-1.0),
        dict(kl_estimator="k4"),
        dict(loss_agg="sum"),
        dict(l_max=0),
        dict(l_max=2.5),
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        LossConfig(**kwargs)
