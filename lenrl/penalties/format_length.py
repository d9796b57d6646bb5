"""`format_length`: a label-free format + length surrogate reward [lenrl]."""

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


def format_length(*, num_samples: int, w: ScalarOrSchedule = 0.5) -> LengthMethod:
    """Format + length surrogate for training without ground truth.

    r = format_ok * (1 + w * (1 - L / L_max))

    A well-formed answer earns 1 plus a bonus for the budget it leaves unused; `correct` is not
    read. `L_max` is the sample's budget. Stateless. lenrl's own formulation (no paper).
    """
    check_num_samples(num_samples)
    check_number("w", w, 0.0, schedule_ok=True)

    def reward(rollouts, step):
        unused = 1.0 - lengths(rollouts) / max_lengths(rollouts)
        return rollouts.format_ok * (1.0 + value_at(w, step) * unused)

    return stateless_method("format_length", num_samples, reward)
