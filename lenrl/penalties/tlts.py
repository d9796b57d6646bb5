"""`tlts`: Train Long, Think Short [lenrl reward, paper schedule] (arXiv 2508.08940)."""

import jax.numpy as jnp

from lenrl.penalties.base import (
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    lengths,
    max_lengths,
    stateless_method,
    value_at,
)


def tlts(
    *,
    num_samples: int,
    w_c: ScalarOrSchedule = 1.0,
    w_len: ScalarOrSchedule = 0.5,
    w_fmt: ScalarOrSchedule = 0.2,
) -> LengthMethod:
    """Train Long, Think Short: correctness, a length bonus under the budget, and format.

    r = w_c * correct + w_len * correct * (1 - min(L, B) / B) + w_fmt * format_ok

    `B` is the sample's budget, which follows the `tlts` budget schedule (spec section 4, paper's
    curriculum); the reward's form and weights are lenrl's. Stateless.
    "Train Long, Think Short", arXiv 2508.08940.
    """
    check_num_samples(num_samples)
    for name, value in dict(w_c=w_c, w_len=w_len, w_fmt=w_fmt).items():
        check_number(name, value, 0.0, schedule_ok=True)

    def reward(rollouts, step):
        budget = max_lengths(rollouts)
        unused = 1.0 - jnp.minimum(lengths(rollouts), budget) / budget  # [P, G] in [0, 1]
        correct = rollouts.correct
        return (
            value_at(w_c, step) * correct
            + value_at(w_len, step) * correct * unused
            + value_at(w_fmt, step) * rollouts.format_ok
        )

    return stateless_method("tlts", num_samples, reward)
