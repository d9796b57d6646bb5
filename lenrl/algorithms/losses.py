"""Clipped policy-gradient loss, KL estimators and loss aggregation (spec section 5).

Inputs are flat over samples (``N = P * G``) and padded over completion tokens (``T``)::

    logp_new [N, T] f32   log pi_theta(o_t) of the sampled tokens (differentiated)
    logp_old [N, T] f32   log pi_old(o_t) from the sampling policy
    logp_ref [N, T] f32   log pi_ref(o_t) of the reference model, or None when beta == 0
    advantages [N] f32    per-sample advantage, broadcast over tokens
    mask [N, T] bool      completion tokens (prompt and padding are False)
    truncated [N] bool    the sample hit its budget without a stop token
    valid [N] bool        False for padding samples (fixed shapes); they never enter the loss

Everything is computed in ``f32`` (``f64`` inputs stay ``f64``); values at masked-out positions may
be anything (NaN included).

Packed layout (``lenrl.train.packing``): the token arrays are ``[B, R]`` rows holding several
samples each, ``sample_ids [B, R]`` names each token's sample (an index into the ``[S]`` per-sample
arrays), and advantages are per token. Every aggregation gives the same value in both layouts:
per-sample sums come from ``segment_sum`` over ``sample_ids`` instead of row sums.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp

KLEstimator = Callable[[jax.Array, jax.Array], jax.Array]


def at_least_f32(x: jax.typing.ArrayLike) -> jax.Array:
    """``x`` as a float of at least 32 bits: bf16 / f16 / ints become f32, f64 stays f64."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


# --------------------------------------------------------------------------------------------------
# KL estimators (Schulman, "Approximating KL divergence", 2020), per token, samples from pi.


def kl_k1(logp: jax.Array, logp_ref: jax.Array) -> jax.Array:
    """``k1 = log pi - log pi_ref`` (unbiased for KL(pi || pi_ref); high variance, can be < 0)."""
    return logp - logp_ref


def kl_k2(logp: jax.Array, logp_ref: jax.Array) -> jax.Array:
    """``k2 = 0.5 * (log pi - log pi_ref)^2`` (biased, low variance, >= 0)."""
    return 0.5 * jnp.square(logp - logp_ref)


def kl_k3(logp: jax.Array, logp_ref: jax.Array) -> jax.Array:
    """``k3 = exp(d) - d - 1`` with ``d = log pi_ref - log pi`` (unbiased, >= 0; GRPO's choice)."""
    d = logp_ref - logp
    return jnp.exp(d) - d - 1.0


KL_ESTIMATORS: dict[str, KLEstimator] = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


# --------------------------------------------------------------------------------------------------
# Per-token surrogate and aggregation.


def clipped_surrogate(
    ratio: jax.Array,
    advantages: jax.Array,
    eps_low: float,
    eps_high: float,
    dual_clip: float | None = None,
) -> jax.Array:
    """Per-token PPO loss ``-min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)``.

    PPO (arXiv 1707.06347) with asymmetric "clip-higher" bounds (DAPO, arXiv 2503.14476). With
    ``dual_clip = c > 1`` (dual-clip PPO, arXiv 1912.09729), tokens with ``A < 0`` use
    ``min(loss, c * |A|)``, which bounds the loss when ``rho`` is very large. ``ratio`` ``[N, T]``,
    ``advantages`` broadcastable to it.
    """
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
    loss = jnp.maximum(unclipped, clipped)
    if dual_clip is not None:
        loss = jnp.where(advantages < 0, jnp.minimum(loss, -dual_clip * advantages), loss)
    return loss


LOSS_AGGS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")


def per_sample_sum(x: jax.Array, sample_ids: jax.Array, num_samples: int) -> jax.Array:
    """``out[s] = sum_{tokens t with sample_ids[t] == s} x[t]``: packed ``[B, R]`` -> ``[S]``.

    ``x`` must already be zero where it should not count (padding, masked tokens).
    """
    return jax.ops.segment_sum(
        x.reshape(-1), jnp.asarray(sample_ids).reshape(-1), num_segments=num_samples
    )


def per_sample_mean(
    x: jax.Array, mask: jax.Array, sample_ids: jax.Array | None = None, num_samples: int = 0
) -> jax.Array:
    """Each sample's token mean of ``x`` over ``mask`` (0 for samples without tokens).

    Padded layout (``sample_ids`` None): ``[N, T] -> [N]``; packed: ``[B, R] -> [S]`` with
    ``S = num_samples``.
    """
    m = jnp.asarray(mask, bool)
    xm = jnp.where(m, at_least_f32(x), 0.0)
    if sample_ids is None:
        total, count = xm.sum(-1), m.sum(-1).astype(xm.dtype)
    else:
        total = per_sample_sum(xm, sample_ids, num_samples)
        count = per_sample_sum(m.astype(xm.dtype), sample_ids, num_samples)
    return total / jnp.maximum(count, 1.0)


