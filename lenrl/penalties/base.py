"""Types and shared helpers of the length-control methods (spec `length_methods.md`, section 0).

A length-control method is an optax-shaped triple of pure functions::

    init(num_prompts) -> state
    budgets(state, prompt_index [P], step, base_budget) -> (budget [P, G] i32, target [P, G] i32)
    apply(rollouts, state, step) -> (reward [P, G] f32, state)

Conventions shared by every method:

* **Group size.** `G` (samples per prompt) is the constructor hyperparameter `num_samples`, required
  by every method, because `budgets` must return `[P, G]` arrays and its signature carries no `G`.
  It is kept on the method as `LengthMethod.num_samples`. `apply` takes `G` from the shape of the
  rollouts.
* **Groups are the last axis.** Group reductions reduce `axis=-1` with `keepdims=True`, so a
  statistic of a `[P, G]` batch is `[P, 1]` and broadcasts back; the array functions also work on
  `[..., P, G]`.
* **Validity.** `valid=False` samples are padding: they never enter a group statistic, never change
  state, and get reward 0.
* **Correctness.** Formulas that multiply by `correct` use the verifier score as is; those that
  branch on "correct" use `is_correct(correct)`, i.e. `correct >= 0.5` (the same as `correct == 1`
  for a binary verifier).
* **L_max.** Where a formula says `L_max` (the step's base budget), `apply` reads the budget the
  sampler actually gave the sample, `rollouts.budget` (equal to `base_budget` under the default
  `budgets`).
* **Schedules.** Arguments typed `ScalarOrSchedule` are a number or a `step -> value` callable; read
  them with `value_at(x, step)`, which traces with a traced `step`.
* **Checks.** Hyperparameters are checked in Python when the method is built, never under `jit`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Schedule = Callable[[ArrayLike], ArrayLike]
ScalarOrSchedule = float | Schedule
State = Any  # a pytree; () for stateless methods.

CORRECT_THRESHOLD = 0.5


class Rollouts(NamedTuple):
    """One scored batch of `P` prompts x `G` samples (spec section 0)."""

    correct: Array  # [P, G] f32 verifier score in [0, 1], 1 = correct.
    length: Array  # [P, G] i32 generated tokens, counting the stop token if one was produced.
    truncated: Array  # [P, G] bool reached its budget without a stop token.
    budget: Array  # [P, G] i32 max_new_tokens the sampler gave this sample.
    target: Array  # [P, G] i32 length target written into the prompt (L1, HBPO); 0 = none.
    format_ok: Array  # [P, G] f32 1 if the answer follows the required format, else 0.
    valid: Array  # [P, G] bool False for padding rows/samples; ignored everywhere.
    prompt_index: Array  # [P] i32 stable index of the prompt in the training set.


class LengthMethod(NamedTuple):
    """A length-control method: pure `init`, `budgets` and `apply` (see the module docstring)."""

    init: Callable[[int], State]
    budgets: Callable[[State, Array, ArrayLike, ArrayLike], tuple[Array, Array]]
    apply: Callable[[Rollouts, State, ArrayLike], tuple[Array, State]]
    name: str  # The registered name; a composed method's state is keyed by it.
    num_samples: int  # G, the static group size `budgets` produces.


# --------------------------------------------------------------------------------------------------
# Array helpers.


def value_at(x: ScalarOrSchedule, step: ArrayLike) -> ArrayLike:
    """`x(step)` if `x` is a schedule, else `x`."""
    return x(step) if callable(x) else x


def is_correct(correct: Array) -> Array:
    """`correct >= 0.5`: the boolean correctness used where a formula branches on it."""
    return correct >= CORRECT_THRESHOLD


def masked_sum(x: Array, mask: Array) -> Array:
    """Sum of `x` over the `mask`ed entries of each group: `[..., G] -> [..., 1]`."""
    return jnp.sum(jnp.where(mask, x, 0), axis=-1, keepdims=True)


def masked_count(mask: Array) -> Array:
    """Number of `mask`ed entries of each group (i32): `[..., G] -> [..., 1]`."""
    return jnp.sum(mask, axis=-1, keepdims=True, dtype=jnp.int32)


def masked_mean(x: Array, mask: Array) -> Array:
    """Mean of `x` over the `mask`ed entries of each group, 0 for an empty group: `[..., 1]`."""
    return masked_sum(x, mask) / jnp.maximum(masked_count(mask), 1)


def masked_min(x: Array, mask: Array) -> Array:
    """Min of `x` (f32) over the `mask`ed entries of each group, `+inf` if empty: `[..., 1]`."""
    return jnp.min(jnp.where(mask, x, jnp.inf), axis=-1, keepdims=True)


def masked_max(x: Array, mask: Array) -> Array:
    """Max of `x` (f32) over the `mask`ed entries of each group, `-inf` if empty: `[..., 1]`."""
    return jnp.max(jnp.where(mask, x, -jnp.inf), axis=-1, keepdims=True)


def solve_rate(correct: Array, valid: Array) -> Array:
    """`p = mean_g correct` over the valid samples of each group (0 if none): `[..., 1]` f32."""
    return masked_mean(correct.astype(jnp.float32), valid)


def lengths(rollouts: Rollouts) -> Array:
    """`L` as f32 `[P, G]`."""
    return rollouts.length.astype(jnp.float32)


def max_lengths(rollouts: Rollouts) -> Array:
    """`L_max` as f32 `[P, G]`: the sample's budget, at least 1 so it can divide."""
    return jnp.maximum(rollouts.budget, 1).astype(jnp.float32)


