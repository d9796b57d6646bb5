"""The fixed-shape batch one policy update consumes."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class UpdateBatch(NamedTuple):
    """``N`` samples, each a left-padded prompt (``Tp``) and a right-padded completion (``Tc``).

    For supervised warm start ``advantages``/``logp_*`` are unused (zeros).
    """

    tokens: jax.Array  # [N, Tp + Tc] i32
    attn_mask: jax.Array  # [N, Tp + Tc] bool, real tokens
    loss_mask: jax.Array  # [N, Tc] bool, completion tokens that enter the loss
    advantages: jax.Array  # [N] f32
    logp_old: jax.Array  # [N, Tc] f32, sampling policy
    logp_ref: jax.Array  # [N, Tc] f32, reference policy (zeros when beta = 0)
    truncated: jax.Array  # [N] bool
    valid: jax.Array  # [N] bool, False for padding samples
    correct: jax.Array  # [N] f32 verifier score (the DRPO objective needs it)


def pad_rows(
    prompts: list[list[int]],
    completions: list[list[int]],
    prompt_len: int,
    completion_len: int,
    pad_id: int,
):
    """Host-side: ``(tokens [N, Tp+Tc] i32, attn_mask [N, Tp+Tc] bool)`` as numpy arrays.

    Prompts are left-padded to ``prompt_len`` and completions right-padded to ``completion_len``;
    a prompt or completion that does not fit is an error naming the row.
    """
    n = len(prompts)
    tokens = np.full((n, prompt_len + completion_len), pad_id, np.int32)
    mask = np.zeros(tokens.shape, bool)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        if len(p) > prompt_len:
            raise ValueError(
                f"prompt {i} has {len(p)} tokens, more than max_prompt_len={prompt_len}; raise "
                "config.data.max_prompt_len or shorten the prompt."
            )
        if len(c) > completion_len:
            raise ValueError(f"completion {i} has {len(c)} tokens > {completion_len}.")
        tokens[i, prompt_len - len(p) : prompt_len] = p
        mask[i, prompt_len - len(p) : prompt_len] = True
        tokens[i, prompt_len : prompt_len + len(c)] = c
        mask[i, prompt_len : prompt_len + len(c)] = True
    return tokens, mask


def supervised_batch(tokens, attn_mask, prompt_len: int) -> UpdateBatch:
    """An `UpdateBatch` for cross-entropy on the completion tokens."""
    tokens, attn_mask = jnp.asarray(tokens), jnp.asarray(attn_mask)
    n, t = tokens.shape
    zeros = jnp.zeros((n, t - prompt_len), jnp.float32)
    return UpdateBatch(
        tokens=tokens,
        attn_mask=attn_mask,
        loss_mask=attn_mask[:, prompt_len:],
        advantages=jnp.zeros((n,), jnp.float32),
        logp_old=zeros,
        logp_ref=zeros,
        truncated=jnp.zeros((n,), bool),
        valid=jnp.ones((n,), bool),
        correct=jnp.zeros((n,), jnp.float32),
    )
