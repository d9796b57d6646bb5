"""`kimi`: Kimi k1.5's group length reward [paper] (arXiv 2501.12599)."""

import jax.numpy as jnp

from lenrl.penalties.base import (
    Array,
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    is_correct,
    masked_max,
    masked_min,
    stateless_method,
    value_at,
)


def kimi_length_reward(length: Array, correct: Array, valid: Array) -> Array:
    """Kimi k1.5 length reward `len_r [P, G]` f32 (arXiv 2501.12599).

    Per group, over its valid samples: lo = min L, hi = max L. If hi == lo, len_r = 0; else

        lam = 0.5 - (L - lo) / (hi - lo)
        len_r = lam if correct else min(0, lam)

    so the shortest answer gets +0.5 and the longest -0.5, and a wrong answer is never rewarded for
    being short. Invalid samples get 0. Groups are the last axis, so `[..., P, G]` works as well.
    """
    length = length.astype(jnp.float32)
    lo = masked_min(length, valid)  # [P, 1]
    hi = masked_max(length, valid)  # [P, 1]
    spread = hi - lo  # [P, 1], -inf for an empty group.
    lam = 0.5 - (length - lo) / jnp.where(spread > 0, spread, 1.0)
    len_r = jnp.where(is_correct(correct), lam, jnp.minimum(0.0, lam))
    return jnp.where(valid & (spread > 0), len_r, 0.0)


def kimi(*, num_samples: int, w: ScalarOrSchedule = 1.0, warmup_steps: int = 0) -> LengthMethod:
    """Kimi k1.5 length reward: `r = correct + w(step) * len_r` (`kimi_length_reward`).

    The report trains the first steps without the penalty: `w(step) = 0` for `step < warmup_steps`,
    then `w` (itself a number or a schedule). Kimi k1.5, arXiv 2501.12599.
    """
    check_num_samples(num_samples)
    check_number("w", w, 0.0, schedule_ok=True)
    check_number("warmup_steps", warmup_steps, 0, integer=True)

    def reward(rollouts, step):
        w_t = jnp.where(jnp.asarray(step) < warmup_steps, 0.0, value_at(w, step))
        len_r = kimi_length_reward(rollouts.length, rollouts.correct, rollouts.valid)
        return rollouts.correct + w_t * len_r

    return stateless_method("kimi", num_samples, reward)
