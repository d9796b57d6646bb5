"""Dynamic sampling: the group filter and fixed-shape compaction."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lenrl.algorithms import advantages, filtering

P, G = 6, 4


def ref_keep(rewards, valid):
    keep = []
    for row, v in zip(rewards, valid, strict=True):
        xs = [x for x, ok in zip(row, v, strict=True) if ok]
        keep.append(len(xs) >= 2 and max(xs) != min(xs))
    return np.array(keep)


@st.composite
def batches(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    rewards = rng.integers(0, 2, (P, G)).astype(np.float32)  # binary: constant groups are common
    valid = rng.random((P, G)) < draw(st.sampled_from([1.0, 0.7, 0.4]))
    return rewards, valid


keep_jit = jax.jit(filtering.keep_groups)
compact_jit = jax.jit(filtering.compact_groups)
grpo_jit = jax.jit(advantages.grpo)


def test_keep_groups_hand():
    rewards = np.array([[1, 0, 1], [1, 1, 1], [0, 0, 0], [1, 0, 9], [0.5, 0.5, 0.7]], np.float32)
    valid = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 0, 0], [1, 1, 0]], bool)
    # varied; all correct; all wrong; one valid sample; valid rewards equal (0.7 is padding).
    np.testing.assert_array_equal(
        filtering.keep_groups(rewards, valid), [True, False, False, False, False]
    )


@settings(max_examples=30, deadline=None)
@given(batch=batches())
def test_keep_groups_matches_reference(batch):
    rewards, valid = batch
    np.testing.assert_array_equal(keep_jit(rewards, valid), ref_keep(rewards, valid))


@settings(max_examples=30, deadline=None)
@given(batch=batches())
def test_compact_groups(batch):
    rewards, valid = batch
    keep = np.asarray(keep_jit(rewards, valid))
    tree = {"rewards": rewards, "prompt_index": np.arange(P, dtype=np.int32) + 100}
    out, out_valid, num_kept = compact_jit(tree, valid, keep)
    order = [i for i in range(P) if keep[i]] + [i for i in range(P) if not keep[i]]
    assert int(num_kept) == keep.sum()
    np.testing.assert_array_equal(out["prompt_index"], np.array(order) + 100)
    np.testing.assert_array_equal(out["rewards"], rewards[order])
    want_valid = valid[order] & (np.arange(P) < keep.sum())[:, None]
    np.testing.assert_array_equal(out_valid, want_valid)
    # Advantages of the compacted batch equal those of the kept groups; the padding gets 0.
    a_full = np.asarray(grpo_jit(rewards, valid=valid))
    a_compact = np.asarray(grpo_jit(out["rewards"], valid=out_valid))
    np.testing.assert_allclose(a_compact[: keep.sum()], a_full[keep], rtol=1e-6)
    assert np.all(a_compact[keep.sum() :] == 0.0)


def test_compact_is_eager_and_vmap_consistent():
    rng = np.random.default_rng(0)
    rewards = rng.integers(0, 2, (3, P, G)).astype(np.float32)
    valid = np.ones((3, P, G), bool)
    keep = jax.vmap(filtering.keep_groups)(rewards, valid)
    mapped = jax.vmap(filtering.compact_groups)(rewards, valid, keep)
    for i in range(3):
        eager = filtering.compact_groups(rewards[i], valid[i], keep[i])
        for got, want in zip(jax.tree.leaves(mapped), jax.tree.leaves(eager), strict=True):
            np.testing.assert_array_equal(got[i], want)


def test_fill_batch_from_two_rounds():
    # Concatenate two sampling rounds, compact, keep the first P groups: a fixed-shape batch.
    r1 = jnp.array([[1.0, 1.0], [1.0, 0.0]])
    r2 = jnp.array([[0.0, 1.0], [0.0, 0.0]])
    rewards = jnp.concatenate([r1, r2])
    valid = jnp.ones((4, 2), bool)
    out, out_valid, num_kept = filtering.compact_groups(
        rewards, valid, filtering.keep_groups(rewards, valid)
    )
    np.testing.assert_array_equal(out[:2], [[1.0, 0.0], [0.0, 1.0]])
    assert int(num_kept) == 2 and bool(out_valid[:2].all()) and not bool(out_valid[2:].any())
