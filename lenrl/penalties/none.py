"""`none`: the plain verifiable reward, the baseline for every comparison (spec section 1)."""

from lenrl.penalties.base import LengthMethod, check_num_samples, stateless_method


def none(*, num_samples: int) -> LengthMethod:
    """`r = correct`. Stateless; every sample gets `base_budget`."""
    check_num_samples(num_samples)
    return stateless_method("none", num_samples, lambda rollouts, step: rollouts.correct)
