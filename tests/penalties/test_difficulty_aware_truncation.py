import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties
from lenrl.penalties.difficulty_aware_truncation import DifficultyAwareTruncationState

from ._helpers import (
    NUM_PROMPTS,
    SETTINGS,
    G,
    P,
    assert_trees_equal,
    batches,
    checkpoint_roundtrip,
    make_batch,
    to_rollouts,
)

unit = st.floats(0.0, 1.0, width=32, allow_subnormal=False)
ema_arrays = st.lists(unit, min_size=NUM_PROMPTS, max_size=NUM_PROMPTS)


def reference_budgets(ema, prompt_index, l_max, delta, l_min):
    lo = l_max / 4 if l_min is None else l_min
    return [min(max(round(l_max * (1 - delta * ema[i])), round(lo)), l_max) for i in prompt_index]


def reference_update(ema, batch, rho):
    """One EMA step per prompt, pooling every valid sample of the prompt in the batch."""
    ema = list(ema)
    pooled = {}
    for row, i in enumerate(batch["prompt_index"]):
        for g in range(batch["correct"].shape[1]):
            if batch["valid"][row, g]:
                pooled.setdefault(int(i), []).append(float(batch["correct"][row, g]))
    for i, scores in pooled.items():
        ema[i] = (1 - rho) * ema[i] + rho * sum(scores) / len(scores)
    return ema


@given(
    batch=batches(soft_correct=True),
    ema=ema_arrays,
    delta=st.floats(0.0, 1.0),
    rho=st.floats(0.05, 1.0),
    l_min=st.sampled_from([None, 0, 20]),
)
@SETTINGS
def test_matches_reference(batch, ema, delta, rho, l_min):
    method = penalties.get(
        "difficulty_aware_truncation", num_samples=G, delta=delta, rho=rho, l_min=l_min
    )
    state = DifficultyAwareTruncationState(jnp.asarray(ema, jnp.float32))
    budget, target = method.budgets(state, jnp.asarray(batch["prompt_index"]), 0, 64)
    expected = reference_budgets(ema, batch["prompt_index"], 64, delta, l_min)
    # Rounding of values within float error of .5 may differ by one token.
    np.testing.assert_allclose(budget, np.repeat(np.asarray(expected)[:, None], G, 1), atol=1)
    np.testing.assert_array_equal(target, 0)
    reward, new_state = method.apply(to_rollouts(batch), state, 0)
    expected_reward = np.where(
        batch["valid"], np.where(batch["truncated"], 0.1, 1.0) * batch["correct"], 0.0
    )
    np.testing.assert_allclose(reward, expected_reward, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(new_state.solve_ema, reference_update(ema, batch, rho), atol=1e-6)


def test_hand_example_budgets():
    # L_max = 4000, delta = 0.5, L_min = 1000:
    #   ema 0 (unseen) -> 4000; ema 0.5 -> round(4000 * 0.75) = 3000; ema 1 -> 4000 * 0.5 = 2000.
    # With delta = 1 and ema 1 the raw budget is 0, clipped up to L_min = 4000 / 4 = 1000.
    state = DifficultyAwareTruncationState(jnp.asarray([0.0, 0.5, 1.0]))
    index = jnp.asarray([0, 1, 2])
    method = penalties.get("difficulty_aware_truncation", num_samples=2)
    budget, _ = jax.jit(method.budgets)(state, index, jnp.int32(0), jnp.int32(4000))
    np.testing.assert_array_equal(budget, [[4000, 4000], [3000, 3000], [2000, 2000]])
    strict = penalties.get("difficulty_aware_truncation", num_samples=2, delta=1.0)
    np.testing.assert_array_equal(
        strict.budgets(state, index, 0, 4000)[0][:, 0], [4000, 2000, 1000]
    )


def test_hand_example_update_and_duplicates():
    # rho = 0.5. Prompt 0 appears twice: 4/4 correct and 0/4 correct, pooled p = 4/8 = 0.5, so
    # ema = 0.5 * 0 + 0.5 * 0.5 = 0.25. Prompt 2 solves 3/4: ema = 0.5 * 0.5 + 0.5 * 0.75 = 0.625.
    # Prompts 1 and 3 are not in the batch and keep 0.5 and 0.
    batch = make_batch([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 0]], 100, prompt_index=[0, 0, 2])
    method = penalties.get("difficulty_aware_truncation", num_samples=4)
    state = DifficultyAwareTruncationState(jnp.asarray([0.0, 0.5, 0.5, 0.0]))
    _, new_state = method.apply(to_rollouts(batch), state, 0)
    np.testing.assert_allclose(new_state.solve_ema, [0.25, 0.5, 0.625, 0.0])


def test_unseen_prompt_keeps_initial_state_and_checkpoint_roundtrip(tmp_path):
    method = penalties.get("difficulty_aware_truncation", num_samples=G)
    batch = make_batch(np.ones((P, G)), 10, prompt_index=[0, 1, 1, 3])
    state = method.init(NUM_PROMPTS)
    _, state = method.apply(to_rollouts(batch), state, 0)
    assert np.all(np.asarray(state.solve_ema)[[2, 4, 5]] == 0.0)
    assert np.all(np.asarray(state.solve_ema)[[0, 1, 3]] == 0.5)
    restored = checkpoint_roundtrip(state, tmp_path)
    assert isinstance(restored, DifficultyAwareTruncationState)
    assert_trees_equal(restored, state)


@pytest.mark.parametrize(
    "hparams", [dict(delta=1.5), dict(delta=-0.1), dict(rho=0.0), dict(l_min=-1), dict(kappa=2.0)]
)
def test_bad_hyperparameters(hparams):
    with pytest.raises(ValueError):
        penalties.get("difficulty_aware_truncation", num_samples=G, **hparams)
