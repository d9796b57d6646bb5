import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties
from lenrl.penalties.hapo import HapoState, hapo_length_reward

from ._helpers import (
    NUM_PROMPTS,
    SETTINGS,
    G,
    assert_shorter_correct_not_worse,
    assert_trees_equal,
    batches,
    checkpoint_roundtrip,
    make_batch,
    to_rollouts,
)

histories = st.lists(
    st.one_of(st.just(math.nan), st.integers(1, 64).map(float)),
    min_size=NUM_PROMPTS,
    max_size=NUM_PROMPTS,
)


def reference_len_r(length, correct, h):
    if math.isnan(h):
        return 0.0
    c = math.cos(math.pi / 2 * length / h) if length < 2 * h else -1.0
    return max(-0.7, c) if correct >= 0.5 else min(0.0, c)


def reference_update(h, count, batch, mode):
    """Pool each prompt's correct valid lengths in the batch, then fold them into (h, count)."""
    h, count = list(h), list(count)
    pooled = {}
    for row, i in enumerate(batch["prompt_index"]):
        for g in range(batch["correct"].shape[1]):
            if batch["valid"][row, g] and batch["correct"][row, g] >= 0.5:
                pooled.setdefault(int(i), []).append(int(batch["length"][row, g]))
    for i, lens in pooled.items():
        if mode == "min":
            h[i] = min(lens) if math.isnan(h[i]) else min(h[i], min(lens))
        else:
            old = 0.0 if count[i] == 0 else h[i] * count[i]
            h[i] = (old + sum(lens)) / (count[i] + len(lens))
        count[i] += len(lens)
    return h, count


@given(
    batch=batches(soft_correct=True),
    h=histories,
    mode=st.sampled_from(["min", "mean"]),
    w=st.floats(0.0, 2.0),
)
@SETTINGS
def test_matches_reference(batch, h, mode, w):
    count = [0 if math.isnan(x) else 3 for x in h]
    state = HapoState(jnp.asarray(h, jnp.float32), jnp.asarray(count, jnp.int32))
    method = penalties.get("hapo", num_samples=G, w=w, mode=mode)
    reward, new_state = method.apply(to_rollouts(batch), state, 0)
    expected = np.zeros(batch["correct"].shape)
    for i, g in np.ndindex(expected.shape):
        if batch["valid"][i, g]:
            old_h = h[batch["prompt_index"][i]]  # Scored with the old state.
            c = batch["correct"][i, g]
            expected[i, g] = c + w * reference_len_r(int(batch["length"][i, g]), c, old_h)
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-5)
    h_ref, count_ref = reference_update(h, count, batch, mode)
    np.testing.assert_allclose(new_state.h, h_ref, rtol=1e-6)  # NaN matches NaN.
    np.testing.assert_array_equal(new_state.count, count_ref)


@given(batch=batches(), h=histories)
@SETTINGS
def test_invariants(batch, h):
    rollouts = to_rollouts(batch)
    h_groups = jnp.asarray(h, jnp.float32)[rollouts.prompt_index][:, None]
    len_r = np.asarray(hapo_length_reward(rollouts.length, rollouts.correct, h_groups))
    assert np.all(len_r[batch["correct"] < 0.5] <= 0.0)  # A wrong answer never gains by length.
    assert np.all(len_r >= -1.0) and np.all(len_r <= 1.0)
    state = HapoState(jnp.asarray(h, jnp.float32), jnp.zeros(NUM_PROMPTS, jnp.int32))
    reward, _ = penalties.get("hapo", num_samples=G).apply(rollouts, state, 0)
    assert_shorter_correct_not_worse(batch, reward)


def test_hand_example_reward():
    # h = 1000, w = 1. Correct answers:
    #   L = 500 -> cos(pi/4) = 0.7071 -> r = 1.7071;  L = 1000 -> cos(pi/2) = 0 -> r = 1;
    #   L = 1500 -> cos(3pi/4) = -0.7071, floored at -0.7 -> r = 0.3;
    #   L = 2500 >= 2h -> c = -1, floored at -0.7 -> r = 0.3.
    # Wrong answers: L = 500 -> min(0, 0.7071) = 0; L = 1500 -> -0.7071; L = 2500 -> -1.
    # Prompt 1 has no history (NaN): r = correct.
    batch = make_batch(
        [[1, 1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 0, 1]],
        [[500, 1000, 1500, 2500, 500, 1500, 2500], [500] * 7],
    )
    state = HapoState(jnp.asarray([1000.0, jnp.nan]), jnp.asarray([1, 0], jnp.int32))
    reward, _ = penalties.get("hapo", num_samples=7).apply(to_rollouts(batch), state, 0)
    s = math.sqrt(0.5)
    expected = [[1 + s, 1.0, 0.3, 0.3, 0.0, -s, -1.0], [1, 0, 1, 0, 1, 0, 1]]
    np.testing.assert_allclose(reward, expected, atol=1e-6)


def test_hand_example_update_uses_old_state_then_min_and_mean():
    # Step 1: no history, so every length reward is 0 (old state) although the batch sets h.
    #   min mode: correct lengths 800 and 600 (the wrong 300 does not count) -> h = 600.
    #   mean mode: (800 + 600) / 2 = 700, count 2.
    # Step 2: one correct answer of 1000 tokens.
    #   min mode: min(600, 1000) = 600.  mean mode: (700 * 2 + 1000) / 3 = 800.
    first = to_rollouts(make_batch([[1, 1, 0]], [[800, 600, 300]]))
    second = to_rollouts(make_batch([[1, 0, 0]], [[1000, 10, 10]]))
    for mode, h1, h2 in (("min", 600.0, 600.0), ("mean", 700.0, 800.0)):
        method = penalties.get("hapo", num_samples=3, mode=mode)
        apply = jax.jit(method.apply)
        state = method.init(1)
        reward, state = apply(first, state, 0)
        np.testing.assert_array_equal(reward, [[1.0, 1.0, 0.0]])
        assert float(state.h[0]) == h1
        _, state = apply(second, state, 1)
        np.testing.assert_allclose(state.h, [h2])
        np.testing.assert_array_equal(state.count, [3])


def test_duplicate_prompts_pool_and_unseen_prompts_keep_initial_state(tmp_path):
    # Prompt 2 appears twice in the batch: min mode takes the min over both groups (300),
    # mean mode the mean of all four correct lengths (400). Prompts 0, 1, 3 are never seen.
    batch = make_batch([[1, 1], [1, 1]], [[300, 500], [400, 400]], prompt_index=[2, 2])
    for mode, expected in (("min", 300.0), ("mean", 400.0)):
        method = penalties.get("hapo", num_samples=2, mode=mode)
        state = method.init(4)
        _, state = method.apply(to_rollouts(batch), state, 0)
        np.testing.assert_array_equal(state.h, [np.nan, np.nan, expected, np.nan])
        np.testing.assert_array_equal(state.count, [0, 0, 4, 0])
        restored = checkpoint_roundtrip(state, tmp_path / mode)
        assert isinstance(restored, HapoState)
        assert_trees_equal(restored, state)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="mode"):
        penalties.get("hapo", num_samples=G, mode="max")
    with pytest.raises(ValueError, match="w"):
        penalties.get("hapo", num_samples=G, w=-1.0)
