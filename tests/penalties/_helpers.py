"""Test helpers: random rollout batches (hypothesis), hand-made batches, checkpoint round-trips."""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lenrl.penalties.base import Rollouts

P, G = 4, 8  # Prompts and samples per prompt of the random batches (fixed: one jit compile).
NUM_PROMPTS = 6  # Size of the per-prompt state; 4 prompts drawn from 6 often repeat.
MAX_LEN = 64

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ints(shape, lo, hi):
    return hnp.arrays(np.int32, shape, elements=st.integers(lo, hi))


@st.composite
def batches(draw, soft_correct: bool = False, all_valid: bool = False) -> dict:
    """A random `[P, G]` batch as a dict of NumPy arrays (the fields of `Rollouts`).

    Budgets are constant within a group (16..64); lengths are clipped to the budget, and only a
    sample at its budget can be truncated. Correctness is binary unless `soft_correct`.
    """
    budget = np.repeat(draw(_ints((P, 1), 16, MAX_LEN)), G, axis=1)
    length = np.minimum(draw(_ints((P, G), 1, MAX_LEN)), budget)
    at_budget = length == budget
    truncated = at_budget & draw(hnp.arrays(np.bool_, (P, G)))
    if soft_correct:
        score = st.floats(0.0, 1.0, width=32, allow_subnormal=False)
    else:
        score = st.sampled_from([0.0, 1.0])
    correct = draw(hnp.arrays(np.float32, (P, G), elements=score))
    if all_valid:
        valid = np.ones((P, G), np.bool_)
    else:
        valid = draw(hnp.arrays(np.bool_, (P, G), elements=st.sampled_from([True, True, False])))
    return dict(
        correct=correct,
        length=length,
        truncated=truncated,
        budget=budget,
        target=draw(_ints((P, G), 0, 80)),
        format_ok=draw(hnp.arrays(np.float32, (P, G), elements=st.sampled_from([0.0, 1.0]))),
        valid=valid,
        prompt_index=draw(_ints((P,), 0, NUM_PROMPTS - 1)),
    )


def to_rollouts(batch: dict) -> Rollouts:
    """`Rollouts` of JAX arrays from a dict of NumPy arrays."""
    dtypes = dict(
        correct=jnp.float32,
        length=jnp.int32,
        truncated=jnp.bool_,
        budget=jnp.int32,
        target=jnp.int32,
        format_ok=jnp.float32,
        valid=jnp.bool_,
        prompt_index=jnp.int32,
    )
    return Rollouts(**{k: jnp.asarray(batch[k], dtypes[k]) for k in Rollouts._fields})


def make_batch(
    correct,
    length,
    *,
    budget=4000,
    truncated=None,
    target=0,
    format_ok=1.0,
    valid=True,
    prompt_index=None,
) -> dict:
    """A hand-made batch: `correct` and `length` are `[P, G]` lists; other fields broadcast."""
    correct = np.asarray(correct, np.float32)
    shape = correct.shape

    def full(x, dtype):
        return np.broadcast_to(np.asarray(x, dtype), shape).copy()

    length = full(length, np.int32)
    budget = full(budget, np.int32)
    return dict(
        correct=correct,
        length=length,
        truncated=length >= budget if truncated is None else full(truncated, np.bool_),
        budget=budget,
        target=full(target, np.int32),
        format_ok=full(format_ok, np.float32),
        valid=full(valid, np.bool_),
        prompt_index=np.arange(shape[0], dtype=np.int32)
        if prompt_index is None
        else np.asarray(prompt_index, np.int32),
    )


def scramble_invalid(batch: dict, seed: int = 0) -> dict:
    """A copy of `batch` with random invalid entries (and random prompt indices on padding rows)."""
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in batch.items()}
    bad = ~batch["valid"]
    out["correct"][bad] = rng.random(bad.sum()).astype(np.float32)
    out["length"][bad] = rng.integers(0, 10_000, bad.sum())
    out["truncated"][bad] = rng.random(bad.sum()) < 0.5
    out["budget"][bad] = rng.integers(0, 10_000, bad.sum())
    out["target"][bad] = rng.integers(0, 10_000, bad.sum())
    out["format_ok"][bad] = rng.random(bad.sum()).astype(np.float32)
    empty_rows = ~batch["valid"].any(axis=1)
    out["prompt_index"][empty_rows] = rng.integers(0, NUM_PROMPTS, empty_rows.sum())
    return out


def checkpoint_roundtrip(state, path):
    """Save `state` with orbax's StandardCheckpointer under `path` and restore it."""
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path / "state", state)
    checkpointer.wait_until_finished()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    return checkpointer.restore(path / "state", abstract)


def assert_trees_equal(a, b):
    """Exact equality of two pytrees of arrays (NaN == NaN), structure included."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_shorter_correct_not_worse(batch: dict, reward) -> None:
    """Within each group, a correct valid answer never scores below a longer correct valid one."""
    reward = np.asarray(reward)
    ok = batch["valid"] & (batch["correct"] >= 0.5)
    for i in range(reward.shape[0]):
        for a in np.flatnonzero(ok[i]):
            for b in np.flatnonzero(ok[i]):
                if batch["length"][i, a] < batch["length"][i, b]:
                    assert reward[i, a] >= reward[i, b] - 1e-6, (i, a, b, reward[i])


def reference_kimi_len_r(length, correct, valid):
    """Kimi k1.5 length reward, written with loops (the `kimi` and `grpo_lambda` tests use it)."""
    out = np.zeros(length.shape)
    for i in range(length.shape[0]):
        group = [int(length[i, g]) for g in range(length.shape[1]) if valid[i, g]]
        if not group or max(group) == min(group):
            continue
        lo, hi = min(group), max(group)
        for g in range(length.shape[1]):
            if valid[i, g]:
                lam = 0.5 - (int(length[i, g]) - lo) / (hi - lo)
                out[i, g] = lam if correct[i, g] >= 0.5 else min(0.0, lam)
    return out
