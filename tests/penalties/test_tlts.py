import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties

from ._helpers import (
    SETTINGS,
    G,
    assert_shorter_correct_not_worse,
    batches,
    make_batch,
    to_rollouts,
)

weights = st.floats(0.0, 2.0)


@given(batch=batches(soft_correct=True), w_c=weights, w_len=weights, w_fmt=weights)
@SETTINGS
def test_matches_reference(batch, w_c, w_len, w_fmt):
    method = penalties.get("tlts", num_samples=G, w_c=w_c, w_len=w_len, w_fmt=w_fmt)
    reward, _ = method.apply(to_rollouts(batch), (), 0)
    expected = np.zeros(batch["correct"].shape)
    for i, g in np.ndindex(expected.shape):
        if batch["valid"][i, g]:
            c, b = float(batch["correct"][i, g]), max(int(batch["budget"][i, g]), 1)
            unused = 1 - min(int(batch["length"][i, g]), b) / b
            expected[i, g] = w_c * c + w_len * c * unused + w_fmt * batch["format_ok"][i, g]
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-5)


@given(batch=batches())
@SETTINGS
def test_shorter_correct_never_worse(batch):
    batch["format_ok"][:] = 1.0  # Format is not about length; hold it fixed.
    reward, _ = penalties.get("tlts", num_samples=G).apply(to_rollouts(batch), (), 0)
    assert_shorter_correct_not_worse(batch, reward)


def test_hand_example():
    # B = 256 (TLTS schedule start), w_c = 1, w_len = 0.5, w_fmt = 0.2.
    #   correct, L = 64, format ok: 1 + 0.5 * (1 - 64/256) + 0.2 = 1.575
    #   correct, L = 256, format ok: 1 + 0 + 0.2 = 1.2
    #   wrong, L = 64, format ok: 0.2;  correct, L = 128, bad format: 1 + 0.25 = 1.25
    batch = make_batch([[1, 1, 0, 1]], [[64, 256, 64, 128]], budget=256, format_ok=[[1, 1, 1, 0]])
    reward, _ = penalties.get("tlts", num_samples=4).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, [[1.575, 1.2, 0.2, 1.25]], rtol=1e-6)


def test_weight_schedule_under_jit():
    method = penalties.get("tlts", num_samples=1, w_len=lambda step: jnp.where(step < 5, 0.0, 1.0))
    batch = to_rollouts(make_batch([[1]], [[64]], budget=256, format_ok=0.0))
    apply = jax.jit(method.apply)
    np.testing.assert_allclose(apply(batch, (), jnp.int32(0))[0], [[1.0]])
    np.testing.assert_allclose(apply(batch, (), jnp.int32(5))[0], [[1.75]])


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="w_len"):
        penalties.get("tlts", num_samples=G, w_len=-0.5)
