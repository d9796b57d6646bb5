import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from lenrl import penalties

from ._helpers import (
    NUM_PROMPTS,
    SETTINGS,
    G,
    assert_trees_equal,
    batches,
    checkpoint_roundtrip,
    make_batch,
    to_rollouts,
)

KIMI = penalties.get("kimi", num_samples=G)
ALP = penalties.get("alp", num_samples=G, beta=0.5)
HAPO = penalties.get("hapo", num_samples=G)
COMPOSED = penalties.compose([(KIMI, 0.5), (ALP, 2.0), (HAPO, 1.0)], format_weight=0.1)
COMPOSED_APPLY = jax.jit(COMPOSED.apply)


@given(batch=batches(soft_correct=True))
@SETTINGS
def test_weighted_sum_of_length_terms(batch):
    rollouts = to_rollouts(batch)
    state = COMPOSED.init(NUM_PROMPTS)
    state = COMPOSED.apply(rollouts, state, 0)[1]  # Give HAPO a history.
    reward, new_state = COMPOSED_APPLY(rollouts, state, jnp.int32(1))
    correct = np.where(batch["valid"], batch["correct"], 0.0)
    r_kimi, _ = KIMI.apply(rollouts, (), 1)
    r_alp, _ = ALP.apply(rollouts, (), 1)
    r_hapo, hapo_state = HAPO.apply(rollouts, state["hapo"], 1)
    format_bonus = np.where(batch["valid"], 0.1 * batch["format_ok"], 0.0)
    expected = (
        correct
        + 0.5 * (np.asarray(r_kimi) - correct)
        + 2.0 * (np.asarray(r_alp) - correct)
        + 1.0 * (np.asarray(r_hapo) - correct)
        + format_bonus
    )
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-5)
    assert set(new_state) == {"kimi", "alp", "hapo"}
    assert new_state["kimi"] == () and new_state["alp"] == ()
    jax.tree.map(np.testing.assert_array_equal, new_state["hapo"], hapo_state)


@pytest.mark.parametrize("name", sorted(penalties.REGISTRY))
def test_single_method_with_weight_one_is_the_method(name):
    hparams = {"subgroup_budgets": (16, 32)} if name == "hbpo" else {}
    method = penalties.get(name, num_samples=4, **hparams)
    composed = penalties.compose([(method, 1.0)])
    batch = to_rollouts(
        make_batch(
            [[1, 0, 1, 1], [0, 0, 1, 0]],
            [[10, 20, 30, 64], [5, 50, 40, 20]],
            budget=64,
            target=[[16, 16, 32, 32]] * 2,
            format_ok=[[1, 0, 1, 1], [1, 1, 0, 1]],
            valid=[[True, True, True, False], [True] * 4],
        )
    )
    state = method.init(3)
    reward, new_state = method.apply(batch, state, 2)
    reward_c, new_state_c = composed.apply(batch, composed.init(3), 2)
    np.testing.assert_allclose(reward_c, reward, rtol=1e-6, atol=1e-6)
    assert_trees_equal(new_state_c, {name: new_state})
    index = jnp.arange(2)
    assert_trees_equal(
        composed.budgets(composed.init(3), index, 2, 64), method.budgets(state, index, 2, 64)
    )


def test_hand_example():
    # kimi (w = 1) at weight 0.5 plus truncation (kappa = 0.1) at weight 1, format_weight 0.2.
    # Lengths 100 / 300, both correct, the second truncated, both well formatted:
    #   kimi length terms: +0.5, -0.5; truncation length terms: 0, (0.1 - 1) * 1 = -0.9.
    #   r = 1 + 0.5 * 0.5 + 0 + 0.2 = 1.45;  r = 1 - 0.25 - 0.9 + 0.2 = 0.05.
    kimi = penalties.get("kimi", num_samples=2)
    truncation = penalties.get("truncation", num_samples=2)
    composed = penalties.compose([(kimi, 0.5), (truncation, 1.0)], format_weight=0.2)
    assert composed.name == "kimi+truncation"
    batch = make_batch([[1, 1]], [[100, 300]], budget=300)
    reward, state = composed.apply(to_rollouts(batch), composed.init(1), 0)
    np.testing.assert_allclose(reward, [[1.45, 0.05]], rtol=1e-6)
    assert state == {"kimi": (), "truncation": ()}


def test_budgets_take_the_tightest_cap_and_the_target():
    # difficulty_aware_truncation caps a solved prompt at 4000 * 0.5 = 2000; l1_max writes targets.
    dat = penalties.get("difficulty_aware_truncation", num_samples=2)
    l1 = penalties.get("l1_max", num_samples=2)
    composed = penalties.compose([(dat, 1.0), (l1, 1.0)])
    state = composed.init(2)
    state["difficulty_aware_truncation"] = state["difficulty_aware_truncation"]._replace(
        solve_ema=jnp.asarray([1.0, 0.0])
    )
    index = jnp.asarray([0, 1])
    budget, target = jax.jit(composed.budgets)(state, index, jnp.int32(3), jnp.int32(4000))
    np.testing.assert_array_equal(budget, [[2000, 2000], [4000, 4000]])
    np.testing.assert_array_equal(target, l1.budgets((), index, 3, 4000)[1])


def test_weight_schedules_and_checkpoint(tmp_path):
    composed = penalties.compose(
        [(penalties.get("kimi", num_samples=2), lambda step: jnp.where(step < 3, 0.0, 1.0))],
        format_weight=lambda step: 0.5,
    )
    batch = to_rollouts(make_batch([[1, 1]], [[100, 300]], format_ok=0.0))
    apply = jax.jit(composed.apply)
    np.testing.assert_allclose(apply(batch, composed.init(1), jnp.int32(0))[0], [[1.0, 1.0]])
    np.testing.assert_allclose(apply(batch, composed.init(1), jnp.int32(3))[0], [[1.5, 0.5]])
    hapo = penalties.compose([(penalties.get("hapo", num_samples=2), 1.0)])
    _, state = hapo.apply(batch, hapo.init(3), 0)
    assert_trees_equal(checkpoint_roundtrip(state, tmp_path), state)


def test_format_weight_via_get():
    batch = to_rollouts(make_batch([[1, 0, 1]], [[10, 20, 30]], format_ok=[[1, 1, 0]]))
    reward, state = penalties.get("hapo", num_samples=3, format_weight=0.25).apply(
        batch, penalties.get("hapo", num_samples=3).init(1), 0
    )
    np.testing.assert_allclose(reward, [[1.25, 0.25, 1.0]])
    assert type(state).__name__ == "HapoState"  # The method's own state, not a dict.


def test_bad_compositions():
    kimi = penalties.get("kimi", num_samples=2)
    with pytest.raises(ValueError, match="at least one"):
        penalties.compose([])
    with pytest.raises(ValueError, match="distinct"):
        penalties.compose([(kimi, 1.0), (kimi, 0.5)])
    with pytest.raises(ValueError, match="num_samples"):
        penalties.compose([(kimi, 1.0), (penalties.get("alp", num_samples=4), 1.0)])
    with pytest.raises(ValueError, match="pairs"):
        penalties.compose([kimi])
    with pytest.raises(ValueError, match="weight of kimi"):
        penalties.compose([(kimi, "heavy")])
    with pytest.raises(ValueError, match="format_weight"):
        penalties.compose([(kimi, 1.0)], format_weight=None)
