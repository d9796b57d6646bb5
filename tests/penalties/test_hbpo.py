import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties
from lenrl.penalties.hbpo import hbpo_targets

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


@given(batch=batches(soft_correct=True), beta=st.floats(0.0, 2.0))
@SETTINGS
def test_matches_reference(batch, beta):
    batch["target"] = np.maximum(batch["target"], 1)
    reward, _ = penalties.get("hbpo", num_samples=G, beta=beta).apply(to_rollouts(batch), (), 0)
    expected = np.zeros(batch["correct"].shape)
    for i, g in np.ndindex(expected.shape):
        if batch["valid"][i, g] and batch["correct"][i, g] >= 0.5:
            b, length = int(batch["target"][i, g]), int(batch["length"][i, g])
            expected[i, g] = 1.0 if length <= b else max(0.0, 1 - beta * (length - b) / b)
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-6)


def test_hand_example_reward():
    # beta = 1, b = 512: correct L = 400 -> 1; L = 768 -> 1 - 256 / 512 = 0.5; L = 1100 ->
    # max(0, 1 - 588 / 512) = 0; wrong L = 100 -> 0. b = 2560, correct L = 3072 -> 1 - 0.2 = 0.8.
    batch = make_batch(
        [[1, 1, 1, 0, 1]], [[400, 768, 1100, 100, 3072]], target=[[512, 512, 512, 512, 2560]]
    )
    reward, _ = penalties.get("hbpo", num_samples=5, subgroup_budgets=(512,)).apply(
        to_rollouts(batch), (), 0
    )
    np.testing.assert_allclose(reward, [[1.0, 0.5, 0.0, 0.0, 0.8]], rtol=1e-6)


def test_budgets_split_the_group():
    # G = 8, K = 4: two samples per budget; the sampler cap is max(b_k) + margin = 2560 + 512.
    expected_targets = [512, 512, 1024, 1024, 2048, 2048, 2560, 2560]
    np.testing.assert_array_equal(hbpo_targets(8, (512, 1024, 2048, 2560)), expected_targets)
    method = penalties.get("hbpo", num_samples=8)
    budget, target = jax.jit(method.budgets)((), jnp.arange(3), jnp.int32(0), jnp.int32(4000))
    np.testing.assert_array_equal(budget, 3072)
    np.testing.assert_array_equal(target, [expected_targets] * 3)


@pytest.mark.parametrize(
    "hparams",
    [
        dict(num_samples=6),  # Not divisible by K = 4.
        dict(subgroup_budgets=()),
        dict(subgroup_budgets=(512, -1)),
        dict(margin=-1),
        dict(beta=-1.0),
    ],
)
def test_bad_hyperparameters(hparams):
    with pytest.raises(ValueError):
        penalties.get("hbpo", **{"num_samples": 8, **hparams})


def test_divisibility_error_is_clear():
    with pytest.raises(ValueError, match="divisible by the number of HBPO subgroups"):
        penalties.get("hbpo", num_samples=6)
