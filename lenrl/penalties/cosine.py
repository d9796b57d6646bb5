"""`cosine`: cosine length scaling, "Demystifying Long CoT" [paper] (arXiv 2502.03373)."""

import jax.numpy as jnp

from lenrl.penalties.base import (
    LengthMethod,
    check_num_samples,
    check_number,
    is_correct,
    lengths,
    max_lengths,
    stateless_method,
)


def cosine(
    *,
    num_samples: int,
    r0_c: float = 2.0,
    rL_c: float = 1.0,
    r0_w: float = -10.0,
    rL_w: float = 0.0,
    r_exceed: float = -10.0,
    margin: int = 16,
) -> LengthMethod:
    """Cosine length-scaled reward.

    r = r_exceed                                          if L + margin >= L_max
    r = rL + 0.5 * (r0 - rL) * (1 + cos(pi * L / L_max))  otherwise

    with `(r0, rL) = (r0_c, rL_c)` for a correct answer and `(r0_w, rL_w)` for a wrong one: a
    correct answer earns `r0_c` at length 0, decaying to `rL_c` at `L_max`; a wrong one is penalised
    less the longer it thinks. `L_max` is the sample's budget. Stateless. "Demystifying Long
    Chain-of-Thought Reasoning in LLMs", arXiv 2502.03373.
    """
    check_num_samples(num_samples)
    for name, value in dict(r0_c=r0_c, rL_c=rL_c, r0_w=r0_w, rL_w=rL_w, r_exceed=r_exceed).items():
        check_number(name, value)
    check_number("margin", margin, 0, integer=True)

    def reward(rollouts, step):
        length, l_max = lengths(rollouts), max_lengths(rollouts)
        correct = is_correct(rollouts.correct)
        r0 = jnp.where(correct, r0_c, r0_w)
        rl = jnp.where(correct, rL_c, rL_w)
        r = rl + 0.5 * (r0 - rl) * (1.0 + jnp.cos(jnp.pi * length / l_max))
        return jnp.where(length + margin >= l_max, r_exceed, r)

    return stateless_method("cosine", num_samples, reward)
