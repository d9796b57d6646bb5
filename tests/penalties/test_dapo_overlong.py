import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


def reference(batch, l_cache, l_max=None):
    out = np.zeros(batch["correct"].shape)
    for i, g in np.ndindex(out.shape):
        if batch["valid"][i, g]:
            length = int(batch["length"][i, g])
            limit = max(int(batch["budget"][i, g]), 1) if l_max is None else l_max
            if length <= limit - l_cache:
                s = 0.0
            elif length <= limit:
                s = ((limit - l_cache) - length) / l_cache
            else:
                s = -1.0
            out[i, g] = batch["correct"][i, g] + s
    return out


@given(
    batch=batches(soft_correct=True),
    l_cache=st.integers(1, 16),
    l_max=st.sampled_from([None, 40, 64]),
)
@SETTINGS
def test_matches_reference(batch, l_cache, l_max):
    method = penalties.get("dapo_overlong", num_samples=G, l_cache=l_cache, l_max=l_max)
    reward, _ = method.apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, reference(batch, l_cache, l_max), rtol=1e-5, atol=1e-6)


def test_hand_example():
    # L_max = 20480, L_cache = 4096 (DAPO): the soft zone starts at 16384.
    #   L = 16000 -> s = 0 -> r = 1;  L = 18432 -> (16384 - 18432) / 4096 = -0.5 -> r = 0.5;
    #   L = 20480 -> -1 -> r = 0 (correct) and -1 (wrong).
    batch = make_batch([[1, 1, 1, 0]], [[16000, 18432, 20480, 20480]], budget=20480)
    reward, _ = penalties.get("dapo_overlong", num_samples=4).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, [[1.0, 0.5, 0.0, -1.0]], atol=1e-6)
    # With a fixed l_max below the budget, a longer answer gets -1.
    fixed = penalties.get("dapo_overlong", num_samples=4, l_max=20000)
    reward, _ = fixed.apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward[0, 2], 0.0)


@pytest.mark.parametrize("hparams", [dict(l_cache=0), dict(l_cache=4096, l_max=4000)])
def test_bad_hyperparameters(hparams):
    with pytest.raises(ValueError):
        penalties.get("dapo_overlong", num_samples=G, **hparams)
