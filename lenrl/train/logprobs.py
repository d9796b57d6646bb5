"""Per-token log-probabilities and entropies of completions under a model, padded or packed.

A batch row is a prompt, left-padded to ``Tp``, followed by its completion, right-padded to ``Tc``
(``tokens_NxT`` with ``T = Tp + Tc``). The log-prob of completion token ``t`` comes from the logits
at position ``Tp + t - 1``, so only the ``Tc`` positions that predict completion tokens are
projected to the vocabulary. Packed rows (`packed_logprobs`, ``lenrl.train.packing``) hold
completions anywhere, so every position is projected.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def completion_logprobs(model, tokens_NxT, attn_mask_NxT, prompt_len: int, temperature=1.0):
    """Log-probs and entropies of the completion tokens.

    Args:
      model: a `lenrl.models.Decoder`.
      tokens_NxT: i32, prompt (left-padded, ``prompt_len`` wide) then completion (right-padded).
      attn_mask_NxT: bool, True on real prompt and completion tokens.
      prompt_len: static ``Tp``.
      temperature: divides the logits (1.0 for the RL loss).
    Returns:
      ``(logp [N, Tc] f32, entropy [N, Tc] f32)``; values on padding positions are meaningless,
      the caller masks them.
    """
    hidden = model.hidden_states(tokens_NxT, attention_mask=attn_mask_NxT)
    t = tokens_NxT.shape[1]
    logits = model.logits(hidden[:, prompt_len - 1 : t - 1]) / temperature  # [N, Tc, V] f32
    logz = jax.nn.logsumexp(logits, axis=-1)
    targets = tokens_NxT[:, prompt_len:]
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    probs = jnp.exp(logits - logz[..., None])
    entropy = logz - jnp.sum(probs * logits, axis=-1)
    return picked - logz, entropy


def packed_logprobs(model, tokens_BxR, segment_ids_BxR, positions_BxR=None, temperature=1.0):
    """Log-probs and entropies of every token of packed rows given the earlier tokens of its
    segment (`lenrl.train.packing`).

    Args:
      model: a `lenrl.models.Decoder`.
      tokens_BxR: i32 rows of segments ``prompt + completion``.
      segment_ids_BxR: i32 segment ids (0 on padding); attention stays within a segment.
      positions_BxR: i32 offsets in the segments; default derived from the ids.
      temperature: divides the logits (1.0 for the RL loss).
    Returns:
      ``(logp [B, R] f32, entropy [B, R] f32)``: entry ``j`` is read from the logits at ``j - 1``
      (column 0 is 0). Only entries whose previous token is in the same segment mean anything
      (completion tokens, as prompts are never empty); the caller masks the rest.
    """
    hidden = model.hidden_states(tokens_BxR, segment_ids=segment_ids_BxR, positions=positions_BxR)
    logits = model.logits(hidden[:, :-1]) / temperature  # [B, R-1, V] f32
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, tokens_BxR[:, 1:, None], axis=-1)[..., 0]
    probs = jnp.exp(logits - logz[..., None])
    entropy = logz - jnp.sum(probs * logits, axis=-1)
    pad = jnp.zeros((tokens_BxR.shape[0], 1), jnp.float32)
    return (
        jnp.concatenate([pad, picked - logz], axis=1),
        jnp.concatenate([pad, entropy], axis=1),
    )
