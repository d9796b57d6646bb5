"""`hbpo`: Hierarchical Budget Policy Optimisation [lenrl reward] (arXiv 2507.15844)."""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from lenrl.penalties.base import (
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    is_correct,
    lengths,
    stateless_method,
    value_at,
)


def hbpo_targets(num_samples: int, subgroup_budgets: Sequence[int]) -> np.ndarray:
    """The budget `b_k` of each of the G samples, `[G]` i32: K contiguous, equal subgroups.

    Sample `g` is in subgroup `g // (G // K)`; e.g. G = 8, budgets (512, 1024, 2048, 2560) gives
    [512, 512, 1024, 1024, 2048, 2048, 2560, 2560].
    """
    size = num_samples // len(subgroup_budgets)
    return np.repeat(np.asarray(subgroup_budgets, np.int32), size)


def hbpo(
    *,
    num_samples: int,
    subgroup_budgets: Sequence[int] = (512, 1024, 2048, 2560),
    margin: int = 512,
    beta: ScalarOrSchedule = 1.0,
) -> LengthMethod:
    """HBPO: each subgroup of samples is told its own budget and rewarded against it.

    budgets: the G samples of each prompt form K = len(subgroup_budgets) equal subgroups
             (`hbpo_targets`); target = b_k ("I will answer within b_k tokens"); the sampler cap is
             max(b_k) + margin for every sample.
    reward (with b = target):
        correct and L <= b:  r = 1
        correct and L > b:   r = max(0, 1 - beta * (L - b) / b)
        wrong:               r = 0

    The paper's exact reward is not public; this is lenrl's piecewise-linear form. `margin` [lenrl]
    lets answers overshoot the largest budget and still be graded. Use with the `hbpo` advantage
    (section 3). Stateless. HBPO, arXiv 2507.15844.
    """
    check_num_samples(num_samples)
    subgroup_budgets = tuple(subgroup_budgets)
    if not subgroup_budgets:
        raise ValueError("subgroup_budgets must not be empty.")
    for b in subgroup_budgets:
        check_number("each of subgroup_budgets", b, 1, integer=True)
    if num_samples % len(subgroup_budgets):
        raise ValueError(
            f"num_samples={num_samples} must be divisible by the number of HBPO subgroups "
            f"K={len(subgroup_budgets)} (subgroup_budgets={subgroup_budgets})."
        )
    check_number("margin", margin, 0, integer=True)
    check_number("beta", beta, 0.0, schedule_ok=True)
    targets = hbpo_targets(num_samples, subgroup_budgets)  # [G], static.
    cap = max(subgroup_budgets) + margin

    def budgets(state, prompt_index, step, base_budget):
        del state, step, base_budget  # The cap is max(b_k) + margin, whatever the base budget.
        shape = (prompt_index.shape[0], num_samples)
        return jnp.full(shape, cap, jnp.int32), jnp.broadcast_to(jnp.asarray(targets), shape)

    def reward(rollouts, step):
        b = jnp.maximum(rollouts.target, 1).astype(jnp.float32)  # [P, G]; target 0 would divide.
        overshoot = jnp.maximum(lengths(rollouts) - b, 0.0) / b
        score = jnp.maximum(0.0, 1.0 - value_at(beta, step) * overshoot)
        return jnp.where(is_correct(rollouts.correct), score, 0.0)

    return stateless_method("hbpo", num_samples, reward, budgets)