def aggregate(
    x: jax.Array,
    mask: jax.Array,
    loss_agg: str,
    *,
    samples: jax.Array | None = None,
    l_max: int | None = None,
    sample_ids: jax.Array | None = None,
) -> jax.Array:
    """Reduce a per-token quantity ``x [N, T]`` over ``mask [N, T]`` to a scalar.

    * ``token_mean`` (DAPO, DLER): ``sum(x * m) / sum(m)``.
    * ``seq_mean_token_mean`` (GRPO): mean over samples with at least one token of each sample's
      token mean.
    * ``seq_mean_token_sum_norm`` (Dr. GRPO, arXiv 2503.20783): ``sum(x * m) / (n * L_max)``, a
      constant normaliser, with ``n = sum(samples)`` (``samples [N] bool``, default all rows) and
      ``L_max = l_max`` (default ``T``).

    Packed layout: ``x`` and ``mask`` are ``[B, R]`` rows, ``sample_ids [B, R]`` maps tokens to
    samples and ``samples [S]`` is required (it also gives ``S``); ``seq_mean_token_sum_norm``
    then needs ``l_max`` (a padded width does not exist). Empty selections give 0.
    """
    m = mask.astype(jnp.float32)
    xm = jnp.where(mask, x, 0.0)
    if sample_ids is not None and samples is None:
        raise ValueError("the packed layout (sample_ids) needs `samples` [S]")
    if loss_agg == "token_mean":
        return xm.sum() / jnp.maximum(m.sum(), 1.0)
    if loss_agg == "seq_mean_token_mean":
        if sample_ids is None:
            count, total = m.sum(-1), xm.sum(-1)  # [N]
        else:
            s = jnp.shape(samples)[0]
            count = per_sample_sum(m, sample_ids, s)  # [S]
            total = per_sample_sum(xm, sample_ids, s)
        per_seq = total / jnp.maximum(count, 1.0)
        has = (count > 0).astype(jnp.float32)
        return (per_seq * has).sum() / jnp.maximum(has.sum(), 1.0)
    if loss_agg == "seq_mean_token_sum_norm":
        if sample_ids is not None and l_max is None:
            raise ValueError("seq_mean_token_sum_norm on packed rows needs l_max")
        n = x.shape[0] if samples is None else jnp.asarray(samples, jnp.float32).sum()
        norm = x.shape[-1] if l_max is None else l_max
        return xm.sum() / (jnp.maximum(n, 1.0) * norm)
    raise ValueError(f"unknown loss_agg {loss_agg!r}; valid: {list(LOSS_AGGS)}")


