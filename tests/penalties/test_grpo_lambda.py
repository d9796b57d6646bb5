import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties
from lenrl.penalties.grpo_lambda import grpo_lambda_groups

from ._helpers import SETTINGS, G, batches, make_batch, reference_kimi_len_r, to_rollouts


def reference_groups(correct, valid, lam, p_min):
    rates = {}
    for i in range(correct.shape[0]):
        scores = [float(c) for c, v in zip(correct[i], valid[i], strict=True) if v]
        if scores:
            rates[i] = sum(scores) / len(scores)
    ranked = sorted(rates, key=lambda i: (-rates[i], i))
    top = ranked[: math.ceil(lam * len(rates))]
    return {i for i in top if rates[i] >= p_min}


@given(
    batch=batches(),
    lam=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
    p_min=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
)
@SETTINGS
def test_matches_reference(batch, lam, p_min):
    rollouts = to_rollouts(batch)
    selected = grpo_lambda_groups(rollouts.correct, rollouts.valid, lam, p_min)
    expected = reference_groups(batch["correct"], batch["valid"], lam, p_min)
    assert set(np.flatnonzero(selected)) == expected
    method = penalties.get("grpo_lambda", num_samples=G, lam=lam, p_min=p_min, w=0.5)
    reward, _ = method.apply(rollouts, (), 0)
    len_r = reference_kimi_len_r(batch["length"], batch["correct"], batch["valid"])
    chosen = np.isin(np.arange(len(batch["correct"])), list(expected))[:, None]
    expected_reward = np.where(
        batch["valid"], batch["correct"] + np.where(chosen, 0.5 * len_r, 0.0), 0.0
    )
    np.testing.assert_allclose(reward, expected_reward, atol=1e-6)


def test_hand_example():
    # Solve rates p = [1.0, 0.5, 0.75, 0.25]; lam = 0.5 -> ceil(0.5 * 4) = 2 groups: the top two are
    # group 0 (p = 1) and group 2 (p = 0.75), both >= p_min = 0.5. Group 0 has lengths 100 / 300 and
    # gets the Kimi term: r = 1 + 0.5 = 1.5 and 1 - 0.5 = 0.5. Group 2 (all lengths 200) gets 0.
    # Groups 1 and 3 keep r = correct even though their lengths differ.
    correct = [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]]
    length = [[100, 300, 100, 300], [100, 300, 100, 300], [200] * 4, [100, 300, 100, 300]]
    batch = to_rollouts(make_batch(correct, length))
    assert list(np.flatnonzero(grpo_lambda_groups(batch.correct, batch.valid, 0.5, 0.5))) == [0, 2]
    reward, _ = penalties.get("grpo_lambda", num_samples=4).apply(batch, (), 0)
    expected = np.asarray(correct, np.float32)
    expected[0] = [1.5, 0.5, 1.5, 0.5]
    np.testing.assert_allclose(reward, expected, atol=1e-6)


def test_ties_by_index_and_invalid_groups_not_counted():
    # All p = 0.5 -> ties broken by index: lam = 0.5 of 4 -> groups 0 and 1.
    correct = jnp.asarray([[1.0, 0.0]] * 4)
    valid = jnp.ones((4, 2), bool)
    assert list(np.flatnonzero(grpo_lambda_groups(correct, valid, 0.5, 0.5))) == [0, 1]
    # Group 0 is padding: 3 valid groups, ceil(0.5 * 3) = 2 -> groups 1 and 2.
    valid = valid.at[0].set(False)
    assert list(np.flatnonzero(grpo_lambda_groups(correct, valid, 0.5, 0.5))) == [1, 2]


@pytest.mark.parametrize("hparams", [dict(lam=0.0), dict(lam=1.5), dict(p_min=2.0), dict(w=-1.0)])
def test_bad_hyperparameters(hparams):
    with pytest.raises(ValueError):
        penalties.get("grpo_lambda", num_samples=G, **hparams)
