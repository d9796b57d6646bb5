"""Budget and weight schedules (spec section 4).

A schedule is an optax-style callable ``step -> value``: a pure function of an integer step (a
Python int or a traced ``jnp`` integer inside ``jax.jit``) that returns an ``f32`` array of the
step's shape. The same kind of schedule drives generation budgets, penalty weights, the KL
coefficient and the learning rate. Hyperparameters are checked when a schedule is built
(``ValueError``); steps are assumed ``>= 0``.

Budgets are integers: wrap a schedule in :func:`as_budget` to round it to ``int32`` and, optionally,
up to a multiple of a bucket so that the sampler compiles once per bucket rather than once per
value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


# --------------------------------------------------------------------------------------------------
# Validation helpers (run in Python at construction time).


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _check_nonneg(name: str, value: float) -> None:
    _check_finite(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_pos(name: str, value: float) -> None:
    _check_finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_pos_int(name: str, value: int) -> None:
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _f32(schedule: Schedule) -> Schedule:
    """Make an optax schedule return an ``f32`` array of the step's shape."""

    def wrapped(step: jax.typing.ArrayLike) -> jax.Array:
        value = jnp.asarray(schedule(step), jnp.float32)
        return jnp.broadcast_to(value, jnp.shape(step))

    return wrapped


# --------------------------------------------------------------------------------------------------
# Generic schedules.


def constant(value: float) -> Schedule:
    """``v(t) = value``.

    Unlike ``optax.constant_schedule`` (which returns the Python value unchanged), the result is an
    ``f32`` array of the step's shape, like every other schedule here.
    """
    _check_finite("value", value)
    return lambda step: jnp.full(jnp.shape(step), value, jnp.float32)


def linear(v0: float, v1: float, steps: int) -> Schedule:
    """``v(t) = v0 + (v1 - v0) * min(t, steps) / steps``: ``v0`` at 0 to ``v1`` at ``steps``."""
    _check_finite("v0", v0)
    _check_finite("v1", v1)
    _check_pos_int("steps", steps)
    ramp = _f32(optax.linear_schedule(init_value=v0, end_value=v1, transition_steps=steps))
    # Pin the end value: XLA may compute ``t / steps`` as ``t * (1 / steps)``, an ulp off.
    return lambda step: jnp.where(jnp.asarray(step) >= steps, jnp.float32(v1), ramp(step))


def exponential(v0: float, gamma: float, every: int, floor: float = 0.0) -> Schedule:
    """Staircase decay ``v(t) = max(floor, v0 * gamma ** floor(t / every))``, ``0 < gamma <= 1``."""
    _check_finite("v0", v0)
    _check_finite("floor", floor)
    _check_pos_int("every", every)
    _check_finite("gamma", gamma)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    if gamma == 1.0:  # optax treats decay_rate >= 1 as growth and `end_value` as an upper bound.
        return constant(max(v0, floor))
    return _f32(
        optax.exponential_decay(
            init_value=v0, transition_steps=every, decay_rate=gamma, staircase=True, end_value=floor
        )
    )


