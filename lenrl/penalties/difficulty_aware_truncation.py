"""`difficulty_aware_truncation`: Difficulty-Aware DLER [lenrl] (DLER, arXiv 2510.15110).

The paper "adaptively tightens truncation on easier questions"; its exact rule is not public.
lenrl's formulation keeps an exponential moving average of each prompt's solve rate and shrinks that
prompt's budget with it.
"""

from typing import NamedTuple

import jax.numpy as jnp

from lenrl.penalties.base import (
    Array,
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    mask_invalid,
    masked_count,
    masked_sum,
    prompt_sum,
    round_budget,
    value_at,
)
from lenrl.penalties.truncation import truncation_reward


class DifficultyAwareTruncationState(NamedTuple):
    solve_ema: Array  # [num_prompts] f32 EMA of the prompt's solve rate; 0 = never seen.


def update_solve_ema(
    solve_ema: Array, correct: Array, valid: Array, prompt_index: Array, rho: float
) -> Array:
    """`solve_ema <- (1 - rho) * solve_ema + rho * p` for the prompts of the batch.

    `solve_ema` is `[num_prompts]`; `correct`, `valid` are `[P, G]`, `prompt_index` is `[P]`. Groups
    that share a prompt index are pooled: `p` is the mean score over all their valid samples, and
    the EMA takes one step. Prompts without valid samples in the batch keep their value.
    """
    num_prompts = solve_ema.shape[0]
    total = prompt_sum(
        masked_sum(correct.astype(jnp.float32), valid)[:, 0], prompt_index, num_prompts
    )
    count = prompt_sum(masked_count(valid)[:, 0], prompt_index, num_prompts)
    p = total / jnp.maximum(count, 1)
    return jnp.where(count > 0, (1.0 - rho) * solve_ema + rho * p, solve_ema)


def difficulty_aware_truncation(
    *,
    num_samples: int,
    delta: float = 0.5,
    rho: float = 0.5,
    l_min: int | None = None,
    kappa: ScalarOrSchedule = 0.1,
) -> LengthMethod:
    """Difficulty-aware truncation: easier prompts get smaller budgets.

    budgets: b = clip(round(L_max * (1 - delta * solve_ema[prompt])), L_min, L_max), the same for
             all G samples of the prompt; L_max = base_budget, L_min = L_max / 4 unless `l_min` is
             set.
    apply:   r = `truncation` reward (kappa * correct if truncated, else correct), scored with the
             old state; then solve_ema <- (1 - rho) * solve_ema + rho * p for the batch's prompts.

    Args:
      num_samples: G.
      delta: how much a fully solved prompt shrinks its budget, in [0, 1].
      rho: EMA rate, in (0, 1].
      l_min: the smallest budget in tokens; `None` is `base_budget / 4`.
      kappa: the `truncation` factor for truncated samples.
    """
    check_num_samples(num_samples)
    check_number("delta", delta, 0.0, 1.0)
    check_number("rho", rho, 0.0, 1.0, low_open=True)
    if l_min is not None:
        check_number("l_min", l_min, 0, integer=True)
    check_number("kappa", kappa, 0.0, 1.0, schedule_ok=True)

    def init(num_prompts):
        return DifficultyAwareTruncationState(jnp.zeros((num_prompts,), jnp.float32))

    def budgets(state, prompt_index, step, base_budget):
        del step
        l_max = round_budget(base_budget)
        lo = round_budget(l_max / 4 if l_min is None else l_min)
        shrink = 1.0 - delta * state.solve_ema[prompt_index]  # [P]
        b = jnp.clip(round_budget(l_max * shrink), lo, l_max)  # [P]
        shape = (prompt_index.shape[0], num_samples)
        return jnp.broadcast_to(b[:, None], shape), jnp.zeros(shape, jnp.int32)

    def apply(rollouts, state, step):
        r = truncation_reward(rollouts.correct, rollouts.truncated, value_at(kappa, step))
        ema = update_solve_ema(
            state.solve_ema, rollouts.correct, rollouts.valid, rollouts.prompt_index, rho
        )
        return mask_invalid(r, rollouts.valid), DifficultyAwareTruncationState(ema)

    return LengthMethod(init, budgets, apply, "difficulty_aware_truncation", num_samples)