# --------------------------------------------------------------------------------------------------
# Configuration.


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Static settings of :func:`policy_loss` (hashable, so it can be a static ``jit`` argument)."""

    eps_low: float = 0.2  # lower clip: rho >= 1 - eps_low; in [0, 1)
    eps_high: float = 0.2  # upper clip: rho <= 1 + eps_high; DAPO's clip-higher uses 0.28
    dual_clip: float | None = None  # c > 1 bounds the loss of A < 0 tokens at c * |A|; None = off
    beta: float = 0.04  # KL-to-reference coefficient; 0 disables the KL term (no logp_ref needed)
    kl_estimator: str = "k3"  # one of KL_ESTIMATORS
    loss_agg: str = "seq_mean_token_mean"  # one of LOSS_AGGS
    mask_truncated: bool = False  # drop truncated samples from the loss
    l_max: int | None = None  # Dr. GRPO normaliser for seq_mean_token_sum_norm; None = T

    def __post_init__(self):
        if not 0.0 <= self.eps_low < 1.0:
            raise ValueError(f"eps_low must be in [0, 1), got {self.eps_low!r}")
        if not self.eps_high >= 0.0:
            raise ValueError(f"eps_high must be >= 0, got {self.eps_high!r}")
        if self.dual_clip is not None and not self.dual_clip > 1.0:
            raise ValueError(f"dual_clip must be > 1 or None, got {self.dual_clip!r}")
        if not self.beta >= 0.0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(
                f"unknown kl_estimator {self.kl_estimator!r}; valid: {list(KL_ESTIMATORS)}"
            )
        if self.loss_agg not in LOSS_AGGS:
            raise ValueError(f"unknown loss_agg {self.loss_agg!r}; valid: {list(LOSS_AGGS)}")
        if self.l_max is not None and (
            isinstance(self.l_max, bool)
            or not isinstance(self.l_max, numbers.Integral)
            or self.l_max <= 0
        ):
            raise ValueError(f"l_max must be a positive int or None, got {self.l_max!r}")

    @classmethod
    def grpo(cls, **overrides) -> LossConfig:
        """GRPO (arXiv 2402.03300): eps 0.2, beta 0.04, k3 KL, seq-mean-token-mean."""
        preset = dict(eps_low=0.2, eps_high=0.2, beta=0.04, kl_estimator="k3")
        return cls(**(preset | dict(loss_agg="seq_mean_token_mean") | overrides))

    @classmethod
    def dapo(cls, **overrides) -> LossConfig:
        """DAPO (arXiv 2503.14476): clip-higher 0.2 / 0.28, no KL, token-mean."""
        preset = dict(eps_low=0.2, eps_high=0.28, beta=0.0, kl_estimator="k3")
        return cls(**(preset | dict(loss_agg="token_mean") | overrides))


# --------------------------------------------------------------------------------------------------
# The loss.


def policy_loss(
    logp_new: jax.Array,
    logp_old: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    config: LossConfig,
    *,
    logp_ref: jax.Array | None = None,
    truncated: jax.Array | None = None,
    valid: jax.Array | None = None,
    beta: jax.typing.ArrayLike | None = None,
    sample_ids: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped surrogate plus KL penalty, aggregated per ``config.loss_agg``::

        rho_t = exp(logp_new - logp_old)
        pg_t  = clipped_surrogate(rho_t, A)
        kl_t  = config.kl_estimator(logp_new, logp_ref)
        loss  = agg(pg_t + beta * kl_t)

    over the tokens of ``mask`` in valid (and, with ``mask_truncated``, non-truncated) samples.
    ``beta`` overrides ``config.beta`` with a traced value (a scheduled KL coefficient);
    ``truncated`` and ``valid`` default to all-False and all-True. Returns ``(loss, metrics)``: a
    scalar loss and scalar metrics, token means over the same tokens (``clip_frac*`` are fractions
    of tokens whose gradient the clip removes).

    Packed layout (``sample_ids [B, R]`` given): the token arrays and ``advantages`` are
    ``[B, R]``, ``valid`` (required) and ``truncated`` are per sample ``[S]``; values equal the
    padded layout's for the same samples.
    """
    if sample_ids is None:
        n, _ = logp_new.shape
        valid = jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)
    elif valid is None:
        raise ValueError("the packed layout (sample_ids) needs `valid` [S]")
    else:
        valid = jnp.asarray(valid, bool)
    kept = valid  # [N] samples that enter the loss
    if config.mask_truncated:
        if truncated is None:
            raise ValueError("config.mask_truncated needs `truncated`")
        kept = kept & ~jnp.asarray(truncated, bool)
    kept_tok = kept[:, None] if sample_ids is None else kept[sample_ids]  # [N, 1] | [B, R]
    m = jnp.asarray(mask, bool) & kept_tok  # [N, T] | [B, R]

    logp_new = at_least_f32(logp_new)
    log_ratio = jnp.where(m, logp_new - at_least_f32(logp_old), 0.0)  # [N, T]
    ratio = jnp.exp(log_ratio)
    if sample_ids is None:
        adv = jnp.where(kept, at_least_f32(advantages), 0.0)[:, None]  # [N, 1]
    else:
        adv = jnp.where(kept_tok, at_least_f32(advantages), 0.0)  # [B, R]
    pg = clipped_surrogate(ratio, adv, config.eps_low, config.eps_high, config.dual_clip)

    use_kl = beta is not None or config.beta > 0.0
    if use_kl:
        if logp_ref is None:
            raise ValueError("a KL term (beta > 0) needs `logp_ref`")
        ref = jnp.where(m, at_least_f32(logp_ref), 0.0)
        kl = KL_ESTIMATORS[config.kl_estimator](jnp.where(m, logp_new, 0.0), ref)  # [N, T]
        coef = at_least_f32(config.beta if beta is None else beta)
        per_token = pg + coef * kl
    else:
        kl = jnp.zeros_like(pg)
        per_token = pg

    def agg(x):
        return aggregate(
            x, m, config.loss_agg, samples=kept, l_max=config.l_max, sample_ids=sample_ids
        )

    loss = agg(per_token)

    sg = jax.lax.stop_gradient
    ratio, adv, pg, kl = sg(ratio), sg(adv), sg(pg), sg(kl)
    high = (adv > 0) & (ratio > 1.0 + config.eps_high)
    low = (adv < 0) & (ratio < 1.0 - config.eps_low)
    dual = (adv < 0) & (ratio > config.dual_clip) if config.dual_clip else jnp.zeros_like(m)

    def token_mean(x):
        return aggregate(x.astype(jnp.float32), m, "token_mean")

    metrics = {
        "pg_loss": agg(pg),
        "kl": token_mean(kl),
        "ratio_mean": token_mean(ratio),
        "ratio_max": jnp.where(m, ratio, 0.0).max(initial=0.0),
        "approx_kl_old": token_mean(kl_k3(sg(log_ratio), 0.0)),  # k3 between pi_theta, pi_old
        "clip_frac": token_mean(high | low | dual),
        "clip_frac_high": token_mean(high),
        "clip_frac_low": token_mean(low),
        "dual_clip_frac": token_mean(dual),
        "num_tokens": m.sum().astype(jnp.float32),
    }
    return loss, metrics
