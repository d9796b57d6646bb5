"""`siri`: SIRI's length-capping reward [paper reward] (arXiv 2509.25176)."""

from lenrl.penalties.base import LengthMethod, check_num_samples, stateless_method
from lenrl.penalties.truncation import truncation_reward


def siri(*, num_samples: int) -> LengthMethod:
    """SIRI: `r = correct` if not truncated, else 0.

    The budget is the base budget, which follows the `siri` compress/expand schedule (spec section
    4). SIRI: "Scaling Iterative Reinforcement Learning with Interleaved Compression", arXiv
    2509.25176.
    """
    check_num_samples(num_samples)
    return stateless_method(
        "siri",
        num_samples,
        lambda rollouts, step: truncation_reward(rollouts.correct, rollouts.truncated, 0.0),
    )
