"""`alp`: Adaptive Length Penalty [paper form, lenrl defaults] (arXiv 2506.05256)."""

import jax.numpy as jnp

from lenrl.penalties.base import (
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    lengths,
    max_lengths,
    solve_rate,
    stateless_method,
    value_at,
)


def alp(*, num_samples: int, beta: ScalarOrSchedule = 0.1) -> LengthMethod:
    """Adaptive Length Penalty: easy prompts pay more per token.

    r = correct - beta * max(p, 1 / G) * L / L_max

    `p` is the group's solve rate over its valid samples, `G` the group size (the floor `1 / G`
    keeps a small penalty on unsolved prompts), `L_max` the sample's budget. Stateless. ALP, "Just
    Enough Thinking", arXiv 2506.05256.
    """
    check_num_samples(num_samples)
    check_number("beta", beta, 0.0, schedule_ok=True)

    def reward(rollouts, step):
        group_size = rollouts.correct.shape[-1]
        p = solve_rate(rollouts.correct, rollouts.valid)  # [P, 1]
        scale = jnp.maximum(p, 1.0 / group_size)
        relative_length = lengths(rollouts) / max_lengths(rollouts)  # [P, G]
        return rollouts.correct - value_at(beta, step) * scale * relative_length

    return stateless_method("alp", num_samples, reward)
