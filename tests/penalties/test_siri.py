import numpy as np
from hypothesis import given

from lenrl import penalties

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


@given(batch=batches(soft_correct=True))
@SETTINGS
def test_matches_reference(batch):
    reward, _ = penalties.get("siri", num_samples=G).apply(to_rollouts(batch), (), 0)
    expected = np.zeros_like(batch["correct"])
    for i, g in np.ndindex(expected.shape):
        if batch["valid"][i, g] and not batch["truncated"][i, g]:
            expected[i, g] = batch["correct"][i, g]
    np.testing.assert_array_equal(reward, expected)


def test_hand_example():
    # SIRI compression phase, L_low = 4096: correct at 4000 tokens -> 1; cut at 4096 -> 0.
    batch = make_batch([[1.0, 1.0, 0.0]], [[4000, 4096, 100]], budget=4096)
    reward, _ = penalties.get("siri", num_samples=3).apply(to_rollouts(batch), (), 0)
    np.testing.assert_array_equal(reward, [[1.0, 0.0, 0.0]])
