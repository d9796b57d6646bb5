"""Host side: ragged prompts -> one left-padded bucket, and the checks that name the fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np

from lenrl.sampling.config import SamplingConfig


class PromptBatch(NamedTuple):
    """Prompts padded on the left to one bucket length ``T`` (the last real token is at T-1)."""

    tokens: np.ndarray  # [N, T] i32, pad_id before each prompt
    lengths: np.ndarray  # [N] i32, real tokens per prompt (>= 1)


def pad_prompts(
    prompts: Sequence[Sequence[int]], cfg: SamplingConfig, vocab_size: int | None = None
) -> PromptBatch:
    """Left-pads ragged token-id lists into the smallest bucket that holds the longest one.

    Raises:
      ValueError: no prompts, an empty prompt, a token id outside ``[0, vocab_size)``, or a
        prompt longer than the largest bucket (the message names the prompt and the config key).
    """
    if isinstance(prompts, PromptBatch):
        return prompts
    if len(prompts) == 0:
        raise ValueError("no prompts: the sampler needs at least one prompt.")
    rows = [np.asarray(p, np.int64).reshape(-1) for p in prompts]
    largest = cfg.buckets[-1]
    for i, row in enumerate(rows):
        if row.size == 0:
            raise ValueError(f"prompt {i} is empty; every prompt needs at least one token.")
        if row.size > largest:
            raise ValueError(
                f"prompt {i} has {row.size} tokens, more than the largest bucket {largest}; add "
                "a larger length to SamplingConfig.buckets (or truncate the prompt)."
            )
        if vocab_size is not None and (row.min() < 0 or row.max() >= vocab_size):
            bad = int(row[(row < 0) | (row >= vocab_size)][0])
            raise ValueError(
                f"prompt {i} holds token id {bad}, outside the model's vocabulary "
                f"[0, {vocab_size})."
            )
    t = cfg.bucket(max(r.size for r in rows))
    tokens = np.full((len(rows), t), cfg.pad_id, np.int32)
    for i, row in enumerate(rows):
        tokens[i, t - row.size :] = row
    return PromptBatch(tokens, np.asarray([r.size for r in rows], np.int32))


def check_budgets(name: str, budgets, num_prompts: int, cfg: SamplingConfig, bucket: int):
    """Budgets as an i32 array ``[N]``; concrete values are range-checked (tracers pass as is)."""
    if isinstance(budgets, jax.core.Tracer):
        if budgets.shape != (num_prompts,):
            raise ValueError(f"{name} has shape {budgets.shape}; expected ({num_prompts},).")
        return budgets
    arr = np.asarray(budgets)
    if arr.ndim == 0:
        arr = np.full((num_prompts,), arr)
    if arr.shape != (num_prompts,):
        raise ValueError(
            f"{name} has shape {arr.shape}; expected one budget per prompt: ({num_prompts},)."
        )
    if arr.size and arr.min() < 0:
        i = int(np.argmin(arr))
        raise ValueError(f"prompt {i}: {name}={int(arr[i])} is negative.")
    if name == "max_new_tokens" and arr.size and arr.max() > cfg.max_new_tokens:
        i = int(np.argmax(arr))
        raise ValueError(
            f"prompt {i}: max_new_tokens={int(arr[i])} does not fit the KV cache, which holds a "
            f"prompt of up to {bucket} tokens plus SamplingConfig.max_new_tokens="
            f"{cfg.max_new_tokens} new ones; raise SamplingConfig.max_new_tokens."
        )
    return np.minimum(arr, np.iinfo(np.int32).max).astype(np.int32)
