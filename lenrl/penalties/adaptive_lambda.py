"""`adaptive_lambda`: an A-DLP style adaptive length-penalty weight [lenrl]."""

from typing import NamedTuple

import jax.numpy as jnp

from lenrl.penalties.base import (
    Array,
    LengthMethod,
    ScalarOrSchedule,
    check_num_samples,
    check_number,
    default_budgets,
    lengths,
    mask_invalid,
    max_lengths,
    value_at,
)


class AdaptiveLambdaState(NamedTuple):
    lam: Array  # [] f32 the current penalty weight.
    acc_ref: Array  # [] f32 the reference accuracy; meaningful once `has_ref`.
    has_ref: Array  # [] bool False until the first batch with a valid sample sets `acc_ref`.


def adaptive_lambda(
    *,
    num_samples: int,
    lam0: float = 0.0,
    eta: ScalarOrSchedule = 0.05,
    acc_ref: float | None = None,
) -> LengthMethod:
    """Length penalty whose weight grows while accuracy holds and shrinks when it drops.

    r = correct - lam * L / L_max                      (scored with the old lam)
    lam <- max(0, lam + eta * (batch_accuracy - acc_ref))

    `batch_accuracy` is the mean score over the batch's valid samples; `acc_ref` is fixed if given,
    else the accuracy of the first batch with a valid sample (kept in the state, so `lam` does not
    move on that batch). A batch without valid samples changes nothing. `L_max` is the sample's
    budget. lenrl's formulation in the style of A-DLP (adaptive direct length penalty).
    """
    check_num_samples(num_samples)
    check_number("lam0", lam0, 0.0)
    check_number("eta", eta, 0.0, schedule_ok=True)
    if acc_ref is not None:
        check_number("acc_ref", acc_ref, 0.0, 1.0)

    def init(num_prompts):
        del num_prompts
        return AdaptiveLambdaState(
            lam=jnp.float32(lam0),
            acc_ref=jnp.float32(0.0 if acc_ref is None else acc_ref),
            has_ref=jnp.bool_(acc_ref is not None),
        )

    def apply(rollouts, state, step):
        valid = rollouts.valid
        r = rollouts.correct - state.lam * lengths(rollouts) / max_lengths(rollouts)
        count = jnp.sum(valid)
        accuracy = jnp.sum(jnp.where(valid, rollouts.correct, 0.0)) / jnp.maximum(count, 1)
        ref = jnp.where(state.has_ref, state.acc_ref, accuracy)
        lam = jnp.maximum(0.0, state.lam + value_at(eta, step) * (accuracy - ref))
        seen = count > 0
        new_state = AdaptiveLambdaState(
            lam=jnp.where(seen, lam, state.lam).astype(jnp.float32),
            acc_ref=jnp.where(seen, ref, state.acc_ref).astype(jnp.float32),
            has_ref=state.has_ref | seen,
        )
        return mask_invalid(r, valid), new_state

    return LengthMethod(init, default_budgets(num_samples), apply, "adaptive_lambda", num_samples)
