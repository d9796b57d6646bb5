"""`dapo_overlong`: DAPO's soft overlong punishment [paper] (arXiv 2503.14476, Eq. 13)."""

import jax.numpy as jnp

from lenrl.penalties.base import (
    LengthMethod,
    check_num_samples,
    check_number,
    lengths,
    max_lengths,
    stateless_method,
)


def dapo_overlong(
    *, num_samples: int, l_cache: int = 4096, l_max: int | None = None
) -> LengthMethod:
    """DAPO soft overlong punishment: a linear penalty over the last `l_cache` tokens of the budget.

    r = correct + s, with
        s = 0                                  if L <= L_max - L_cache
        s = ((L_max - L_cache) - L) / L_cache  if L_max - L_cache < L <= L_max
        s = -1                                 if L > L_max

    `L_max` is the sample's budget unless `l_max` fixes it (DAPO: a 20480 budget, `L_cache = 4096`;
    keep `l_cache` below the budget). Stateless. DAPO, arXiv 2503.14476, Eq. 13.
    """
    check_num_samples(num_samples)
    check_number("l_cache", l_cache, 0, low_open=True, integer=True)
    if l_max is not None:
        check_number("l_max", l_max, l_cache, low_open=True, integer=True)

    def reward(rollouts, step):
        length = lengths(rollouts)
        limit = max_lengths(rollouts) if l_max is None else jnp.float32(l_max)
        soft_start = limit - l_cache
        s = jnp.where(length <= soft_start, 0.0, (soft_start - length) / l_cache)
        return rollouts.correct + jnp.where(length > limit, -1.0, s)

    return stateless_method("dapo_overlong", num_samples, reward)
