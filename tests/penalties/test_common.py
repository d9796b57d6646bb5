"""Properties every registered method shares: jit, vmap, budgets, and invalid samples."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from lenrl import penalties

from ._helpers import (
    NUM_PROMPTS,
    SETTINGS,
    G,
    P,
    assert_trees_equal,
    batches,
    make_batch,
    scramble_invalid,
    to_rollouts,
)

# Hyperparameters that make each method non-trivial on the small random batches (budgets <= 64).
HPARAMS = {
    "dapo_overlong": dict(l_cache=16),
    "adaptive_lambda": dict(lam0=0.3),
    "grpo_lambda": dict(p_min=0.25),
    "hbpo": dict(subgroup_budgets=(16, 32)),
    "l1_exact": dict(alpha=0.01),
    "l1_max": dict(alpha=0.01),
}
NAMES = sorted(penalties.REGISTRY)
FEW = settings(SETTINGS, max_examples=8)


@functools.cache
def method(name):
    return penalties.get(name, num_samples=G, **HPARAMS.get(name, {}))


@functools.cache
def jitted(name):
    return jax.jit(method(name).apply), jax.jit(method(name).budgets)


@functools.cache
def vmapped(name):
    return jax.jit(jax.vmap(method(name).apply, in_axes=(0, 0, None)))


def warm_state(name, rollouts):
    """The method's state after one step on `rollouts`, so stateful methods have history."""
    return jitted(name)[0](rollouts, method(name).init(NUM_PROMPTS), 0)[1]


@pytest.mark.parametrize("name", NAMES)
@given(batch=batches())
@FEW
def test_jit_matches_eager(name, batch):
    rollouts = to_rollouts(batch)
    state = warm_state(name, rollouts)
    apply, budgets = jitted(name)
    reward, new_state = method(name).apply(rollouts, state, 3)
    jit_reward, jit_state = apply(rollouts, state, jnp.int32(3))
    np.testing.assert_allclose(jit_reward, reward, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), jit_state, new_state)
    eager = method(name).budgets(state, rollouts.prompt_index, 3, 48)
    traced = budgets(state, rollouts.prompt_index, jnp.int32(3), jnp.int32(48))
    assert_trees_equal(traced, eager)


@pytest.mark.parametrize("name", NAMES)
def test_budgets_shape_and_traced_base_budget(name):
    m = method(name)
    prompt_index = jnp.arange(P, dtype=jnp.int32)
    budget, target = jitted(name)[1](m.init(NUM_PROMPTS), prompt_index, jnp.int32(7), 99.6)
    assert budget.shape == target.shape == (P, G)
    assert budget.dtype == target.dtype == jnp.int32
    if name != "hbpo":
        assert np.all(np.asarray(budget) == 100)  # An unseen prompt gets the rounded base budget.
    if name not in ("hbpo", "l1_exact", "l1_max"):
        assert np.all(np.asarray(target) == 0)


@pytest.mark.parametrize("name", NAMES)
@given(batch=batches())
@FEW
def test_vmap_over_leading_axis(name, batch):
    m = method(name)
    stacked_batches = [batch, scramble_invalid(batch, 1), {**batch, "valid": ~batch["valid"]}]
    rollouts = [to_rollouts(b) for b in stacked_batches]
    states = [warm_state(name, r) for r in rollouts]
    stack = functools.partial(jax.tree.map, lambda *xs: jnp.stack(xs))
    rewards, new_states = vmapped(name)(stack(*rollouts), stack(*states), 3)
    for k, (r, s) in enumerate(zip(rollouts, states, strict=True)):
        reward, state = m.apply(r, s, 3)
        np.testing.assert_allclose(rewards[k], reward, rtol=1e-5, atol=1e-6)
        jax.tree.map(
            lambda a, b, k=k: np.testing.assert_allclose(a[k], b, rtol=1e-5), new_states, state
        )


@pytest.mark.parametrize("name", NAMES)
@given(batch=batches())
@FEW
def test_invalid_samples_change_nothing(name, batch):
    """Scrambling invalid entries changes no valid reward and no state; invalid rewards are 0."""
    apply = jitted(name)[0]
    rollouts, scrambled = to_rollouts(batch), to_rollouts(scramble_invalid(batch))
    state = warm_state(name, rollouts)
    reward, new_state = apply(rollouts, state, 5)
    reward2, new_state2 = apply(scrambled, state, 5)
    valid = batch["valid"]
    np.testing.assert_array_equal(np.asarray(reward)[~valid], 0.0)
    np.testing.assert_array_equal(np.asarray(reward2)[~valid], 0.0)
    np.testing.assert_allclose(np.asarray(reward2)[valid], np.asarray(reward)[valid], rtol=1e-6)
    assert_trees_equal(new_state2, new_state)


@pytest.mark.parametrize("name", NAMES)
def test_all_invalid_batch_keeps_initial_state(name):
    m = method(name)
    batch = scramble_invalid(make_batch(np.ones((P, G)), 10, valid=False))
    state = m.init(NUM_PROMPTS)
    reward, new_state = m.apply(to_rollouts(batch), state, 0)
    np.testing.assert_array_equal(reward, 0.0)
    assert_trees_equal(new_state, state)
