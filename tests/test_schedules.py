"""Schedules: boundary values, NumPy references, jit / vmap / Python-int agreement, validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenrl import schedules as S

STEPS = (0, 1, 2, 49, 50, 51, 99, 100, 101, 149, 150, 199, 200, 250, 399, 400, 1000, 5000)


def values(schedule, steps=STEPS):
    """The schedule at each step from plain Python ints."""
    return np.array([float(schedule(t)) for t in steps])


# ------------------------------------------------------------------------------------------------
# Boundary values and hand-worked examples.


def test_constant():
    s = S.constant(3.5)
    assert float(s(0)) == 3.5 and float(s(10_000)) == 3.5
    assert s(jnp.arange(4)).shape == (4,) and s(0).dtype == jnp.float32


def test_linear():
    s = S.linear(10.0, 2.0, 8)
    np.testing.assert_allclose(values(s, (0, 4, 8, 9, 100)), [10, 6, 2, 2, 2])
    assert float(jax.jit(s)(8)) == 2.0  # the end value is exact under jit too


def test_exponential_matches_reference():
    s = S.exponential(100.0, 0.5, 10, 20.0)
    ref = [max(20.0, 100.0 * 0.5 ** (t // 10)) for t in STEPS]
    np.testing.assert_allclose(values(s), ref, rtol=1e-6)
    np.testing.assert_allclose(values(S.exponential(7.0, 1.0, 3, 2.0)), 7.0)


def test_tlts_exponential_boundaries():
    s = S.tlts()  # B0 = 256, gamma = 0.9, T = 50, B_min = 64
    np.testing.assert_allclose(
        values(s, (0, 49, 50, 99, 100, 150)),
        [256, 256, 256 * 0.9, 256 * 0.9, 256 * 0.81, 256 * 0.729],
        rtol=1e-6,
    )
    k_floor = math.ceil(math.log(64 / 256) / math.log(0.9))  # first stair below B_min
    assert float(s(50 * k_floor)) == 64.0 and float(s(50 * k_floor - 1)) > 64.0
    assert float(s(10**6)) == 64.0


def test_tlts_linear():
    s = S.tlts(b0=300, b_min=100, mode="linear", total_steps=200)
    np.testing.assert_allclose(values(s, (0, 100, 200, 300)), [300, 200, 100, 100])


def test_siri_stair_boundaries():
    s = S.siri(l_low=4096, l_high=8192, period=200, compress_frac=0.25, shape="stair")
    got = values(s, (0, 49, 50, 199, 200, 249, 250, 399, 400))
    np.testing.assert_array_equal(got, [4096, 4096, 8192, 8192, 4096, 4096, 8192, 8192, 4096])


def test_siri_cosine_is_spec_formula_at_half():
    lo, hi, period = 1000.0, 3000.0, 40
    s = S.siri(l_low=lo, l_high=hi, period=period, shape="cosine")
    t = np.arange(130)
    ref = lo + (hi - lo) * (1 + np.cos(2 * np.pi * t / period)) / 2
    np.testing.assert_allclose(values(s, t), ref, rtol=1e-5)
    # Each period starts at L_high, reaches L_low mid-period, and returns.
    np.testing.assert_allclose(values(s, (0, 20, 40, 60, 80)), [hi, lo, hi, lo, hi], rtol=1e-6)


def test_siri_cosine_general_fraction():
    lo, hi = 100.0, 200.0
    s = S.siri(l_low=lo, l_high=hi, period=100, compress_frac=0.3, shape="cosine")
    v = values(s, range(101))
    assert v[0] == hi and v[30] == pytest.approx(lo) and v[100] == hi
    assert np.all(np.diff(v[:31]) < 0) and np.all(np.diff(v[30:101]) > 0)
    assert v[65] == pytest.approx((lo + hi) / 2, rel=1e-5)  # half-way up the expansion


def test_siri_stair_cosine():
    lo, hi = 100.0, 200.0
    s = S.siri(l_low=lo, l_high=hi, period=100, compress_frac=0.5, shape="stair_cosine")
    v = values(s, range(101))
    assert v[0] == hi and v[25] == pytest.approx(150.0, rel=1e-6)
    assert np.all(np.diff(v[:50]) < 0) and v[49] == pytest.approx(lo, rel=1e-3)
    assert np.all(v[50:100] == hi) and v[100] == hi


def test_siri_end_phase():
    kw = dict(l_low=1.0, l_high=2.0, period=10, compress_frac=0.5, total_steps=25)
    plain = values(S.siri(**kw), range(30))
    low = values(S.siri(**kw, end_phase="low"), range(30))
    high = values(S.siri(**kw, end_phase="high"), range(30))
    np.testing.assert_array_equal(low[:20], plain[:20])  # earlier periods unchanged
    np.testing.assert_array_equal(high[:20], plain[:20])
    assert np.all(low[20:] == 1.0) and np.all(high[20:] == 2.0)  # last period held
    # Cosine "low": descends as usual in the last period, then holds L_low to the end.
    kw["shape"] = "cosine"
    cos_plain = values(S.siri(**kw), range(30))
    cos_low = values(S.siri(**kw, end_phase="low"), range(30))
    np.testing.assert_allclose(cos_low[:25], cos_plain[:25])
    np.testing.assert_allclose(cos_low[25:], 1.0)


def test_rounds_boundaries():
    s = S.rounds((4000, 3000, 2000), 100)
    got = values(s, (0, 99, 100, 199, 200, 10_000))
    np.testing.assert_array_equal(got, [4000, 4000, 3000, 3000, 2000, 2000])


def test_warmup_then():
    s = S.warmup_then(0.7, 10)
    np.testing.assert_allclose(values(s, (0, 9, 10, 11)), [0, 0, 0.7, 0.7], rtol=1e-7)
    np.testing.assert_allclose(values(S.warmup_then(0.7, 0), (0, 1)), [0.7, 0.7], rtol=1e-7)


def test_join_steps_are_relative_to_boundary():
    s = S.join([S.constant(1.0), S.linear(10.0, 0.0, 10), S.constant(-1.0)], [5, 15])
    got = values(s, (0, 4, 5, 10, 14, 15, 100))
    np.testing.assert_allclose(got, [1, 1, 10, 5, 1, -1, -1], rtol=1e-6)
    # A repeated boundary skips the piece between (zero-length warm-up).
    np.testing.assert_allclose(values(S.join([S.constant(0.0), S.constant(2.0)], [0]), (0, 3)), 2)


def test_as_budget_rounds_and_buckets():
    b = S.as_budget(S.tlts(), bucket=32)
    got = [int(b(t)) for t in (0, 50, 100, 150, 10**6)]  # 256, 230.4, 207.36, 186.6, 64
    assert got == [256, 256, 224, 192, 64]
    assert b(0).dtype == jnp.int32
    plain = S.as_budget(S.tlts())
    assert [int(plain(t)) for t in (0, 50, 100, 150)] == [256, 230, 207, 187]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 100_000), st.integers(1, 512))
def test_round_up_property(value, bucket):
    out = int(S.round_up(value, bucket))
    assert out % bucket == 0 and value <= out < value + bucket


# ------------------------------------------------------------------------------------------------
# Same values in plain Python, under jit with a traced step, and under vmap.

SCHEDULES = {
    "constant": S.constant(2.0),
    "linear": S.linear(0.0, 1.0, 100),
    "exponential": S.exponential(1.0, 0.9, 50, 0.2),
    "tlts": S.tlts(),
    "tlts_linear": S.tlts(mode="linear", total_steps=300),
    "siri_stair": S.siri(),
    "siri_cosine": S.siri(shape="cosine", compress_frac=0.3),
    "siri_stair_cosine_high": S.siri(shape="stair_cosine", end_phase="high", total_steps=500),
    "siri_low": S.siri(end_phase="low", total_steps=450),
    "rounds": S.rounds((4000, 3000, 2000), 100),
    "warmup_then": S.warmup_then(1.0, 100),
    "join": S.join([S.warmup_then(1.0, 10), S.linear(1.0, 0.0, 100)], [50]),
    "budget": S.as_budget(S.siri(shape="cosine"), bucket=128),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_python_jit_vmap_agree(name):
    s = SCHEDULES[name]
    eager = values(s)
    jitted = jax.jit(s)
    traced = np.array([float(jitted(jnp.int32(t))) for t in STEPS])
    mapped = np.asarray(jax.vmap(s)(jnp.asarray(STEPS, jnp.int32)), float)
    # XLA may fuse arithmetic differently under jit: allow f32 rounding, never a different stair.
    np.testing.assert_allclose(traced, eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mapped, eager, rtol=1e-6, atol=1e-6)
    if name in ("rounds", "warmup_then", "siri_stair", "siri_low", "budget"):
        np.testing.assert_array_equal(traced, eager)


# ------------------------------------------------------------------------------------------------
# Bad hyperparameters raise at construction.

BAD = {
    "linear steps 0": lambda: S.linear(0.0, 1.0, 0),
    "constant nan": lambda: S.constant(float("nan")),
    "exponential gamma 0": lambda: S.exponential(1.0, 0.0, 10),
    "exponential gamma > 1": lambda: S.exponential(1.0, 1.5, 10),
    "exponential every 0": lambda: S.exponential(1.0, 0.5, 0),
    "tlts negative budget": lambda: S.tlts(b0=-256),
    "tlts negative floor": lambda: S.tlts(b_min=-1),
    "tlts floor above start": lambda: S.tlts(b0=64, b_min=256),
    "tlts bad mode": lambda: S.tlts(mode="cosine"),
    "tlts linear without total": lambda: S.tlts(mode="linear"),
    "siri period 0": lambda: S.siri(period=0),
    "siri period float": lambda: S.siri(period=2.5),
    "siri compress 0": lambda: S.siri(compress_frac=0.0),
    "siri compress 1": lambda: S.siri(compress_frac=1.0),
    "siri low above high": lambda: S.siri(l_low=9000, l_high=8192),
    "siri negative": lambda: S.siri(l_low=-1),
    "siri bad shape": lambda: S.siri(shape="saw"),
    "siri bad end phase": lambda: S.siri(end_phase="mid", total_steps=10),
    "siri end phase without total": lambda: S.siri(end_phase="low"),
    "rounds empty": lambda: S.rounds((), 10),
    "rounds negative": lambda: S.rounds((4000, -1), 10),
    "rounds steps 0": lambda: S.rounds((4000,), 0),
    "warmup negative": lambda: S.warmup_then(1.0, -1),
    "join unsorted": lambda: S.join([S.constant(0.0)] * 3, [10, 5]),
    "join wrong count": lambda: S.join([S.constant(0.0)] * 3, [10]),
    "join empty": lambda: S.join([], []),
    "bucket 0": lambda: S.as_budget(S.constant(1.0), bucket=0),
    "bucket float": lambda: S.as_budget(S.constant(1.0), bucket=64.0),
    "value not a number": lambda: S.constant("1"),
}


def test_registry():
    assert set(S.SCHEDULES) == {
        "constant",
        "linear",
        "exponential",
        "tlts",
        "siri",
        "rounds",
        "warmup_then",
        "join",
    }


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_hyperparameters_raise(name):
    with pytest.raises(ValueError):
        BAD[name]()
