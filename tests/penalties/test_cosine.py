import math

import numpy as np
import pytest
from hypothesis import given

from lenrl import penalties

from ._helpers import (
    SETTINGS,
    G,
    assert_shorter_correct_not_worse,
    batches,
    make_batch,
    to_rollouts,
)


def reference(batch, r0_c=2.0, rl_c=1.0, r0_w=-10.0, rl_w=0.0, r_exceed=-10.0, margin=16):
    out = np.zeros(batch["correct"].shape)
    for i, g in np.ndindex(out.shape):
        if not batch["valid"][i, g]:
            continue
        length, l_max = int(batch["length"][i, g]), max(int(batch["budget"][i, g]), 1)
        if length + margin >= l_max:
            out[i, g] = r_exceed
            continue
        r0, rl = (r0_c, rl_c) if batch["correct"][i, g] >= 0.5 else (r0_w, rl_w)
        out[i, g] = rl + 0.5 * (r0 - rl) * (1 + math.cos(math.pi * length / l_max))
    return out


@given(batch=batches(soft_correct=True))
@SETTINGS
def test_matches_reference(batch):
    reward, _ = penalties.get("cosine", num_samples=G).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, reference(batch), rtol=1e-5, atol=1e-5)
    hparams = dict(r0_c=1.0, rL_c=0.5, r0_w=-1.0, rL_w=-0.5, r_exceed=-2.0, margin=4)
    reward, _ = penalties.get("cosine", num_samples=G, **hparams).apply(to_rollouts(batch), (), 0)
    expected = reference(batch, 1.0, 0.5, -1.0, -0.5, -2.0, 4)
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-5)


@given(batch=batches())
@SETTINGS
def test_shorter_correct_never_worse(batch):
    reward, _ = penalties.get("cosine", num_samples=G).apply(to_rollouts(batch), (), 0)
    assert_shorter_correct_not_worse(batch, reward)


def test_hand_example():
    # L_max = 4000, margin = 16. Correct: L = 0 -> 1 + 0.5 * 1 * 2 = 2; L = 2000 -> 1 + 0.5 * (1 +
    # cos(pi/2)) = 1.5. Wrong: L = 2000 -> 0 + 0.5 * (-10) * 1 = -5. L = 3990: 3990 + 16 >= 4000 ->
    # r_exceed = -10, correct or not.
    batch = make_batch([[1, 1, 0, 1, 0]], [[0, 2000, 2000, 3990, 3990]], budget=4000)
    reward, _ = penalties.get("cosine", num_samples=5).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, [[2.0, 1.5, -5.0, -10.0, -10.0]], atol=1e-5)


@pytest.mark.parametrize("hparams", [dict(margin=-1), dict(r0_c="2"), dict(margin=1.5)])
def test_bad_hyperparameters(hparams):
    with pytest.raises(ValueError):
        penalties.get("cosine", num_samples=G, **hparams)
