"""DRPO objective in DisCO form (spec section 3, ``drpo``).

DRPO, "Decoupled Reward Policy Optimization" (arXiv 2510.04474), builds on DisCO, "Discriminative
Constrained Optimization" (arXiv 2505.12366). For each group ``q`` with at least one correct and
one wrong sample, with scores ``s_i = mean_t log pi_theta(o_i,t)`` (masked token mean) and the DRPO
length weights ``w`` over the positives (``softmax((1 - L / l_max) / lam)``, from
``lenrl.penalties.drpo_weights``)::

    J_q  = sum_{i in pos} w_i * s_i - tau * log mean_{j in neg} exp(s_j / tau)
    loss = -mean_{q qualifying} J_q + (beta / 2) * max(KL - delta, 0)^2

Groups that are all correct or all wrong are dropped from the mean.

The KL term is DisCO's **constrained KL**: the trust region ``KL(pi_old || pi_theta) <= delta``,
enforced by a squared-hinge penalty, where ``KL`` is the token mean over valid samples of ``k3``
(or ``k1``) between ``logp_old`` and ``logp``. Its gradient, ``beta * max(KL - delta, 0) * grad
KL``, is that of the authors' ``max(beta * (KL - delta), 0).detach() * KL``; only the reported value
differs. Two more differences from the authors' code: their log-mean-exp term is written
``sum_exp / sum_exp.detach()`` (same gradient, value ~1), and they divide the objective by the
number of all groups rather than of qualifying ones (the spec's ``mean_q``), which only rescales it.

Inputs are grouped: ``logp`` and ``mask`` are ``[P, G, T]``, ``correct`` and ``valid`` are
``[P, G]`` (reshape a flat ``[P * G, T]`` batch with ``x.reshape(P, G, T)``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lenrl.algorithms.losses import at_least_f32, kl_k1, kl_k3
from lenrl.penalties.base import is_correct
from lenrl.penalties.drpo_weights import drpo_weights

_DRPO_KL = {"k1": kl_k1, "k3": kl_k3}


@dataclasses.dataclass(frozen=True)
class DRPOConfig:
    """Static settings of :func:`drpo_loss` (defaults: the DRPO/DisCO papers')."""

    tau: float = (
        10.0  # temperature of the log-mean-exp over negatives' scores (DisCO, log-likelihood)
    )
    lam: float = 0.1  # temperature of the positives' length weights (DRPO)
    beta: float = 1e3  # squared-hinge coefficient of the KL constraint; 0 disables it
    delta: float = 1e-4  # KL(pi_old || pi_theta) budget of the trust region
    kl_estimator: str = "k3"  # "k3" (authors' low_var_kl) or "k1"

    def __post_init__(self):
        for name in ("tau", "lam"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("beta", "delta"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.kl_estimator not in _DRPO_KL:
            raise ValueError(
                f"unknown kl_estimator {self.kl_estimator!r}; valid: {sorted(_DRPO_KL)}"
            )


def sequence_scores(logp: jax.Array, mask: jax.Array) -> jax.Array:
    """``s = sum_t logp * mask / sum_t mask``: ``[..., T] -> [...]`` (0 for empty masks)."""
    mask = jnp.asarray(mask, bool)
    total = jnp.where(mask, at_least_f32(logp), 0.0).sum(-1)
    return total / jnp.maximum(mask.sum(-1), 1).astype(jnp.float32)


def drpo_loss(
    logp: jax.Array,
    mask: jax.Array,
    correct: jax.Array,
    valid: jax.Array,
    config: DRPOConfig | None = None,
    *,
    logp_old: jax.Array | None = None,
    length: jax.Array | None = None,
    l_max: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """DRPO loss and metrics (formula in the module docstring).

    Args:
      logp: ``[P, G, T]`` log pi_theta of the sampled tokens (differentiated).
      mask: ``[P, G, T]`` completion tokens.
      correct: ``[P, G]`` verifier score; ``>= 0.5`` is a positive (``is_correct``), else a
        negative.
      valid: ``[P, G]`` False for padding samples, which are ignored.
      config: :class:`DRPOConfig`; default ``DRPOConfig()``.
      logp_old: ``[P, G, T]`` log pi_old, needed when ``config.beta > 0``.
      length: ``[P, G]`` tokens per sample for the weights; default ``mask.sum(-1)``.
      l_max: length normaliser of the weights; default ``T`` (the authors use ``L / T``).

    Returns:
      ``(loss, metrics)``: scalar loss (f32) and a dict of scalar metrics.
    """
    config = DRPOConfig() if config is None else config
    mask = jnp.asarray(mask, bool)
    valid = jnp.asarray(valid, bool)
    m = mask & valid[..., None]  # [P, G, T]
    length = m.sum(-1) if length is None else jnp.asarray(length)
    l_max = logp.shape[-1] if l_max is None else l_max

    s = sequence_scores(logp, m)  # [P, G]
    correct = jnp.asarray(correct)
    is_pos = is_correct(correct)
    pos = valid & is_pos
    neg = valid & ~is_pos
    qualifies = pos.any(-1) & neg.any(-1)  # [P]

    w = drpo_weights(length, correct, valid, l_max, config.lam)  # [P, G], sums to 1 over positives
    pos_term = jnp.where(pos, w * s, 0.0).sum(-1)  # [P]
    # log mean_{neg} exp(s / tau); groups that don't qualify use all samples (finite; dropped).
    neg_eff = jnp.where(qualifies[..., None], neg, True)
    z = jnp.where(neg_eff, s / config.tau, -jnp.inf)
    log_mean_exp = jax.nn.logsumexp(z, axis=-1) - jnp.log(neg_eff.sum(-1).astype(jnp.float32))
    objective = pos_term - config.tau * log_mean_exp  # [P]

    num_groups = qualifies.sum().astype(jnp.float32)
    loss = -jnp.where(qualifies, objective, 0.0).sum() / jnp.maximum(num_groups, 1.0)

    if config.beta > 0.0:
        if logp_old is None:
            raise ValueError("the KL constraint (beta > 0) needs `logp_old`")
        old = jnp.where(m, at_least_f32(logp_old), 0.0)
        new = jnp.where(m, at_least_f32(logp), 0.0)
        kl_t = _DRPO_KL[config.kl_estimator](
            old, new
        )  # [P, G, T], estimates KL(pi_old || pi_theta)
        kl = jnp.where(m, kl_t, 0.0).sum() / jnp.maximum(m.sum(), 1).astype(jnp.float32)
        penalty = 0.5 * config.beta * jnp.square(jnp.maximum(kl - config.delta, 0.0))
        loss = loss + penalty
    else:
        kl = penalty = jnp.zeros((), s.dtype)

    sg = jax.lax.stop_gradient
    in_q = qualifies[..., None]

    def mean_over(sel):
        return jnp.where(sel, sg(s), 0.0).sum() / jnp.maximum(sel.sum(), 1).astype(jnp.float32)

    metrics = {
        "objective": sg(-loss + penalty),
        "num_groups": num_groups,
        "score_pos": mean_over(pos & in_q),
        "score_neg": mean_over(neg & in_q),
        "kl": sg(kl),
        "kl_penalty": sg(penalty),
        "kl_exceeds": (sg(kl) > config.delta).astype(jnp.float32),
    }
    return loss, metrics
