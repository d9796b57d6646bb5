"""Composition of length-control methods (spec section 2): `compose` and `with_format`."""

from collections.abc import Sequence

import jax.numpy as jnp

from lenrl.penalties.base import (
    LengthMethod,
    ScalarOrSchedule,
    check_number,
    mask_invalid,
    value_at,
)


def with_format(method: LengthMethod, format_weight: ScalarOrSchedule) -> LengthMethod:
    """`method` with a format bonus: `r = r_method + format_weight * format_ok` (valid samples).

    State, budgets and name are the method's own. A constant weight of 0 returns `method` unchanged.
    """
    check_number("format_weight", format_weight, schedule_ok=True)
    if not callable(format_weight) and format_weight == 0:
        return method

    def apply(rollouts, state, step):
        reward, state = method.apply(rollouts, state, step)
        bonus = value_at(format_weight, step) * rollouts.format_ok
        return reward + mask_invalid(bonus, rollouts.valid), state

    return method._replace(apply=apply)


def compose(
    terms: Sequence[tuple[LengthMethod, ScalarOrSchedule]],
    format_weight: ScalarOrSchedule = 0.0,
) -> LengthMethod:
    """One correctness term plus the weighted length terms of several methods.

    r = correct + sum_m weight_m * (r_m - correct) + format_weight * format_ok

    A method's *length term* is `r_m - correct`: what it adds to (or takes from) the plain
    verifiable reward, e.g. `w * len_r` for `kimi`, `-alpha * |target - L|` for `l1_exact`,
    `(kappa - 1) * correct` on truncated samples for `truncation`; it is 0 for `none` and
    `drpo_weights`. For methods that rescale the whole reward (`cosine`, `hbpo`, `tlts`,
    `format_length`) it is that difference all the same, so `compose([(m, 1.0)])` reproduces `m`
    exactly. Weights are numbers or schedules.

    State: a dict `{method.name: method_state}`; names must be distinct. Budgets: the elementwise
    minimum of the methods' budgets (each is a cap) and the maximum of their targets (0 = none), so
    at most one method should write targets (`l1_exact`, `l1_max`, `hbpo`). All methods must share
    `num_samples`. Invalid samples get 0.
    """
    terms = [tuple(entry) for entry in terms]
    if not terms:
        raise ValueError("compose needs at least one (method, weight) pair.")
    for entry in terms:
        if len(entry) != 2 or not isinstance(entry[0], LengthMethod):
            raise ValueError(f"compose takes (LengthMethod, weight) pairs, got {entry!r}.")
        check_number(f"weight of {entry[0].name}", entry[1], schedule_ok=True)
    methods = [method for method, _ in terms]
    names = [method.name for method in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"compose needs distinct method names (each keys its state), got {names}.")
    sizes = {method.name: method.num_samples for method in methods}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"composed methods disagree on num_samples: {sizes}.")
    num_samples = methods[0].num_samples

    def init(num_prompts):
        return {method.name: method.init(num_prompts) for method in methods}

    def budgets(state, prompt_index, step, base_budget):
        pairs = [m.budgets(state[m.name], prompt_index, step, base_budget) for m in methods]
        budget = jnp.min(jnp.stack([b for b, _ in pairs]), axis=0)
        target = jnp.max(jnp.stack([t for _, t in pairs]), axis=0)
        return budget, target

    def apply(rollouts, state, step):
        correct = mask_invalid(rollouts.correct, rollouts.valid)  # [P, G]
        reward, new_state = correct, {}
        for method, weight in terms:
            r, new_state[method.name] = method.apply(rollouts, state[method.name], step)
            reward = reward + value_at(weight, step) * (r - correct)
        return reward, new_state

    composed = LengthMethod(init, budgets, apply, "+".join(names), num_samples)
    return with_format(composed, format_weight)
