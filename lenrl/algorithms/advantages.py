"""Group advantage estimators (spec section 3): ``[P, G]`` rewards -> ``[P, G]`` advantages.

Every estimator has the same signature, so a trainer can call whichever the config names::

    fn(rewards [P, G] f32, *, valid [P, G] bool, correct [P, G] f32 | None = None,
       length [P, G] i32 | None = None, **hparams) -> advantages [P, G] f32

``correct`` (verifier score; ``>= 0.5`` counts as correct, as ``lenrl.penalties.base.is_correct``)
and ``length`` (generated tokens) are only read by the estimators that need them and are an error
when those are missing. ``valid=False`` entries (padding) get advantage 0 and never enter another
entry's statistics; their values may be anything, NaN included. A group whose valid rewards are all
equal (in particular one with fewer than 2 valid samples) gets advantage 0. Standard deviations are
population ones (``ddof = 0``) over valid samples.

Estimators are jittable pure functions; hyperparameters that fix shapes (``num_subgroups``) must be
static. ``ADVANTAGES`` maps the spec's names to the functions; :func:`get_advantage` binds
hyperparameters.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp

from lenrl.penalties.base import is_correct
from lenrl.penalties.drpo_weights import drpo_weights

Advantage = Callable[..., jax.Array]

EPS = 1e-6  # added to standard deviations


# --------------------------------------------------------------------------------------------------
# Masked group statistics over the last axis.


def _masked_mean_std(x: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and population std of ``x`` over the valid entries of the last axis (0 if none)."""
    n = jnp.maximum(valid.sum(-1, keepdims=True), 1).astype(jnp.float32)  # [..., 1]
    x = jnp.where(valid, x, 0.0)
    mean = x.sum(-1, keepdims=True) / n
    var = jnp.where(valid, jnp.square(x - mean), 0.0).sum(-1, keepdims=True) / n
    return mean, jnp.sqrt(var)


def _varies(x: jax.Array, valid: jax.Array) -> jax.Array:
    """``[..., 1]`` True where the valid entries of the last axis are not all equal (>= 2 valid)."""
    hi = jnp.where(valid, x, -jnp.inf).max(-1, keepdims=True)
    lo = jnp.where(valid, x, jnp.inf).min(-1, keepdims=True)
    return hi > lo


