"""`drpo_weights`: DRPO's positive-only length weighting [paper] (arXiv 2510.04474)."""

import jax.numpy as jnp

from lenrl.penalties.base import (
    Array,
    ArrayLike,
    LengthMethod,
    check_num_samples,
    check_number,
    is_correct,
    stateless_method,
)


def drpo_weights(
    length: Array, correct: Array, valid: Array, l_max: ArrayLike, lam: ArrayLike = 0.1
) -> Array:
    """DRPO length weights `w [P, G]` f32 over the correct valid samples of each group.

    w_i = exp((1 - L_i / L_max) / lam) / sum_{j in pos} exp((1 - L_j / L_max) / lam),  i in pos

    where `pos` is the group's correct valid samples; `w = 0` elsewhere, and a group without
    positives is all 0. The weights sum to 1 over `pos`: a shorter correct answer gets a larger
    share. `l_max` is a scalar or broadcasts against `[P, G]` (the trainer passes
    `rollouts.budget`); `lam > 0` is the temperature. Computed as a masked softmax, so a small `lam`
    does not overflow. Groups are the last axis. DRPO (decoupled reward policy optimisation), arXiv
    2510.04474.
    """
    positive = valid & is_correct(correct)
    logits = (1.0 - length.astype(jnp.float32) / jnp.asarray(l_max, jnp.float32)) / lam
    logits = jnp.where(positive, logits, -jnp.inf)
    top = jnp.max(logits, axis=-1, keepdims=True)  # [P, 1], -inf for a group without positives.
    unnormalised = jnp.where(positive, jnp.exp(logits - jnp.where(positive, top, 0.0)), 0.0)
    total = jnp.sum(unnormalised, axis=-1, keepdims=True)
    return unnormalised / jnp.where(total > 0, total, 1.0)


def drpo_weights_method(*, num_samples: int, lam: float = 0.1) -> LengthMethod:
    """The `drpo_weights` method: `r = correct`; the length signal lives in the advantage.

    DRPO's length control is not an additive reward: the `positive_group` and `drpo` advantages
    (section 3) weight the correct samples with `drpo_weights(..., lam)`. Selecting this method
    keeps the reward plain and checks `lam`; the advantage takes the same `lam`. DRPO, arXiv
    2510.04474.
    """
    check_num_samples(num_samples)
    check_number("lam", lam, 0.0, low_open=True)
    return stateless_method("drpo_weights", num_samples, lambda rollouts, step: rollouts.correct)