def warmup_then(value: float, warmup_steps: int) -> Schedule:
    """``v(t) = 0`` for ``t < warmup_steps``, else ``value`` (Kimi k1.5, arXiv 2501.12599)."""
    _check_finite("value", value)
    if not _is_int(warmup_steps) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
    return lambda step: jnp.where(jnp.asarray(step) < warmup_steps, 0.0, value).astype(jnp.float32)


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i]`` on ``[boundaries[i-1], boundaries[i])`` (``optax.join_schedules``).

    As in optax, the schedule that starts at a boundary sees the step **relative to that boundary**
    (``schedules[i](t - boundaries[i-1])``), so each piece can be written as if it started at 0.
    ``boundaries`` must be sorted (non-decreasing, ``>= 0``) and one shorter than ``schedules``; a
    repeated boundary skips the piece between (useful for a zero-length warm-up).
    """
    schedules = tuple(schedules)
    boundaries = tuple(boundaries)
    if not schedules:
        raise ValueError("join needs at least one schedule")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"join needs len(boundaries) == len(schedules) - 1, got {len(boundaries)} boundaries "
            f"for {len(schedules)} schedules"
        )
    for b in boundaries:
        if not _is_int(b) or b < 0:
            raise ValueError(f"boundaries must be ints >= 0, got {boundaries!r}")
    if any(b1 < b0 for b0, b1 in zip(boundaries, boundaries[1:], strict=False)):
        raise ValueError(f"boundaries must be sorted, got {boundaries!r}")
    return _f32(optax.join_schedules(schedules, boundaries))


# --------------------------------------------------------------------------------------------------
# Length-budget schedules of the papers.


def tlts(
    b0: float = 256,
    gamma: float = 0.9,
    every: int = 50,
    b_min: float = 64,
    mode: Literal["exponential", "linear"] = "exponential",
    total_steps: int | None = None,
) -> Schedule:
    """Train Long, Think Short budget curriculum (arXiv 2508.08940).

    ``mode="exponential"``: ``B(t) = max(B_min, B0 * gamma ** floor(t / T))`` with ``T = every``.
    ``mode="linear"``: ``B(t)`` goes linearly from ``B0`` at 0 to ``B_min`` at ``total_steps`` and
    stays there (``gamma`` and ``every`` are unused). Values are floats: wrap in :func:`as_budget`
    for token budgets.
    """
    _check_pos("b0", b0)
    _check_pos("b_min", b_min)
    if b_min > b0:
        raise ValueError(f"b_min must be <= b0, got b_min={b_min!r} > b0={b0!r}")
    if mode == "exponential":
        return exponential(b0, gamma, every, b_min)
    if mode == "linear":
        if total_steps is None:
            raise ValueError("tlts(mode='linear') needs total_steps")
        return linear(b0, b_min, total_steps)
    raise ValueError(f"mode must be 'exponential' or 'linear', got {mode!r}")


_SIRI_SHAPES = ("stair", "cosine", "stair_cosine")
_SIRI_END_PHASES = (None, "low", "high")


def siri(
    l_low: float = 4096,
    l_high: float = 8192,
    period: int = 200,
    compress_frac: float = 0.5,
    shape: Literal["stair", "cosine", "stair_cosine"] = "stair",
    end_phase: Literal["low", "high"] | None = None,
    total_steps: int | None = None,
) -> Schedule:
    """SIRI compress/expand length cycles (arXiv 2509.25176); lenrl's defaults.

    With ``P = period``, ``c = compress_frac``, ``u = t mod P``; each period starts in compression,
    which lasts ``u < c * P``, then expands:

    * ``stair``: ``L_low`` while compressing, else ``L_high``.
    * ``cosine``: half-cosine from ``L_high`` down to ``L_low`` over the compress part, then back up
      to ``L_high`` over the rest. With ``c = 0.5`` this is exactly the spec's
      ``L_low + (L_high - L_low) * (1 + cos(2 pi t / P)) / 2``, which already starts each period at
      ``L_high``.
    * ``stair_cosine``: the same half-cosine descent over the compress part, then ``L_high``.

    ``end_phase`` (needs ``total_steps``) shapes the last period, the one that holds step
    ``total_steps - 1``, so that the run ends in that phase (SIRI-low / SIRI-high):

    * ``"low"``: the last period compresses to the end (``L_low`` for ``stair``; otherwise the
      descent, then ``L_low`` held).
    * ``"high"``: ``L_high`` for the whole last period, extending the previous expansion.

    Steps past ``total_steps`` keep the last period's rule.
    """
    _check_pos("l_low", l_low)
    _check_pos("l_high", l_high)
    if l_low > l_high:
        raise ValueError(f"l_low must be <= l_high, got {l_low!r} > {l_high!r}")
    _check_pos_int("period", period)
    _check_finite("compress_frac", compress_frac)
    if not 0.0 < compress_frac < 1.0:
        raise ValueError(f"compress_frac must be in (0, 1), got {compress_frac!r}")
    if shape not in _SIRI_SHAPES:
        raise ValueError(f"shape must be one of {_SIRI_SHAPES}, got {shape!r}")
    if end_phase not in _SIRI_END_PHASES:
        raise ValueError(f"end_phase must be one of {_SIRI_END_PHASES}, got {end_phase!r}")
    if total_steps is not None:
        _check_pos_int("total_steps", total_steps)
    if end_phase is not None and total_steps is None:
        raise ValueError("siri(end_phase=...) needs total_steps")

    compress_steps = compress_frac * period  # c * P, may be fractional
    expand_steps = period - compress_steps
    last_start = None if end_phase is None else ((total_steps - 1) // period) * period

    def descent(u):  # L_high at u = 0 -> L_low at u = c * P, held after.
        x = jnp.minimum(u / compress_steps, 1.0)
        return l_low + (l_high - l_low) * 0.5 * (1.0 + jnp.cos(jnp.pi * x))

    def schedule(step):
        step = jnp.asarray(step)
        u = (step % period).astype(jnp.float32)  # position in the period, step's shape
        compressing = u < compress_steps
        if shape == "stair":
            value = jnp.where(compressing, l_low, l_high)
            held_low = jnp.full_like(u, l_low)
        else:
            held_low = descent(u)
            if shape == "cosine":
                x = (u - compress_steps) / expand_steps  # 0 -> 1 over the expand part
                ascent = l_low + (l_high - l_low) * 0.5 * (1.0 - jnp.cos(jnp.pi * x))
                value = jnp.where(compressing, held_low, ascent)
            else:
                value = jnp.where(compressing, held_low, l_high)
        if end_phase is not None:
            held = held_low if end_phase == "low" else jnp.full_like(u, l_high)
            value = jnp.where(step >= last_start, held, value)
        return value.astype(jnp.float32)

    return schedule


def rounds(limits: Sequence[float], steps_per_round: int) -> Schedule:
    """ThinkPrune rounds (arXiv 2504.01296): ``limits[min(t // steps_per_round, len(limits) - 1)]``.

    E.g. ``rounds((4000, 3000, 2000), 100)``: 4000 for steps 0-99, 3000 for 100-199, 2000 from 200
    on.
    """
    limits = tuple(limits)
    if not limits:
        raise ValueError("rounds needs at least one limit")
    for x in limits:
        _check_pos("limits", x)
    _check_pos_int("steps_per_round", steps_per_round)
    table = np.asarray(limits, np.float32)  # [R]

    def schedule(step):
        index = jnp.clip(jnp.asarray(step) // steps_per_round, 0, len(limits) - 1)
        return jnp.asarray(table)[index]

    return schedule


# --------------------------------------------------------------------------------------------------
# Budgets.


def round_up(value: jax.typing.ArrayLike, bucket: int) -> jax.Array:
    """Smallest multiple of ``bucket`` that is ``>= value`` (``int32``; ``value`` integral)."""
    _check_pos_int("bucket", bucket)
    value = jnp.asarray(value, jnp.int32)
    return (-(-value // bucket) * bucket).astype(jnp.int32)


def as_budget(schedule: Schedule, bucket: int | None = None) -> Schedule:
    """Turn a schedule into an ``int32`` token budget.

    ``round(v(t))``, then, if ``bucket`` is given, round **up** to a multiple of it (so the sampler
    sees few distinct values and does not recompile for each).

    Rounding is to nearest, ties to even (``jnp.round``).
    """
    if bucket is not None:
        _check_pos_int("bucket", bucket)

    def budget(step):
        value = jnp.round(schedule(step)).astype(jnp.int32)
        return value if bucket is None else round_up(value, bucket)

    return budget


# Registry: the spec's schedule names -> constructors (``as_budget`` wraps any of them).
SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "linear": linear,
    "exponential": exponential,
    "tlts": tlts,
    "siri": siri,
    "rounds": rounds,
    "warmup_then": warmup_then,
    "join": join,
}
