"""`thinkprune`: ThinkPrune's length-capping reward [paper] (arXiv 2504.01296)."""

from lenrl.penalties.base import LengthMethod, check_num_samples, stateless_method
from lenrl.penalties.truncation import truncation_reward


def thinkprune(*, num_samples: int) -> LengthMethod:
    """ThinkPrune: `r = correct` if not truncated, else 0.

    The limit is the base budget, which follows a round schedule (spec section 4, `rounds`), e.g.
    4000, then 3000, then 2000 tokens. ThinkPrune: "Pruning Long Chain-of-Thought of LLMs via
    Reinforcement Learning", arXiv 2504.01296.
    """
    check_num_samples(num_samples)
    return stateless_method(
        "thinkprune",
        num_samples,
        lambda rollouts, step: truncation_reward(rollouts.correct, rollouts.truncated, 0.0),
    )
