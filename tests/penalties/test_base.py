import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lenrl.penalties import base

from ._helpers import SETTINGS


def test_rollouts_field_order():
    assert base.Rollouts._fields == (
        "correct",
        "length",
        "truncated",
        "budget",
        "target",
        "format_ok",
        "valid",
        "prompt_index",
    )
    assert base.LengthMethod._fields[:3] == ("init", "budgets", "apply")


def test_value_at_number_and_traced_schedule():
    assert base.value_at(0.5, 3) == 0.5
    warmup = lambda step: jnp.where(step < 10, 0.0, 2.0)  # noqa: E731
    at = jax.jit(lambda step: base.value_at(warmup, step))
    assert float(at(jnp.int32(9))) == 0.0 and float(at(jnp.int32(10))) == 2.0
    assert float(jax.jit(lambda step: base.value_at(0.5, step) * step)(4)) == 2.0


@given(
    x=hnp.arrays(np.float32, (3, 5), elements=st.floats(-100, 100, width=32)),
    mask=hnp.arrays(np.bool_, (3, 5)),
)
@SETTINGS
def test_masked_group_statistics(x, mask):
    for i in range(3):
        chosen = x[i][mask[i]]
        mean = chosen.mean() if chosen.size else 0.0
        np.testing.assert_allclose(base.masked_mean(x, mask)[i, 0], mean, rtol=1e-5, atol=1e-4)
        low = chosen.min() if chosen.size else np.inf
        high = chosen.max() if chosen.size else -np.inf
        assert base.masked_min(x, mask)[i, 0] == low
        assert base.masked_max(x, mask)[i, 0] == high
        assert base.masked_count(mask)[i, 0] == chosen.size
    correct = (x > 0).astype(np.float32)
    expected = [correct[i][mask[i]].mean() if mask[i].any() else 0.0 for i in range(3)]
    np.testing.assert_allclose(base.solve_rate(correct, mask)[:, 0], expected, rtol=1e-6)


def test_is_correct_threshold():
    np.testing.assert_array_equal(
        base.is_correct(jnp.asarray([0.0, 0.49, 0.5, 1.0])), [False, False, True, True]
    )


def test_prompt_sum_pools_duplicates():
    out = base.prompt_sum(jnp.asarray([1.0, 2.0, 4.0]), jnp.asarray([3, 0, 3]), 5)
    np.testing.assert_array_equal(out, [2.0, 0.0, 0.0, 5.0, 0.0])


def test_default_budgets_round_a_traced_base_budget():
    budgets = jax.jit(base.default_budgets(3))
    budget, target = budgets((), jnp.arange(2), jnp.int32(5), jnp.float32(1023.6))
    np.testing.assert_array_equal(budget, [[1024] * 3] * 2)
    np.testing.assert_array_equal(target, 0)
    assert budget.dtype == target.dtype == jnp.int32


def test_check_number():
    base.check_number("x", 0.5, 0.0, 1.0)
    base.check_number("x", lambda step: -1.0, 0.0, schedule_ok=True)
    for bad, kwargs in [
        (1.5, {}),
        (0.0, dict(low_open=True)),
        ("1", {}),
        (True, {}),
        (float("nan"), {}),
        (0.5, dict(integer=True)),
        (lambda step: 0.5, {}),
    ]:
        with pytest.raises(ValueError, match="x must be"):
            base.check_number("x", bad, 0.0, 1.0, **kwargs)
