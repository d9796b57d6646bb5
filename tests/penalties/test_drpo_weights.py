import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties
from lenrl.penalties.drpo_weights import drpo_weights

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


def reference(length, correct, valid, l_max, lam):
    out = np.zeros(length.shape)
    for i in range(length.shape[0]):
        pos = [g for g in range(length.shape[1]) if valid[i, g] and correct[i, g] >= 0.5]
        logits = {g: (1 - length[i, g] / l_max[i, g]) / lam for g in pos}
        top = max(logits.values(), default=0.0)
        total = sum(math.exp(x - top) for x in logits.values())
        for g in pos:
            out[i, g] = math.exp(logits[g] - top) / total
    return out


BATCHED = jax.jit(jax.vmap(drpo_weights, in_axes=(0, 0, 0, 0, None)))


@given(batch=batches(soft_correct=True), lam=st.sampled_from([1e-3, 0.05, 0.1, 1.0]))
@SETTINGS
def test_matches_reference(batch, lam):
    r = to_rollouts(batch)
    weights = drpo_weights(r.length, r.correct, r.valid, r.budget, lam)
    expected = reference(batch["length"], batch["correct"], batch["valid"], batch["budget"], lam)
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)
    assert np.all(np.isfinite(weights))
    sums = np.asarray(weights).sum(-1)
    has_positive = (batch["valid"] & (batch["correct"] >= 0.5)).any(-1)
    np.testing.assert_allclose(sums, np.where(has_positive, 1.0, 0.0), atol=1e-5)
    # Under vmap over a leading axis and jit.
    stack = [jnp.stack([x, x[::-1]]) for x in (r.length, r.correct, r.valid, r.budget)]
    batched = BATCHED(*stack, lam)
    np.testing.assert_allclose(batched[0], weights, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(batched[1], weights[::-1], rtol=1e-5, atol=1e-7)


def test_hand_example():
    # L_max = 4000, lam = 0.1, correct = [1, 1, 0, 1], L = [1000, 2000, 3000, 4000].
    # logits over the positives: (1 - 0.25) / 0.1 = 7.5, (1 - 0.5) / 0.1 = 5, (1 - 1) / 0.1 = 0.
    # e^7.5 = 1808.042, e^5 = 148.413, e^0 = 1; sum = 1957.455 ->
    # w = [0.923671, 0.075820, 0, 0.000511]. The second group has no positive: all 0.
    batch = to_rollouts(make_batch([[1, 1, 0, 1], [0, 0, 0, 0]], [[1000, 2000, 3000, 4000]] * 2))
    weights = drpo_weights(batch.length, batch.correct, batch.valid, 4000.0)
    expected = [[0.923671, 0.075820, 0.0, 0.000511], [0.0] * 4]
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)


def test_method_reward_is_correct_and_checks_lam():
    batch = make_batch([[1, 0, 1]], [[10, 20, 30]])
    reward, _ = penalties.get("drpo_weights", num_samples=3).apply(to_rollouts(batch), (), 0)
    np.testing.assert_array_equal(reward, [[1.0, 0.0, 1.0]])
    for lam in (0.0, -0.1):
        with pytest.raises(ValueError, match="lam"):
            penalties.get("drpo_weights", num_samples=G, lam=lam)
