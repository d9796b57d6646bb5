import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties
from lenrl.penalties.adaptive_lambda import AdaptiveLambdaState

from ._helpers import (
    SETTINGS,
    G,
    assert_trees_equal,
    batches,
    checkpoint_roundtrip,
    make_batch,
    to_rollouts,
)


def reference_run(batches_, lam0, eta, acc_ref):
    """Rewards and final (lam, acc_ref, has_ref) over a sequence of batches, with loops."""
    lam, ref, has_ref = lam0, acc_ref, acc_ref is not None
    rewards = []
    for batch in batches_:
        reward = np.zeros(batch["correct"].shape)
        scores = []
        for i, g in np.ndindex(reward.shape):
            if batch["valid"][i, g]:
                share = int(batch["length"][i, g]) / max(int(batch["budget"][i, g]), 1)
                reward[i, g] = batch["correct"][i, g] - lam * share
                scores.append(float(batch["correct"][i, g]))
        rewards.append(reward)
        if scores:
            accuracy = sum(scores) / len(scores)
            if not has_ref:
                ref, has_ref = accuracy, True
            lam = max(0.0, lam + eta * (accuracy - ref))
    return rewards, (lam, ref if has_ref else 0.0, has_ref)


@given(
    batch_list=st.lists(batches(soft_correct=True), min_size=1, max_size=3),
    lam0=st.floats(0.0, 1.0),
    eta=st.floats(0.0, 1.0),
    acc_ref=st.sampled_from([None, 0.0, 0.5]),
)
@SETTINGS
def test_matches_reference(batch_list, lam0, eta, acc_ref):
    method = penalties.get("adaptive_lambda", num_samples=G, lam0=lam0, eta=eta, acc_ref=acc_ref)
    state = method.init(1)
    expected_rewards, (lam, ref, has_ref) = reference_run(batch_list, lam0, eta, acc_ref)
    for step, (batch, expected) in enumerate(zip(batch_list, expected_rewards, strict=True)):
        reward, state = method.apply(to_rollouts(batch), state, step)
        np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.lam, lam, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.acc_ref, ref, rtol=1e-5, atol=1e-6)
    assert bool(state.has_ref) == has_ref
    assert float(state.lam) >= 0.0


def test_hand_example():
    # lam0 = 0.1, eta = 0.05, L / L_max = 0.5 everywhere.
    # Step 0: accuracy 3/4 sets acc_ref = 0.75; lam stays 0.1 (0.75 - 0.75 = 0).
    #   r = correct - 0.1 * 0.5 = [0.95, 0.95, 0.95, -0.05].
    # Step 1: accuracy 1/2 -> lam = 0.1 + 0.05 * (0.5 - 0.75) = 0.0875; scored with the old 0.1.
    # Step 2: accuracy 1 -> lam = 0.0875 + 0.05 * 0.25 = 0.1; scored with 0.0875.
    method = penalties.get("adaptive_lambda", num_samples=4, lam0=0.1, eta=0.05)
    apply = jax.jit(method.apply)
    state = method.init(10)
    steps = [([1, 1, 1, 0], 0.1, 0.1), ([1, 1, 0, 0], 0.1, 0.0875), ([1, 1, 1, 1], 0.0875, 0.1)]
    for step, (correct, lam_used, lam_after) in enumerate(steps):
        batch = to_rollouts(make_batch([correct], 500, budget=1000))
        reward, state = apply(batch, state, jnp.int32(step))
        np.testing.assert_allclose(reward, [np.asarray(correct) - lam_used * 0.5], rtol=1e-6)
        np.testing.assert_allclose(state.lam, lam_after, rtol=1e-6)
        np.testing.assert_allclose(state.acc_ref, 0.75)


def test_empty_batch_changes_nothing_and_checkpoint_roundtrip(tmp_path):
    method = penalties.get("adaptive_lambda", num_samples=2, lam0=0.2)
    state = method.init(1)
    padding = to_rollouts(make_batch([[1, 1]], 10, valid=False))
    _, same = method.apply(padding, state, 0)
    assert_trees_equal(same, state)
    assert not bool(same.has_ref)  # The first *valid* batch sets acc_ref.
    _, state = method.apply(to_rollouts(make_batch([[1, 0]], 10)), state, 1)
    assert bool(state.has_ref) and float(state.acc_ref) == 0.5
    restored = checkpoint_roundtrip(state, tmp_path)
    assert isinstance(restored, AdaptiveLambdaState)
    assert_trees_equal(restored, state)


@pytest.mark.parametrize(
    "hparams", [dict(lam0=-0.1), dict(eta=-1.0), dict(acc_ref=1.5), dict(acc_ref=-0.1)]
)
def test_bad_hyperparameters(hparams):
    with pytest.raises(ValueError):
        penalties.get("adaptive_lambda", num_samples=G, **hparams)
