import numpy as np
from hypothesis import given

from lenrl import penalties

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


@given(batch=batches(soft_correct=True))
@SETTINGS
def test_matches_reference(batch):
    reward, _ = penalties.get("thinkprune", num_samples=G).apply(to_rollouts(batch), (), 0)
    expected = [
        [c if v and not t else 0.0 for c, v, t in zip(*row, strict=True)]
        for row in zip(batch["correct"], batch["valid"], batch["truncated"], strict=True)
    ]
    np.testing.assert_array_equal(reward, expected)


def test_hand_example():
    # ThinkPrune round limit 3000: stop at 2500 and correct -> 1; hit 3000 (truncated) -> 0.
    batch = make_batch([[1.0, 1.0]], [[2500, 3000]], budget=3000)
    reward, _ = penalties.get("thinkprune", num_samples=2).apply(to_rollouts(batch), (), 0)
    np.testing.assert_array_equal(reward, [[1.0, 0.0]])