def _prepare(rewards: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    valid = jnp.asarray(valid, bool)
    rewards = jnp.where(valid, jnp.asarray(rewards, jnp.float32), 0.0)
    return rewards, valid


def _finish(adv: jax.Array, rewards: jax.Array, valid: jax.Array) -> jax.Array:
    """Zero invalid entries and groups whose valid rewards are all equal."""
    return jnp.where(valid & _varies(rewards, valid), adv, 0.0).astype(jnp.float32)


def _require(name: str, **arrays: jax.Array | None) -> None:
    for key, value in arrays.items():
        if value is None:
            raise ValueError(f"advantage estimator {name!r} needs `{key}`")


# --------------------------------------------------------------------------------------------------
# Estimators.


def grpo(rewards, *, valid, correct=None, length=None, eps: float = EPS) -> jax.Array:
    """GRPO (DeepSeekMath, arXiv 2402.03300): ``A = (r - mean_g r) / (std_g r + eps)``."""
    del correct, length
    rewards, valid = _prepare(rewards, valid)
    mean, std = _masked_mean_std(rewards, valid)  # [P, 1]
    return _finish((rewards - mean) / (std + eps), rewards, valid)


def dr_grpo(rewards, *, valid, correct=None, length=None) -> jax.Array:
    """Dr. GRPO (arXiv 2503.20783): ``A = r - mean_g r`` (no std normalisation)."""
    del correct, length
    rewards, valid = _prepare(rewards, valid)
    mean, _ = _masked_mean_std(rewards, valid)
    return _finish(rewards - mean, rewards, valid)


def rloo(rewards, *, valid, correct=None, length=None) -> jax.Array:
    """RLOO (arXiv 2402.14740): ``A_i = r_i - (sum_g r - r_i) / (G_valid - 1)``."""
    del correct, length
    rewards, valid = _prepare(rewards, valid)
    n = valid.sum(-1, keepdims=True).astype(jnp.float32)  # [P, 1]
    total = rewards.sum(-1, keepdims=True)
    baseline = (total - rewards) / jnp.maximum(n - 1.0, 1.0)
    return _finish(rewards - baseline, rewards, valid)


def batch_whiten(
    rewards, *, valid, correct=None, length=None, boost: float = 0.0, eps: float = EPS
) -> jax.Array:
    """REINFORCE++-baseline (arXiv 2501.03262) as used by DLER (arXiv 2510.15110).

    ``a = r - mean_g r``; then ``A = (a - mu) / (sigma + eps)`` with ``mu``, ``sigma`` the mean and
    population std of ``a`` over all valid **tokens** of the batch (sample ``i`` weighted by
    ``length_i``); then ``A += boost * correct`` (DLER: ``boost = 0.1``). Groups whose rewards are
    all equal are left out of ``mu``, ``sigma`` and get 0 (as if dynamic sampling had dropped them),
    so the result is the same with or without dynamic sampling. Needs ``length`` (and ``correct``
    when ``boost != 0``).
    """
    use_boost = not (isinstance(boost, int | float) and boost == 0)  # a traced boost is used
    _require("batch_whiten", length=length, **({"correct": correct} if use_boost else {}))
    rewards, valid = _prepare(rewards, valid)
    mean, _ = _masked_mean_std(rewards, valid)
    a = rewards - mean  # [P, G]
    used = valid & _varies(rewards, valid)  # [P, G]
    weight = jnp.where(used, jnp.asarray(length, jnp.float32), 0.0)  # tokens per sample
    total = jnp.maximum(weight.sum(), 1.0)
    mu = (weight * a).sum() / total
    sigma = jnp.sqrt((weight * jnp.square(a - mu)).sum() / total)
    adv = (a - mu) / (sigma + eps)
    if use_boost:
        adv = adv + boost * jnp.where(valid, jnp.asarray(correct, jnp.float32), 0.0)
    return jnp.where(used, adv, 0.0).astype(jnp.float32)


def positive_group(
    rewards,
    *,
    valid,
    correct=None,
    length=None,
    l_max: jax.typing.ArrayLike | None = None,
    lam: float = 0.1,
    eps: float = EPS,
) -> jax.Array:
    """DRPO-style positive-only length weighting, for the clipped loss (arXiv 2510.04474) [lenrl].

    From correctness alone, with ``c = correct >= 0.5`` and ``p = mean_g c``::

        a = (c - p) / (std_g c + eps)
        A = a                 for a wrong sample (a < 0)
        A = a * K * w_i       for a correct sample (>= 0)

    ``K`` is the number of correct samples of the group and ``w`` the ``drpo_weights``
    (``softmax((1 - L / l_max) / lam)`` over the positives, summing to 1), so the positives' mean
    is GRPO's and shorter correct answers get more of it. All-correct and all-wrong groups get 0.
    ``rewards`` is unused: the length signal is in ``w``. ``l_max`` is required: a number or a
    traced scalar (e.g. the sampler's ``max_new_tokens``), bound by :func:`get_advantage` or
    passed per call.
    """
    del rewards
    _require("positive_group", correct=correct, length=length, l_max=l_max)
    valid, correct, length = jnp.asarray(valid, bool), jnp.asarray(correct), jnp.asarray(length)
    pos = (valid & is_correct(correct)).astype(jnp.float32)  # [P, G] in {0, 1}
    mean, std = _masked_mean_std(pos, valid)
    a = (pos - mean) / (std + eps)
    w = drpo_weights(length, correct, valid, l_max, lam)  # [P, G], sums to 1 over positives
    k = pos.sum(-1, keepdims=True)  # [P, 1]
    adv = jnp.where(pos > 0, a * k * w, a)
    return _finish(adv, pos, valid)


def hbpo(
    rewards, *, valid, correct=None, length=None, num_subgroups: int = 4, eps: float = EPS
) -> jax.Array:
    """HBPO (arXiv 2507.15844): intra- plus inter-subgroup advantage.

    The ``G`` samples are split into ``K = num_subgroups`` consecutive subgroups of ``G / K`` (one
    per budget)::

        A = (r - mean_sub r) / (std_sub r + eps) + (mean_sub r - mean_g r) / (std_g r + eps)

    The intra term is 0 in a subgroup whose valid rewards are all equal; all statistics use valid
    samples.
    """
    del correct, length
    rewards, valid = _prepare(rewards, valid)
    g = rewards.shape[-1]
    if num_subgroups < 1 or g % num_subgroups:
        raise ValueError(f"G={g} must be a multiple of num_subgroups={num_subgroups}")
    sub_shape = (*rewards.shape[:-1], num_subgroups, g // num_subgroups)
    r_sub = rewards.reshape(sub_shape)  # [P, K, G/K]
    v_sub = valid.reshape(sub_shape)
    mean_sub, std_sub = _masked_mean_std(r_sub, v_sub)  # [P, K, 1]
    intra = jnp.where(_varies(r_sub, v_sub), (r_sub - mean_sub) / (std_sub + eps), 0.0)
    mean_g, std_g = _masked_mean_std(rewards, valid)  # [P, 1]
    inter = (mean_sub - mean_g[..., None]) / (std_g[..., None] + eps)  # [P, K, 1]
    adv = (intra + inter).reshape(rewards.shape)
    return _finish(adv, rewards, valid)


# --------------------------------------------------------------------------------------------------
# Registry.

ADVANTAGES: dict[str, Advantage] = {
    "grpo": grpo,
    "dr_grpo": dr_grpo,
    "rloo": rloo,
    "batch_whiten": batch_whiten,
    "positive_group": positive_group,
    "hbpo": hbpo,
}

_DATA_ARGS = ("rewards", "valid", "correct", "length")


def hparam_names(fn: Advantage) -> tuple[str, ...]:
    """The hyperparameters ``fn`` accepts (its keyword arguments other than the data)."""
    params = inspect.signature(fn).parameters
    return tuple(name for name in params if name not in _DATA_ARGS)


def get_advantage(name: str, **hparams) -> Advantage:
    """The estimator registered as ``name`` with ``hparams`` bound (a call may override them).

    Unknown names or hyperparameters raise ``ValueError`` listing the valid ones.
    """
    if name not in ADVANTAGES:
        hint = (
            " ('drpo' is a full objective, not an advantage: see lenrl.algorithms.drpo)"
            if name == "drpo"
            else ""
        )
        raise ValueError(f"unknown advantage {name!r}; valid: {sorted(ADVANTAGES)}{hint}")
    fn = ADVANTAGES[name]
    valid_names = hparam_names(fn)
    unknown = sorted(set(hparams) - set(valid_names))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for advantage {name!r}; "
            f"valid: {list(valid_names)}"
        )
    return functools.partial(fn, **hparams) if hparams else fn
