"""Packed batches: (prompt, completion) samples placed first-fit-decreasing into rows of R tokens.

Length-controlled training gives very uneven completions (many short, a few at the budget), so a
padded `UpdateBatch` (every row ``Tp + Tc`` wide) is mostly padding. Here each sample becomes one
*segment* ``prompt + completion`` of a row; a row holds as many segments as fit. Segment ids keep
attention block-diagonal and restart the positions (``Decoder.hidden_states(..., segment_ids)``),
so every sample sees exactly what it sees alone.

The update's batch is ``K`` bins (its microbatches: ``K = num_minibatches * num_microbatches``),
each ``B`` rows of ``R`` tokens plus ``S`` per-sample entries. Whole groups go to a bin (the DRPO
objective needs them together), balanced by token count; inside a bin the samples keep their
order (group by group), so ``valid.reshape(-1, G)`` is a bin's groups. ``sample_ids`` maps every
token to its sample, from which the losses recover per-sample sums with ``segment_sum``: every
aggregation (token mean, sequence mean of token means, Dr. GRPO's constant normaliser), the DRPO
scores and per-sample KL/entropy means take the same values packed and padded.

Everything here is host-side numpy and deterministic: the same samples give the same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from lenrl.train.batch import UpdateBatch


class PackedBatch(NamedTuple):
    """Samples packed into rows. Shapes are for one bin; the update's batch stacks ``K`` bins in
    front of every field (``[K, B, R]`` and ``[K, S]``).

    A completion token's log-prob is read at the token itself (from the logits one slot before
    it, which are in its segment because a prompt is never empty).
    """

    tokens: np.ndarray  # [B, R] i32, pad_id on padding
    segment_ids: np.ndarray  # [B, R] i32, 1, 2, ... per row; 0 on padding
    positions: np.ndarray  # [B, R] i32, offset in its segment (0 on padding)
    sample_ids: np.ndarray  # [B, R] i32, the token's sample (index into [S]); 0 on padding
    loss_mask: np.ndarray  # [B, R] bool, completion tokens that enter the loss
    advantages: np.ndarray  # [B, R] f32, the sample's advantage on its completion tokens, else 0
    logp_old: np.ndarray  # [B, R] f32, sampling policy, on completion tokens
    logp_ref: np.ndarray  # [B, R] f32, reference policy, on completion tokens
    truncated: np.ndarray  # [S] bool
    valid: np.ndarray  # [S] bool, as given: False for padding samples
    correct: np.ndarray  # [S] f32 verifier score


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins of item indices, each summing to at most ``capacity``.

    Items are taken longest first (ties: lower index first) and each goes into the first bin with
    room, else a new bin. Uses at most ``11/9 OPT + 6/9`` bins (Dosa 2007). Deterministic; items
    of length 0 are placed like the others.
    """
    lengths = np.asarray(lengths, np.int64)
    bad = np.flatnonzero((lengths > capacity) | (lengths < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"item {i} has length {int(lengths[i])}, not in [0, {capacity}].")
    order = np.argsort(-lengths, kind="stable")
    free = np.empty(len(lengths), np.int64)  # free space of each open bin (at most one per item)
    bins: list[list[int]] = []
    for i in order:
        fits = np.flatnonzero(free[: len(bins)] >= lengths[i])
        if fits.size:
            j = int(fits[0])
        else:
            j = len(bins)
            bins.append([])
            free[j] = capacity
        bins[j].append(int(i))
        free[j] -= lengths[i]
    return bins


def balance_groups(group_tokens: Sequence[int], num_bins: int) -> list[list[int]]:
    """Splits ``P`` groups into ``num_bins`` bins of ``P / num_bins`` groups with similar token
    totals: longest group first, each into the non-full bin with the fewest tokens (ties: lower
    bin). Groups inside a bin are in ascending order. Deterministic."""
    p = len(group_tokens)
    if num_bins <= 0 or p % num_bins:
        raise ValueError(f"{p} groups cannot be split into {num_bins} equal bins.")
    per_bin = p // num_bins
    totals = np.zeros(num_bins, np.int64)
    bins: list[list[int]] = [[] for _ in range(num_bins)]
    for g in np.argsort(-np.asarray(group_tokens, np.int64), kind="stable"):
        open_bins = [b for b in range(num_bins) if len(bins[b]) < per_bin]
        b = min(open_bins, key=lambda b: (totals[b], b))
        bins[b].append(int(g))
        totals[b] += group_tokens[g]
    return [sorted(b) for b in bins]


def _per_token(values, i: int, n: int, dtype, default) -> np.ndarray:
    if values is None:
        return np.full((n,), default, dtype)
    out = np.asarray(values[i], dtype)[:n]
    if out.shape != (n,):
        raise ValueError(
            f"sample {i}: per-token values have {out.shape[0]} entries for {n} tokens."
        )
    return out


def _plan_bin(samples: list[int], prompts, completions, extras: dict, row_len: int):
    """The rows of one bin: lists of local sample indices (positions in ``samples``)."""
    local, lengths = [], []
    for k, i in enumerate(samples):
        lm = _per_token(extras["loss_mask"], i, len(completions[i]), bool, True)
        if not extras["valid"][i] or not lm.any():
            continue  # contributes nothing to any loss or metric: not placed
        if not len(prompts[i]):
            raise ValueError(f"sample {i} has an empty prompt; its first token has no logits.")
        if len(prompts[i]) + len(completions[i]) > row_len:
            raise ValueError(
                f"sample {i} has {len(prompts[i])} + {len(completions[i])} tokens, more than the "
                f"row length {row_len}; raise the row length to at least prompt_len + the budget."
            )
        local.append(k)
        lengths.append(len(prompts[i]) + len(completions[i]))
    return [[local[j] for j in row] for row in first_fit_decreasing(lengths, row_len)]


def _fill_bin(samples, rows, prompts, completions, extras: dict, row_len: int, num_rows: int):
    """One bin's arrays (a `PackedBatch` as a dict) from its row plan."""

    def grid(dtype, fill=0):
        return np.full((num_rows, row_len), fill, dtype)

    out = dict(
        tokens=grid(np.int32, extras["pad_id"]),
        segment_ids=grid(np.int32),
        positions=grid(np.int32),
        sample_ids=grid(np.int32),
        loss_mask=grid(bool),
        advantages=grid(np.float32),
        logp_old=grid(np.float32),
        logp_ref=grid(np.float32),
    )
    for r, members in enumerate(rows):
        start = 0
        for seg, k in enumerate(members, start=1):
            i = samples[k]
            p, c = prompts[i], completions[i]
            mid, end = start + len(p), start + len(p) + len(c)
            out["tokens"][r, start:mid] = p
            out["tokens"][r, mid:end] = c
            out["segment_ids"][r, start:end] = seg
            out["positions"][r, start:end] = np.arange(end - start)
            out["sample_ids"][r, start:end] = k
            out["loss_mask"][r, mid:end] = _per_token(extras["loss_mask"], i, len(c), bool, True)
            out["advantages"][r, mid:end] = extras["advantages"][i]
            out["logp_old"][r, mid:end] = _per_token(extras["logp_old"], i, len(c), np.float32, 0)
            out["logp_ref"][r, mid:end] = _per_token(extras["logp_ref"], i, len(c), np.float32, 0)
            start = end
    idx = np.asarray(samples, np.int64)
    for name in ("truncated", "valid", "correct"):
        out[name] = extras[name][idx]
    return out


def pack(
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    *,
    row_len: int,
    num_bins: int = 1,
    group_size: int = 1,
    rows_multiple: int = 1,
    num_rows: int | None = None,
    loss_mask=None,
    advantages=None,
    logp_old=None,
    logp_ref=None,
    truncated=None,
    valid=None,
    correct=None,
    pad_id: int = 0,
) -> PackedBatch:
    """Packs ``N`` samples into ``num_bins`` bins of ``B`` rows of ``row_len`` tokens.

    Args:
      prompts, completions: ``N`` token-id lists; a sample is the segment ``prompt + completion``.
      row_len: ``R``, at least the longest ``prompt + completion``.
      num_bins: ``K``, the update's ``num_minibatches * num_microbatches``.
      group_size: ``G``; whole groups go to a bin, ``N`` divisible by ``K * G``.
      rows_multiple: ``B`` is the most rows any bin needs (first-fit decreasing), rounded up to a
        multiple of this (e.g. the data-parallel size, or a bucket to bound recompiles).
      num_rows: a fixed ``B`` instead (an error if a bin needs more).
      loss_mask, logp_old, logp_ref: per completion token, item ``i`` indexable to
        ``len(completions[i])`` values (a padded ``[N, Tc]`` array or a list of arrays); defaults
        all True / zeros.
      advantages, truncated, valid, correct: per sample ``[N]``; defaults 0 / False / True / 0.
      pad_id: token id written on padding.
    Returns:
      A `PackedBatch` of numpy arrays with a leading ``[K]``. Invalid samples and samples without
      loss tokens are not placed (they change no loss or metric) but keep their per-sample
      entries.
    """
    n = len(prompts)
    if len(completions) != n:
        raise ValueError(f"{n} prompts but {len(completions)} completions.")
    if num_bins <= 0 or group_size <= 0 or n % (num_bins * group_size):
        raise ValueError(
            f"{n} samples cannot be split into num_bins={num_bins} bins of whole groups of "
            f"group_size={group_size}."
        )

    def per_sample(x, dtype, default):
        return np.full((n,), default, dtype) if x is None else np.asarray(x, dtype).reshape(n)

    extras = dict(
        loss_mask=loss_mask,
        logp_old=logp_old,
        logp_ref=logp_ref,
        advantages=per_sample(advantages, np.float32, 0.0),
        truncated=per_sample(truncated, bool, False),
        valid=per_sample(valid, bool, True),
        correct=per_sample(correct, np.float32, 0.0),
        pad_id=pad_id,
    )
    p = n // group_size
    tokens = [len(prompts[i]) + len(completions[i]) if extras["valid"][i] else 0 for i in range(n)]
    group_tokens = [sum(tokens[g * group_size : (g + 1) * group_size]) for g in range(p)]
    bins = [
        [g * group_size + j for g in groups for j in range(group_size)]
        for groups in balance_groups(group_tokens, num_bins)
    ]
    plans = [_plan_bin(b, prompts, completions, extras, row_len) for b in bins]
    need = max(max(len(rows) for rows in plans), 1)
    if num_rows is None:
        num_rows = -(-need // rows_multiple) * rows_multiple
    elif need > num_rows:
        raise ValueError(
            f"a bin needs {need} rows of {row_len} tokens, more than num_rows={num_rows}."
        )
    packed = [
        _fill_bin(b, rows, prompts, completions, extras, row_len, num_rows)
        for b, rows in zip(bins, plans, strict=True)
    ]
    return PackedBatch(**{f: np.stack([b[f] for b in packed]) for f in PackedBatch._fields})


def pack_update_batch(
    batch: UpdateBatch, *, prompt_len: int, row_len: int, pad_id: int = 0, **kwargs
) -> PackedBatch:
    """The samples of a padded `UpdateBatch` (left-padded prompts of ``prompt_len``, right-padded
    completions) as a `PackedBatch`; ``kwargs`` go to `pack` (``num_bins``, ``group_size``,
    ``rows_multiple``, ``num_rows``)."""
    b = {k: np.asarray(v) for k, v in batch._asdict().items()}
    tokens, attn = b["tokens"], b["attn_mask"].astype(bool)
    prompts, completions, cols = [], [], []
    for i in range(tokens.shape[0]):
        prompts.append(tokens[i, :prompt_len][attn[i, :prompt_len]].tolist())
        c = np.flatnonzero(attn[i, prompt_len:])
        completions.append(tokens[i, prompt_len + c].tolist())
        cols.append(c)

    def take(x):
        return [x[i, c] for i, c in enumerate(cols)]

    return pack(
        prompts,
        completions,
        row_len=row_len,
        loss_mask=take(b["loss_mask"].astype(bool)),
        advantages=b["advantages"],
        logp_old=take(b["logp_old"]),
        logp_ref=take(b["logp_ref"]),
        truncated=b["truncated"],
        valid=b["valid"],
        correct=b["correct"],
        pad_id=pad_id,
        **kwargs,
    )


def padding_stats(batch: PackedBatch) -> dict[str, float]:
    """Real tokens, token slots and the padding fraction of a packed batch (any leading dims)."""
    real = int((np.asarray(batch.segment_ids) > 0).sum())
    slots = int(np.asarray(batch.segment_ids).size)
    return {"real_tokens": real, "slots": slots, "padding_fraction": 1.0 - real / max(slots, 1)}


def max_rows(num_samples: int, max_len: int, row_len: int) -> int:
    """The most rows `first_fit_decreasing` can need for ``num_samples`` samples of at most
    ``max_len`` tokens each: ``ceil(n / k)`` with ``k = floor(row_len / max_len)``.

    A new row opens only for a sample that fits in no open row, so each earlier row then holds
    more than ``row_len - max_len >= (k - 1) max_len`` tokens, hence at least ``k`` samples; all
    rows but the last hold ``k`` or more. A static row count for a length bucket (one compile).
    """
    if not 0 < max_len <= row_len:
        raise ValueError(f"samples of up to {max_len} tokens do not fit rows of {row_len}.")
    return max(-(-num_samples // (row_len // max_len)), 1)


def add_rows(batch: PackedBatch, num_rows: int, pad_id: int = 0) -> PackedBatch:
    """``batch`` with empty rows (padding: no segment, no loss token) appended to ``num_rows``
    rows per bin, e.g. the row count every process agreed on. Per-sample fields are unchanged."""
    have = batch.tokens.shape[1]
    if num_rows < have:
        raise ValueError(f"the batch already has {have} rows, more than num_rows={num_rows}.")
    per_sample = ("truncated", "valid", "correct")

    def grow(name, x):
        if name in per_sample or num_rows == have:
            return x
        width = [(0, 0), (0, num_rows - have), (0, 0)]
        return np.pad(x, width, constant_values=pad_id if name == "tokens" else 0)

    return PackedBatch(*(grow(n, x) for n, x in zip(PackedBatch._fields, batch, strict=True)))
