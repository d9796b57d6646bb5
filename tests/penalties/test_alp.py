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


def reference(batch, beta):
    out = np.zeros(batch["correct"].shape)
    num_prompts, group_size = out.shape
    for i in range(num_prompts):
        scores = [batch["correct"][i, g] for g in range(group_size) if batch["valid"][i, g]]
        p = sum(scores) / len(scores) if scores else 0.0
        for g in range(group_size):
            if batch["valid"][i, g]:
                share = int(batch["length"][i, g]) / max(int(batch["budget"][i, g]), 1)
                out[i, g] = batch["correct"][i, g] - beta * max(p, 1 / group_size) * share
    return out


@given(batch=batches(soft_correct=True), beta=st.floats(0.0, 1.0))
@SETTINGS
def test_matches_reference(batch, beta):
    reward, _ = penalties.get("alp", num_samples=G, beta=beta).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, reference(batch, beta), rtol=1e-5, atol=1e-6)


@given(batch=batches())
@SETTINGS
def test_shorter_correct_never_worse(batch):
    reward, _ = penalties.get("alp", num_samples=G).apply(to_rollouts(batch), (), 0)
    assert_shorter_correct_not_worse(batch, reward)


def test_hand_example():
    # beta = 0.1, G = 4, L_max = 4000.
    # Group 0: p = 3/4; r = correct - 0.1 * 0.75 * L / 4000
    #   L = 1000, 2000, 3000 correct -> 1 - 0.01875, 1 - 0.0375, 1 - 0.05625;
    #   L = 4000 wrong -> -0.075.
    # Group 1: unsolved, p = 0 -> floor 1/4: L = 2000 -> -0.1 * 0.25 * 0.5 = -0.0125.
    batch = make_batch(
        [[1, 1, 1, 0], [0, 0, 0, 0]], [[1000, 2000, 3000, 4000], [2000] * 4], budget=4000
    )
    reward, _ = penalties.get("alp", num_samples=4).apply(to_rollouts(batch), (), 0)
    expected = [[0.98125, 0.9625, 0.94375, -0.075], [-0.0125] * 4]
    np.testing.assert_allclose(reward, expected, rtol=1e-5)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="beta"):
        penalties.get("alp", num_samples=G, beta=-0.1)
