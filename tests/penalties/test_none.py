import numpy as np
from hypothesis import given

from lenrl import penalties

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


@given(batch=batches(soft_correct=True))
@SETTINGS
def test_reward_is_correct_on_valid_samples(batch):
    reward, state = penalties.get("none", num_samples=G).apply(to_rollouts(batch), (), 0)
    expected = np.where(batch["valid"], batch["correct"], 0.0)
    np.testing.assert_array_equal(reward, expected)
    assert state == ()


def test_hand_example():
    # r = correct whatever the length or truncation; the padded sample gets 0.
    batch = make_batch([[1.0, 0.0, 1.0]], [[10, 4000, 4000]], valid=[[True, True, False]])
    reward, _ = penalties.get("none", num_samples=3).apply(to_rollouts(batch), (), 0)
    np.testing.assert_array_equal(reward, [[1.0, 0.0, 0.0]])
