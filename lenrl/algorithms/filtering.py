"""Dynamic sampling (DAPO, arXiv 2503.14476): keep only groups that carry a learning signal.

A group whose valid rewards are all equal has zero group-relative advantage and only dilutes the
batch. :func:`keep_groups` finds the groups to keep; :func:`compact_groups` moves them to the front
of the fixed-size arrays and marks the rest invalid, so shapes never change under ``jit``. To fill a
batch from several sampling rounds, concatenate them along the group axis, compact, and slice the
first ``P`` rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def keep_groups(rewards: jax.Array, valid: jax.Array) -> jax.Array:
    """``[P] bool``: the group has at least 2 valid samples and its valid rewards are not all equal.

    ``rewards``, ``valid``: ``[P, G]``.
    """
    valid = jnp.asarray(valid, bool)
    rewards = jnp.asarray(rewards, jnp.float32)
    hi = jnp.where(valid, rewards, -jnp.inf).max(-1)
    lo = jnp.where(valid, rewards, jnp.inf).min(-1)
    return (valid.sum(-1) >= 2) & (hi > lo)


def compact_groups(tree, valid: jax.Array, keep: jax.Array):
    """Move kept groups to the front (stable order), the dropped ones behind, marked invalid.

    Args:
      tree: a pytree of arrays whose leading axis is the group axis ``P`` (rollouts,
        prompt_index...).
      valid: ``[P, ...]`` validity mask (e.g. ``[P, G]``).
      keep: ``[P] bool`` from :func:`keep_groups`.

    Returns:
      ``(tree, valid, num_kept)``: every leaf gathered by one permutation ``order [P]`` (a stable
      argsort of ``~keep``), ``valid[order]`` with rows ``>= num_kept`` set False, and ``num_kept``
      (``i32`` scalar).
    """
    keep = jnp.asarray(keep, bool)
    # [P] kept groups first, then the dropped ones, each part in its original order.
    order = jnp.argsort(~keep, stable=True)
    num_kept = keep.sum().astype(jnp.int32)
    rows = jnp.arange(keep.shape[0]) < num_kept  # [P]
    tree = jax.tree.map(lambda x: jnp.take(x, order, axis=0), tree)
    valid = jnp.take(jnp.asarray(valid, bool), order, axis=0)
    valid = valid & rows.reshape((-1,) + (1,) * (valid.ndim - 1))
    return tree, valid, num_kept
