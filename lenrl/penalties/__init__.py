"""Length-control methods: penalties, shaped rewards and budgets (spec `length_methods.md`, 1-2).

    method = lenrl.penalties.get("kimi", num_samples=8, w=1.0)
    state = method.init(num_prompts)
    budget, target = method.budgets(state, prompt_index, step, base_budget)  # before sampling
    reward, state = method.apply(rollouts, state, step)  # after verification

`REGISTRY` maps each spec name to its constructor; `get` builds one by name and checks the
hyperparameters; `compose` sums several methods' length terms. See `docs/methods.md`.
"""

import inspect
from collections.abc import Callable

from lenrl.penalties import (
    adaptive_lambda,
    alp,
    cosine,
    dapo_overlong,
    difficulty_aware_truncation,
    drpo_weights,
    format_length,
    grpo_lambda,
    hapo,
    hbpo,
    kimi,
    l1_exact,
    l1_max,
    none,
    siri,
    thinkprune,
    tlts,
    truncation,
)
from lenrl.penalties.base import LengthMethod, Rollouts
from lenrl.penalties.composition import compose, with_format

REGISTRY: dict[str, Callable[..., LengthMethod]] = {
    "none": none.none,
    "truncation": truncation.truncation,
    "difficulty_aware_truncation": difficulty_aware_truncation.difficulty_aware_truncation,
    "kimi": kimi.kimi,
    "l1_exact": l1_exact.l1_exact,
    "l1_max": l1_max.l1_max,
    "alp": alp.alp,
    "grpo_lambda": grpo_lambda.grpo_lambda,
    "hapo": hapo.hapo,
    "drpo_weights": drpo_weights.drpo_weights_method,
    "hbpo": hbpo.hbpo,
    "cosine": cosine.cosine,
    "dapo_overlong": dapo_overlong.dapo_overlong,
    "thinkprune": thinkprune.thinkprune,
    "tlts": tlts.tlts,
    "siri": siri.siri,
    "format_length": format_length.format_length,
    "adaptive_lambda": adaptive_lambda.adaptive_lambda,
}


def hparam_names(name: str) -> list[str]:
    """The hyperparameters `get(name, ...)` accepts (`num_samples` and `format_weight` included)."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown length method {name!r}; valid names: {sorted(REGISTRY)}.")
    return [*inspect.signature(REGISTRY[name]).parameters, "format_weight"]


def get(name: str, **hparams) -> LengthMethod:
    """The method registered as `name`, built with `hparams`.

    Every method needs `num_samples` (G, the group size); `format_weight` (a number or a schedule)
    adds `format_weight * format_ok` to any method (`with_format`). An unknown name, an unknown or
    missing hyperparameter, or a bad value raises `ValueError`.
    """
    valid = hparam_names(name)
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ValueError(f"Unknown hyperparameters {unknown} for {name!r}; valid ones: {valid}.")
    if "num_samples" not in hparams:
        raise ValueError(
            f"{name!r} needs num_samples (G, samples per prompt); valid ones: {valid}."
        )
    format_weight = hparams.pop("format_weight", 0.0)
    return with_format(REGISTRY[name](**hparams), format_weight)


__all__ = ["REGISTRY", "LengthMethod", "Rollouts", "compose", "get", "hparam_names", "with_format"]
