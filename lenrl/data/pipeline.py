"""Prompt pipeline: a source -> shuffled, repeated, sharded, batched, checkpointable grain iterator.

Order of operations (grain ``MapDataset``, all lazy and index-based, hence exactly resumable):

    source -> shuffle(seed) -> repeat(num_epochs) -> [trim] -> batch -> [shard_index::shard_count]

* ``shuffle`` before ``repeat``: grain reseeds the shuffle per epoch, so every epoch has its own
  order, the same on every process for a given seed.
* Sharding deals out whole batches of the one global stream: with ``n = shard_count`` and ``b =
  batch_size``, batch ``k`` of shard ``i`` holds global examples ``[(k n + i) b, (k n + i + 1) b)``.
  So the shards partition the stream (each example of an epoch goes to exactly one process), and
  batch ``k`` of shards ``0 .. n-1`` side by side is exactly batch ``k`` of the unsharded pipeline
  with ``batch_size = n b``: a multi-process run sees the same global batches, in the same order,
  as one process, and the iterator state (batches drawn) means the same for any ``n``.
* With a finite ``num_epochs`` and ``drop_remainder`` the stream is first trimmed to a multiple of
  ``shard_count * batch_size``, so every process yields the same number of full batches (multi-host
  steps stay in lockstep); the trimmed tail is at most ``shard_count * batch_size - 1`` examples.
* Batches are fixed-size dicts: string fields become ``list[str]`` of length ``B``, integer
  fields ``np.int32 [B]``. A prompt batch is ``{prompt, answer, difficulty [B], index [B]}`` plus
  any extra field of the source (the synthetic source's ``solution``).

Tokenisation is deliberately not part of this pipeline: the trainer applies the chat template and
tokenizer to ``batch["prompt"]`` (prompts change with the length method, e.g. L1 targets). The
iterator's ``get_state()`` is a small dict (``{"next_index": n}``) to save with the checkpoint;
``set_state(state)`` on a freshly made iterator with the same arguments resumes with exactly the
same next batches. Reading is synchronous by default (``num_threads=0``): sources are in memory
or cheap to compute, and on a 2-core machine background threads would only compete with JAX.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grain
import numpy as np

from lenrl.data.sources import RECORD_KEYS


def collate(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Records -> batch: integer fields -> ``np.int32 [B]``, all others -> ``list`` of ``B``."""
    batch = {}
    for key in records[0]:
        values = [r[key] for r in records]
        if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            batch[key] = np.asarray(values, dtype=np.int32)
        else:
            batch[key] = values
    return batch


def _as_dataset(source) -> grain.MapDataset:
    ds = source if isinstance(source, grain.MapDataset) else grain.MapDataset.source(source)
    if len(ds) == 0:
        raise ValueError("prompt source is empty")
    first = ds[0]
    missing = [k for k in RECORD_KEYS if not isinstance(first, dict) or k not in first]
    if missing:
        got = sorted(first) if isinstance(first, dict) else type(first).__name__
        raise ValueError(
            f"prompt source records must have keys {list(RECORD_KEYS)}; missing {missing} "
            f"(first record has {got}). Build sources with lenrl.data.sources."
        )
    return ds


def make_prompt_dataset(
    source,
    *,
    batch_size: int,
    seed: int,
    shard_index: int = 0,
    shard_count: int = 1,
    shuffle: bool = True,
    num_epochs: int | None = None,
    drop_remainder: bool = True,
) -> grain.MapDataset:
    """The batched ``MapDataset`` behind ``make_prompt_iterator`` (same arguments)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index}, {shard_count}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    if num_epochs is not None and num_epochs <= 0:
        raise ValueError(f"num_epochs must be None (forever) or > 0, got {num_epochs}")
    ds = _as_dataset(source)
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs)
    if num_epochs is not None and drop_remainder:
        per_step = shard_count * batch_size
        ds = ds[: len(ds) // per_step * per_step]
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, batch_fn=collate)
    return ds[shard_index::shard_count]


def make_prompt_iterator(
    source,
    *,
    batch_size: int,
    seed: int,
    shard_index: int = 0,
    shard_count: int = 1,
    shuffle: bool = True,
    num_epochs: int | None = None,
    drop_remainder: bool = True,
    num_threads: int = 0,
) -> grain.DatasetIterator:
    """Checkpointable iterator over prompt batches of one process.

    Args:
      source: a ``grain.MapDataset`` of records (``lenrl.data.sources``), or any sequence /
        grain random-access data source of record dicts.
      batch_size: prompts per batch on this process.
      seed: shuffle seed in ``[0, 2**32)``; the same seed gives the same batches.
      shard_index, shard_count: this process's shard, e.g. ``jax.process_index()`` and
        ``jax.process_count()``.
      shuffle: shuffle (per epoch); ``False`` keeps the source order.
      num_epochs: ``None`` repeats forever (training); an int ends after that many epochs.
      drop_remainder: only full batches (fixed shapes). ``False`` keeps a last partial batch and
        does not trim, so shards may then differ by a batch.
      num_threads: grain reader threads; 0 reads synchronously in the calling thread.

    Returns:
      A ``grain.DatasetIterator`` of batches ``{prompt: list[str] [B], answer: list[str] [B],
      difficulty: np.int32 [B], index: np.int32 [B], ...}`` with ``get_state`` / ``set_state``.
    """
    ds = make_prompt_dataset(
        source,
        batch_size=batch_size,
        seed=seed,
        shard_index=shard_index,
        shard_count=shard_count,
        shuffle=shuffle,
        num_epochs=num_epochs,
        drop_remainder=drop_remainder,
    )
    read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * num_threads)
    return iter(ds.to_iter_dataset(read_options))
