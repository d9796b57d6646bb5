"""`truncation`: DLER's truncation length penalty [paper] (DLER, arXiv 2510.15110)."""

import jax.numpy as jnp

from lenrl.penalties.base import (
    Array,
    ArrayLike,
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    stateless_method,
    value_at,
)


def truncation_reward(correct: Array, truncated: Array, kappa: ArrayLike) -> Array:
    """`r = correct` if not truncated, `kappa * correct` if truncated. All `[P, G]`."""
    return jnp.where(truncated, kappa * correct, correct)


def truncation(*, num_samples: int, kappa: ScalarOrSchedule = 0.1) -> LengthMethod:
    """DLER truncation penalty: a sample that hits its budget keeps `kappa` of its score.

    r = correct              if not truncated
    r = kappa * correct      if truncated (a truncated answer is normally wrong anyway)

    `kappa` is DLER's "stop properly" factor (default 0.1). The budget `L_max` (DLER: 4000) is the
    trainer's base budget. The rest of the DLER recipe (batch-whitened advantage, clip-higher,
    dynamic sampling, token-mean loss, +0.1 correct boost) lives outside the penalty. DLER: "Doing
    Length pEnalty Right", arXiv 2510.15110.
    """
    check_num_samples(num_samples)
    check_number("kappa", kappa, 0.0, 1.0, schedule_ok=True)

    def reward(rollouts, step):
        return truncation_reward(rollouts.correct, rollouts.truncated, value_at(kappa, step))

    return stateless_method("truncation", num_samples, reward)
