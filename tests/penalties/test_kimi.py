import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties
from lenrl.penalties.kimi import kimi_length_reward

from ._helpers import (
    SETTINGS,
    G,
    assert_shorter_correct_not_worse,
    batches,
    make_batch,
    reference_kimi_len_r,
    to_rollouts,
)


@given(batch=batches(soft_correct=True), w=st.floats(0.0, 2.0))
@SETTINGS
def test_matches_reference(batch, w):
    len_r = reference_kimi_len_r(batch["length"], batch["correct"], batch["valid"])
    np.testing.assert_allclose(
        kimi_length_reward(
            jnp.asarray(batch["length"]), jnp.asarray(batch["correct"]), jnp.asarray(batch["valid"])
        ),
        len_r,
        atol=1e-6,
    )
    reward, _ = penalties.get("kimi", num_samples=G, w=w).apply(to_rollouts(batch), (), 0)
    expected = np.where(batch["valid"], batch["correct"] + w * len_r, 0.0)
    np.testing.assert_allclose(reward, expected, atol=1e-5)


@given(batch=batches())
@SETTINGS
def test_invariants(batch):
    rollouts = to_rollouts(batch)
    len_r = np.asarray(kimi_length_reward(rollouts.length, rollouts.correct, rollouts.valid))
    assert np.all(len_r[batch["correct"] < 0.5] <= 0.0)  # A wrong answer never gains by length.
    reward, _ = penalties.get("kimi", num_samples=G).apply(rollouts, (), 0)
    assert_shorter_correct_not_worse(batch, reward)


def test_hand_example():
    # lo = 100, hi = 300: lam = 0.5 - (L - 100) / 200 = [0.5, 0, -0.5, 0.5].
    # correct, correct, wrong, wrong -> len_r = [0.5, 0, -0.5, min(0, 0.5) = 0];
    # w = 1: r = correct + len_r = [1.5, 1.0, -0.5, 0.0].
    # Second group: all lengths equal -> len_r = 0 -> r = correct.
    batch = make_batch([[1, 1, 0, 0], [1, 0, 1, 0]], [[100, 200, 300, 100], [50, 50, 50, 50]])
    reward, _ = penalties.get("kimi", num_samples=4).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, [[1.5, 1.0, -0.5, 0.0], [1, 0, 1, 0]], atol=1e-6)


def test_warmup_and_weight_schedule_under_jit():
    batch = to_rollouts(make_batch([[1, 1]], [[100, 300]]))
    apply = jax.jit(penalties.get("kimi", num_samples=2, w=0.5, warmup_steps=10).apply)
    np.testing.assert_allclose(apply(batch, (), jnp.int32(9))[0], [[1.0, 1.0]])
    np.testing.assert_allclose(apply(batch, (), jnp.int32(10))[0], [[1.25, 0.75]])
    scheduled = penalties.get("kimi", num_samples=2, w=lambda step: jnp.minimum(step / 100, 1.0))
    np.testing.assert_allclose(jax.jit(scheduled.apply)(batch, (), 50)[0], [[1.25, 0.75]])


BATCHED_LENGTH_REWARD = jax.jit(jax.vmap(kimi_length_reward))


@given(batch=batches())
@SETTINGS
def test_vmap_and_jit_of_length_reward(batch):
    length = jnp.stack([jnp.asarray(batch["length"]), jnp.asarray(batch["length"])[::-1]])
    correct = jnp.stack([jnp.asarray(batch["correct"])] * 2)
    valid = jnp.stack([jnp.asarray(batch["valid"]), ~jnp.asarray(batch["valid"])])
    batched = BATCHED_LENGTH_REWARD(length, correct, valid)
    for k in range(2):
        np.testing.assert_allclose(
            batched[k],
            reference_kimi_len_r(*map(np.asarray, (length[k], correct[k], valid[k]))),
            atol=1e-6,
        )
