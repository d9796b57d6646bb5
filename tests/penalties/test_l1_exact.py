import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties
from lenrl.penalties.l1_exact import l1_targets

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


@given(batch=batches(soft_correct=True), alpha=st.floats(0.0, 0.05))
@SETTINGS
def test_matches_reference(batch, alpha):
    method = penalties.get("l1_exact", num_samples=G, alpha=alpha)
    reward, _ = method.apply(to_rollouts(batch), (), 0)
    expected = np.zeros(batch["correct"].shape)
    for i, g in np.ndindex(expected.shape):
        if batch["valid"][i, g]:
            gap = abs(int(batch["target"][i, g]) - int(batch["length"][i, g]))
            expected[i, g] = batch["correct"][i, g] - alpha * gap
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-6)


def test_hand_example():
    # alpha = 3e-4, target 1000: L = 1200 correct -> 1 - 3e-4 * 200 = 0.94;
    # L = 1000 correct -> 1; L = 400 wrong -> 0 - 3e-4 * 600 = -0.18.
    batch = make_batch([[1, 1, 0]], [[1200, 1000, 400]], target=1000)
    reward, _ = penalties.get("l1_exact", num_samples=3).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, [[0.94, 1.0, -0.18]], rtol=1e-5)


def test_targets_are_reproducible_and_in_range():
    method = penalties.get("l1_exact", num_samples=4, t_min=100, t_max=4000, seed=7)
    index = jnp.asarray([3, 5, 3, 9], jnp.int32)
    budgets = jax.jit(method.budgets)
    budget, target = budgets((), index, jnp.int32(11), jnp.int32(4096))
    np.testing.assert_array_equal(budget, 4096)
    assert np.all(np.asarray(target) == np.asarray(target)[:, :1])  # One target per prompt.
    np.testing.assert_array_equal(target[0], target[2])  # A duplicate prompt gets the same target.
    eager = l1_targets(index, 11, seed=7, t_min=100, t_max=4000)
    np.testing.assert_array_equal(target[:, 0], eager)  # Eager = jit with a traced step.
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(7), 11), 5)
    assert int(target[1, 0]) == int(jax.random.randint(key, (), 100, 4001))
    draw = jax.jit(functools.partial(l1_targets, seed=0, t_min=100, t_max=4000))
    many = draw(jnp.arange(2000), 0)
    assert 100 <= int(many.min()) and int(many.max()) <= 4000
    assert int(many.max()) - int(many.min()) > 3500  # Spread over the whole range.
    other_step = draw(jnp.arange(2000), 1)
    assert np.mean(np.asarray(many) == np.asarray(other_step)) < 0.01


@pytest.mark.parametrize(
    "hparams", [dict(alpha=-1.0), dict(t_min=0), dict(t_min=500, t_max=100), dict(seed=1.5)]
)
def test_bad_hyperparameters(hparams):
    with pytest.raises(ValueError):
        penalties.get("l1_exact", num_samples=G, **hparams)