def mask_invalid(reward: Array, valid: Array) -> Array:
    """The reward as f32, with 0 for invalid samples."""
    return jnp.where(valid, reward, 0.0).astype(jnp.float32)


def prompt_sum(x: Array, prompt_index: Array, num_prompts: int) -> Array:
    """Per-prompt totals `[num_prompts]` of per-group values `x [P]`.

    Groups that share a prompt index are added together, which pools duplicate prompts of a batch.
    """
    return jnp.zeros((num_prompts,), x.dtype).at[prompt_index].add(x)


# --------------------------------------------------------------------------------------------------
# Budgets and method builders.


def round_budget(base_budget: ArrayLike) -> Array:
    """A (possibly traced, possibly float) budget rounded to i32."""
    return jnp.round(jnp.asarray(base_budget, jnp.float32)).astype(jnp.int32)


def default_budgets(num_samples: int) -> Callable[..., tuple[Array, Array]]:
    """`budgets` that give every sample `base_budget` and no target (spec section 0)."""

    def budgets(state, prompt_index, step, base_budget):
        del state, step
        shape = (prompt_index.shape[0], num_samples)
        return jnp.full(shape, round_budget(base_budget)), jnp.zeros(shape, jnp.int32)

    return budgets


def stateless_method(
    name: str,
    num_samples: int,
    reward_fn: Callable[[Rollouts, ArrayLike], Array],
    budgets: Callable[..., tuple[Array, Array]] | None = None,
) -> LengthMethod:
    """A method with state `()` and `reward = reward_fn(rollouts, step)` (0 where invalid).

    `budgets` defaults to `default_budgets(num_samples)`.
    """

    def apply(rollouts, state, step):
        return mask_invalid(reward_fn(rollouts, step), rollouts.valid), state

    return LengthMethod(
        init=lambda num_prompts: (),
        budgets=budgets or default_budgets(num_samples),
        apply=apply,
        name=name,
        num_samples=num_samples,
    )


# --------------------------------------------------------------------------------------------------
# Hyperparameter checks (Python, at construction).


def check_number(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    integer: bool = False,
    schedule_ok: bool = False,
) -> None:
    """Raise `ValueError` unless `value` is a number in `[low, high]` (`(low, high]` if `low_open`).

    A schedule (callable) passes unchecked where `schedule_ok`; its values are only known under
    `jit`.
    """
    if schedule_ok and callable(value):
        return
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number" + (" or a schedule" if schedule_ok else "")
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    too_low = value <= low if low_open else value < low
    if too_low or value > high or math.isnan(value):
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}.")


def check_num_samples(num_samples: Any) -> None:
    """`num_samples` (G) must be a positive integer."""
    check_number("num_samples", num_samples, 1, integer=True)
