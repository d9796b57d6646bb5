"""`hapo`: History-Aware Policy Optimisation [paper] (arXiv 2505.11225)."""

from typing import NamedTuple

import jax.numpy as jnp

from lenrl.penalties.base import (
    Array,
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    default_budgets,
    is_correct,
    mask_invalid,
    masked_count,
    masked_min,
    masked_sum,
    prompt_sum,
    value_at,
)

MODES = ("min", "mean")
CORRECT_FLOOR = -0.7  # The least length reward of a correct answer.


class HapoState(NamedTuple):
    h: Array  # [num_prompts] f32 the prompt's reference length; NaN = no correct answer seen yet.
    count: Array  # [num_prompts] i32 correct answers seen (the weight of `h` in mode "mean").


def hapo_length_reward(length: Array, correct: Array, h: Array) -> Array:
    """HAPO's cosine length reward `len_r [P, G]` f32 against the history length `h` (`[P, 1]`).

    len_r = 0 if h is NaN (no correct answer seen yet); else
        c = cos(pi / 2 * L / h) if L < 2h else -1
        len_r = max(-0.7, c) if correct else min(0, c)

    Shorter than the best correct answer so far earns up to +1; a wrong answer never earns a
    positive length reward. HAPO, arXiv 2505.11225.
    """
    length = length.astype(jnp.float32)
    seen = ~jnp.isnan(h)
    safe_h = jnp.where(seen & (h > 0), h, 1.0)
    c = jnp.where(length < 2.0 * h, jnp.cos(0.5 * jnp.pi * length / safe_h), -1.0)
    len_r = jnp.where(is_correct(correct), jnp.maximum(CORRECT_FLOOR, c), jnp.minimum(0.0, c))
    return jnp.where(seen, len_r, 0.0)


def update_history(state: HapoState, length, correct, valid, prompt_index, mode: str) -> HapoState:
    """Fold the batch's correct valid lengths into the per-prompt history.

    mode "min":  h <- min(h, min L over the correct samples of the prompt)
    mode "mean": h <- running mean of all correct lengths seen (weighted by `count`)

    Groups that share a prompt index are pooled (the min / mean runs over all their correct
    samples). Prompts with no correct valid sample in the batch keep their state.
    """
    num_prompts = state.h.shape[0]
    positive = valid & is_correct(correct)  # [P, G]
    length = length.astype(jnp.float32)
    new_count = prompt_sum(masked_count(positive)[:, 0], prompt_index, num_prompts)
    count = state.count + new_count
    if mode == "min":
        batch_min = masked_min(length, positive)[:, 0]  # [P], +inf without a correct sample.
        h = jnp.where(jnp.isnan(state.h), jnp.inf, state.h).at[prompt_index].min(batch_min)
        h = jnp.where(jnp.isinf(h), jnp.nan, h)
    else:
        total = prompt_sum(masked_sum(length, positive)[:, 0], prompt_index, num_prompts)
        old_total = jnp.where(state.count > 0, state.h * state.count, 0.0)
        h = jnp.where(new_count > 0, (old_total + total) / jnp.maximum(count, 1), state.h)
    return HapoState(h, count)


def hapo(*, num_samples: int, w: ScalarOrSchedule = 1.0, mode: str = "min") -> LengthMethod:
    """HAPO: reward answers shorter than the prompt's best correct answer so far.

    r = correct + w * hapo_length_reward(L, correct, h[prompt])

    scored with the old history `h`, which is then updated (`update_history`, mode "min" or "mean").
    State: `HapoState(h [num_prompts] NaN-initialised, count [num_prompts])`.
    HAPO, arXiv 2505.11225.
    """
    check_num_samples(num_samples)
    check_number("w", w, 0.0, schedule_ok=True)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")

    def init(num_prompts):
        return HapoState(
            h=jnp.full((num_prompts,), jnp.nan, jnp.float32),
            count=jnp.zeros((num_prompts,), jnp.int32),
        )

    def apply(rollouts, state, step):
        h = state.h[rollouts.prompt_index][:, None]  # [P, 1]
        len_r = hapo_length_reward(rollouts.length, rollouts.correct, h)
        r = rollouts.correct + value_at(w, step) * len_r
        new_state = update_history(
            state, rollouts.length, rollouts.correct, rollouts.valid, rollouts.prompt_index, mode
        )
        return mask_invalid(r, rollouts.valid), new_state

    return LengthMethod(init, default_budgets(num_samples), apply, "hapo", num_samples)
