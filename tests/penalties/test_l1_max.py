import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


@given(batch=batches(soft_correct=True), alpha=st.floats(0.0, 0.1), delta=st.floats(0.0, 1.0))
@SETTINGS
def test_matches_reference(batch, alpha, delta):
    method = penalties.get("l1_max", num_samples=G, alpha=alpha, delta=delta)
    reward, _ = method.apply(to_rollouts(batch), (), 0)
    expected = np.zeros(batch["correct"].shape)
    for i, g in np.ndindex(expected.shape):
        if batch["valid"][i, g]:
            slack = int(batch["target"][i, g]) - int(batch["length"][i, g])
            expected[i, g] = batch["correct"][i, g] * min(max(alpha * slack + delta, 0.0), 1.0)
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-6)


def test_hand_example():
    # alpha = 3e-4, delta = 0.5, target 1000, all correct:
    #   L = 1200: clip(3e-4 * -200 + 0.5) = 0.44;  L = 1000: 0.5;  L = 500: 0.15 + 0.5 = 0.65;
    #   L = 3000: 3e-4 * -2000 + 0.5 = -0.1 -> 0;  L = 0: 0.3 + 0.5 = 0.8.
    # A wrong answer earns 0.
    batch = make_batch([[1, 1, 1, 1, 1, 0]], [[1200, 1000, 500, 3000, 0, 500]], target=1000)
    reward, _ = penalties.get("l1_max", num_samples=6).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, [[0.44, 0.5, 0.65, 0.0, 0.8, 0.0]], rtol=1e-5, atol=1e-7)


def test_budgets_match_l1_exact():
    index = jnp.asarray([0, 4, 2], jnp.int32)
    exact = penalties.get("l1_exact", num_samples=2, seed=3).budgets((), index, 5, 1000)
    maximum = penalties.get("l1_max", num_samples=2, seed=3).budgets((), index, 5, 1000)
    np.testing.assert_array_equal(exact[1], maximum[1])


@pytest.mark.parametrize("hparams", [dict(delta=1.5), dict(delta=-0.5), dict(alpha=-1e-4)])
def test_bad_hyperparameters(hparams):
    with pytest.raises(ValueError):
        penalties.get("l1_max", num_samples=G, **hparams)
