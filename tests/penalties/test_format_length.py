import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


@given(batch=batches(), w=st.floats(0.0, 2.0))
@SETTINGS
def test_matches_reference(batch, w):
    reward, _ = penalties.get("format_length", num_samples=G, w=w).apply(to_rollouts(batch), (), 0)
    expected = np.zeros(batch["correct"].shape)
    for i, g in np.ndindex(expected.shape):
        if batch["valid"][i, g]:
            share = int(batch["length"][i, g]) / max(int(batch["budget"][i, g]), 1)
            expected[i, g] = batch["format_ok"][i, g] * (1 + w * (1 - share))
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-6)


def test_hand_example():
    # L_max = 1000, w = 0.5: format ok at L = 200 -> 1 + 0.5 * 0.8 = 1.4; at L = 1000 -> 1;
    # bad format -> 0 whatever the correctness.
    batch = make_batch([[0, 1, 1]], [[200, 1000, 200]], budget=1000, format_ok=[[1, 1, 0]])
    reward, _ = penalties.get("format_length", num_samples=3).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, [[1.4, 1.0, 0.0]], rtol=1e-6)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="w"):
        penalties.get("format_length", num_samples=G, w=-1.0)
