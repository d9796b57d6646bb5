"""`l1_max`: L1 / LCPO-Max [paper] (arXiv 2503.04697)."""

import jax.numpy as jnp

from lenrl.penalties.base import (
    LengthMethod,
    ScalarOrSchedule,
    check_number,
    lengths,
    stateless_method,
    value_at,
)
from lenrl.penalties.l1_exact import check_l1_hparams, l1_budgets


def l1_max(
    *,
    num_samples: int,
    alpha: ScalarOrSchedule = 3e-4,
    delta: float = 0.5,
    t_min: int = 100,
    t_max: int = 4000,
    seed: int = 0,
) -> LengthMethod:
    """L1-Max (LCPO): stay under the length written into the prompt ("Think for maximum N tokens.").

    r = correct * clip(alpha * (target - L) + delta, 0, 1)

    A correct answer `delta / alpha` tokens under the target earns the full reward; one at the
    target earns `delta`. `budgets` draws targets as `l1_exact` does (`l1_targets`). Stateless. L1 /
    LCPO, arXiv 2503.04697.
    """
    check_l1_hparams(num_samples, alpha, t_min, t_max, seed)
    check_number("delta", delta, 0.0, 1.0)

    def reward(rollouts, step):
        slack = rollouts.target.astype(jnp.float32) - lengths(rollouts)
        return rollouts.correct * jnp.clip(value_at(alpha, step) * slack + delta, 0.0, 1.0)

    budgets = l1_budgets(num_samples, seed=seed, t_min=t_min, t_max=t_max)
    return stateless_method("l1_max", num_samples, reward, budgets)
