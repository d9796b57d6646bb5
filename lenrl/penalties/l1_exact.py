"""`l1_exact`: L1 / LCPO-Exact [paper] (arXiv 2503.04697), and the L1 target sampler."""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lenrl.penalties.base import (
    Array,
    ArrayLike,
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    lengths,
    round_budget,
    stateless_method,
    value_at,
)


def l1_targets(prompt_index: Array, step: ArrayLike, *, seed: int, t_min: int, t_max: int) -> Array:
    """Per-prompt length targets `[P]` i32, `target ~ UniformInt[t_min, t_max]` (both inclusive).

    Drawn from `fold_in(fold_in(key(seed), step), prompt_index)`, so a prompt's target depends only
    on `(seed, step, prompt_index)`: reproducible, and the same for duplicates of a prompt in a
    batch.
    """
    step_key = jax.random.fold_in(jax.random.key(seed), step)

    def draw(index):
        return jax.random.randint(jax.random.fold_in(step_key, index), (), t_min, t_max + 1)

    return jax.vmap(draw)(prompt_index).astype(jnp.int32)


def l1_budgets(
    num_samples: int, *, seed: int, t_min: int, t_max: int
) -> Callable[..., tuple[Array, Array]]:
    """L1's `budgets`: every sample of a prompt gets its `l1_targets` target and `base_budget`."""

    def budgets(state, prompt_index, step, base_budget):
        del state
        shape = (prompt_index.shape[0], num_samples)
        target = l1_targets(prompt_index, step, seed=seed, t_min=t_min, t_max=t_max)
        return jnp.full(shape, round_budget(base_budget)), jnp.broadcast_to(target[:, None], shape)

    return budgets


def check_l1_hparams(num_samples, alpha, t_min, t_max, seed) -> None:
    """The hyperparameter checks `l1_exact` and `l1_max` share."""
    check_num_samples(num_samples)
    check_number("alpha", alpha, 0.0, schedule_ok=True)
    check_number("t_min", t_min, 1, integer=True)
    check_number("t_max", t_max, t_min, integer=True)
    check_number("seed", seed, integer=True)


def l1_exact(
    *,
    num_samples: int,
    alpha: ScalarOrSchedule = 3e-4,
    t_min: int = 100,
    t_max: int = 4000,
    seed: int = 0,
) -> LengthMethod:
    """L1-Exact (LCPO): hit the length written into the prompt ("Think for N tokens.").

    r = correct - alpha * |target - L|

    `budgets` draws `target ~ UniformInt[t_min, t_max]` per prompt (`l1_targets`); `budget =
    base_budget`. Stateless. L1 / LCPO, arXiv 2503.04697.
    """
    check_l1_hparams(num_samples, alpha, t_min, t_max, seed)

    def reward(rollouts, step):
        gap = jnp.abs(rollouts.target.astype(jnp.float32) - lengths(rollouts))
        return rollouts.correct - value_at(alpha, step) * gap

    budgets = l1_budgets(num_samples, seed=seed, t_min=t_min, t_max=t_max)
    return stateless_method("l1_exact", num_samples, reward, budgets)
