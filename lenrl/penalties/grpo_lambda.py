"""`grpo_lambda`: GRPO-lambda, "Stable RL for Efficient Reasoning" [lenrl] (arXiv 2505.18086).

The paper applies the length penalty only to the best-solved fraction of each batch; lenrl's
concrete rule is below.
"""

import jax.numpy as jnp

from lenrl.penalties.base import (
    Array,
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    solve_rate,
    stateless_method,
    value_at,
)
from lenrl.penalties.kimi import kimi_length_reward


def grpo_lambda_groups(correct: Array, valid: Array, lam: float, p_min: float) -> Array:
    """Which groups are length-penalised: `[P]` bool.

    Valid groups (at least one valid sample) are ranked by solve rate `p` (descending, ties by
    index); the top `ceil(lam * num_valid_groups)` of them that also have `p >= p_min` are selected.
    """
    p = solve_rate(correct, valid)[..., 0]  # [P]
    group_valid = jnp.any(valid, axis=-1)  # [P]
    index = jnp.arange(p.shape[-1])
    # ahead[i, j]: group j ranks before group i.
    ahead = (p[None, :] > p[:, None]) | (
        (p[None, :] == p[:, None]) & (index[None, :] < index[:, None])
    )
    rank = jnp.sum(ahead & group_valid[None, :], axis=-1)  # [P]
    num_selected = jnp.ceil(lam * jnp.sum(group_valid)).astype(jnp.int32)
    return group_valid & (rank < num_selected) & (p >= p_min)


def grpo_lambda(
    *, num_samples: int, lam: float = 0.5, p_min: float = 0.5, w: ScalarOrSchedule = 1.0
) -> LengthMethod:
    """GRPO-lambda: the Kimi length reward, only on the batch's best-solved groups.

    r = correct + w * kimi_len_r   for the groups `grpo_lambda_groups` selects
    r = correct                    for the others

    `lam` is the spec's lambda (the selected fraction, in (0, 1]); `p_min` the least solve rate a
    selected group needs. Stateless. GRPO-lambda, arXiv 2505.18086.
    """
    check_num_samples(num_samples)
    check_number("lam", lam, 0.0, 1.0, low_open=True)
    check_number("p_min", p_min, 0.0, 1.0)
    check_number("w", w, 0.0, schedule_ok=True)

    def reward(rollouts, step):
        selected = grpo_lambda_groups(rollouts.correct, rollouts.valid, lam, p_min)  # [P]
        len_r = kimi_length_reward(rollouts.length, rollouts.correct, rollouts.valid)
        return rollouts.correct + jnp.where(selected[..., None], value_at(w, step) * len_r, 0.0)

    return stateless_method("grpo_lambda", num_samples, reward)
