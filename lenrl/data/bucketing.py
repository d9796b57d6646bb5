"""Variable-length batches for the warm start: examples of similar length, a token budget each.

In the spirit of dataset decomposition (Pouransari et al., "Dataset Decomposition: Faster LLM
Training with Variable Sequence Length Curriculum", arXiv 2405.13226): instead of a fixed number
of sequences padded to the longest, a batch takes examples of one length bucket, as many as its
token budget allows: bucket ``b`` with upper bound ``L_b`` gives batches of ``n_b = budget // L_b``
examples. Short examples come many to a batch and long ones few, and every batch costs about the
same (``n_b * L_b <= budget`` padded tokens, fewer once packed).

Construction (grain, lazy and index-based, hence exactly resumable)::

    source -> shuffle(seed) -> repeat(num_epochs) -> [map_fn] -> windows of W examples

Each window of ``W`` consecutive examples of the stream is planned on its own: every example goes
to the smallest bucket that holds ``length_fn(example)``, each bucket (in stream order) is cut
into batches of ``n_b``, a bucket's last batch in the window may be shorter, and the window's
batches are put in a random order drawn from ``(seed, window)``. The iterator's state is
``{"window": w, "batch": j}`` (the next batch to yield); a fresh iterator given it resumes with
exactly the same batches.

Multi-process: every process plans the same global batches and takes its contiguous share of
each (process ``i`` of ``n`` gets examples ``[i k / n, (i + 1) k / n)`` of a batch of ``k``), so
all processes take the same number of steps. Batch sizes are multiples of ``m`` (``multiple_of``,
default ``n``; a multiple of ``n``): ``n_b`` rounds down, and a short batch drops its last
``k mod m`` examples (at most ``m - 1`` per bucket and window). With ``m`` the data-parallel size
of the mesh, every batch splits evenly over the devices, and the global batches are the same for
any number of processes.

A batch is ``collate(records)`` (``lenrl.data.pipeline``) plus ``length`` (``np.int32 [k]``,
``length_fn`` of each example), ``bucket_len`` (``L_b``) and ``bucket_size`` (``n_b / n``, this
process's share of a full batch of the bucket: the static size to pad to).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np

from lenrl.data.pipeline import collate


def plan_window(
    lengths: Sequence[int], boundaries: Sequence[int], token_budget: int, multiple: int, key
) -> list[tuple[int, list[int]]]:
    """One window's batches: ``(bucket, example positions)`` in their yield order.

    Batch sizes are multiples of ``multiple``; ``key`` seeds the order of the batches (e.g.
    ``(seed, window)``).
    """
    lengths = np.asarray(lengths, np.int64)
    bucket = np.searchsorted(np.asarray(boundaries), lengths, side="left")
    if lengths.size and bucket.max() >= len(boundaries):
        i = int(np.argmax(bucket >= len(boundaries)))
        raise ValueError(
            f"an example of length {int(lengths[i])} is longer than the largest bucket "
            f"{boundaries[-1]}; add a larger boundary or truncate in length_fn/map_fn."
        )
    batches = []
    for b, bound in enumerate(boundaries):
        size = bucket_size(bound, token_budget, multiple)
        members = np.flatnonzero(bucket == b).tolist()
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            chunk = chunk[: len(chunk) // multiple * multiple]
            if chunk:
                batches.append((b, chunk))
    order = np.random.default_rng(key).permutation(len(batches))
    return [batches[i] for i in order]


def bucket_size(bound: int, token_budget: int, multiple: int = 1) -> int:
    """Examples in a full batch of a bucket: ``budget // bound`` rounded down to ``multiple``."""
    size = token_budget // bound // multiple * multiple
    if size <= 0:
        raise ValueError(
            f"token_budget={token_budget} cannot hold {multiple} example(s) of the bucket "
            f"length {bound}; raise the budget to at least {multiple * bound}."
        )
    return size


class _BucketIterator(grain.DatasetIterator):
    def __init__(self, ds: BucketedIterDataset):
        super().__init__()
        self._ds = ds
        self._window, self._batch = 0, 0
        self._cache: tuple | None = None  # (window, records, lengths, plan)

    def _plan(self, w: int):
        if self._cache is None or self._cache[0] != w:
            d = self._ds
            start = w * d.window
            records = [d.source[i] for i in range(start, min(start + d.window, len(d.source)))]
            if d.map_fn is not None:
                records = [d.map_fn(r) for r in records]
            lengths = [int(d.length_fn(r)) for r in records]
            plan = plan_window(lengths, d.boundaries, d.token_budget, d.multiple, (d.seed, w))
            self._cache = (w, records, lengths, plan)
        return self._cache

    def __next__(self) -> dict[str, Any]:
        while True:
            _, records, lengths, plan = self._plan(self._window)
            if not records:
                raise StopIteration
            if self._batch < len(plan):
                break
            self._window, self._batch = self._window + 1, 0
        b, members = plan[self._batch]
        self._batch += 1
        d = self._ds
        share = len(members) // d.shard_count
        mine = members[d.shard_index * share : (d.shard_index + 1) * share]
        out = collate([records[i] for i in mine])
        out["length"] = np.asarray([lengths[i] for i in mine], np.int32)
        out["bucket_len"] = int(d.boundaries[b])
        out["bucket_size"] = (
            bucket_size(d.boundaries[b], d.token_budget, d.multiple) // d.shard_count
        )
        return out

    def get_state(self) -> dict[str, int]:
        return {"window": self._window, "batch": self._batch}

    def set_state(self, state: dict[str, int]) -> None:
        self._window, self._batch = int(state["window"]), int(state["batch"])


class BucketedIterDataset(grain.IterDataset):
    """Length-bucketed, token-budgeted batches of a ``MapDataset`` (see the module docstring)."""

    def __init__(
        self,
        source: grain.MapDataset,
        *,
        length_fn: Callable[[Any], int],
        boundaries: Sequence[int],
        token_budget: int,
        seed: int,
        window: int = 1024,
        map_fn: Callable[[Any], Any] | None = None,
        shard_index: int = 0,
        shard_count: int = 1,
        multiple_of: int | None = None,
    ):
        super().__init__(source)
        if not boundaries or list(boundaries) != sorted(set(boundaries)) or boundaries[0] <= 0:
            raise ValueError(f"boundaries must be increasing positive ints, got {boundaries!r}")
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        if not 0 <= shard_index < shard_count:
            raise ValueError(
                f"need 0 <= shard_index < shard_count, got {shard_index}, {shard_count}"
            )
        multiple = shard_count if multiple_of is None else multiple_of
        if multiple <= 0 or multiple % shard_count:
            raise ValueError(
                f"multiple_of={multiple_of} must be a positive multiple of "
                f"shard_count={shard_count}."
            )
        for bound in boundaries:
            bucket_size(bound, token_budget, multiple)  # raises if the budget is too small
        self.source, self.length_fn, self.map_fn = source, length_fn, map_fn
        self.boundaries, self.token_budget = tuple(int(b) for b in boundaries), int(token_budget)
        self.seed, self.window = seed, window
        self.shard_index, self.shard_count, self.multiple = shard_index, shard_count, multiple

    def __iter__(self) -> _BucketIterator:
        return _BucketIterator(self)


def make_bucketed_iterator(
    source,
    *,
    length_fn: Callable[[Any], int],
    boundaries: Sequence[int],
    token_budget: int,
    seed: int,
    window: int = 1024,
    map_fn: Callable[[Any], Any] | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    multiple_of: int | None = None,
    shuffle: bool = True,
    num_epochs: int | None = None,
) -> grain.DatasetIterator:
    """Checkpointable iterator over length-bucketed batches of one process.

    Args:
      source: a ``grain.MapDataset`` of records, or any sequence / random-access source.
      length_fn: ``record -> tokens`` (after ``map_fn``), e.g. prompt plus completion ids.
      boundaries: increasing bucket upper bounds ``L_b``, e.g. ``(64, 128, 256, 512)``.
      token_budget: padded tokens per global batch, ``n_b * L_b <= token_budget``.
      seed: shuffle and batch-order seed in ``[0, 2**32)``.
      window: examples planned together; larger gives fuller batches and more mixing.
      map_fn: applied to each record first (e.g. tokenisation, so it happens once).
      shard_index, shard_count: this process's share of each batch.
      multiple_of: global batch sizes are multiples of this (default ``shard_count``; must be a
        multiple of it), e.g. the mesh's data-parallel size.
      shuffle: shuffle the examples (per epoch) before bucketing.
      num_epochs: ``None`` repeats forever; an int ends after that many epochs.
    Returns:
      A ``grain.DatasetIterator`` of batch dicts with ``get_state`` / ``set_state``.
    """
    ds = source if isinstance(source, grain.MapDataset) else grain.MapDataset.source(source)
    if len(ds) == 0:
        raise ValueError("source is empty")
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs)
    return iter(
        BucketedIterDataset(
            ds,
            length_fn=length_fn,
            boundaries=boundaries,
            token_budget=token_budget,
            seed=seed,
            window=window,
            map_fn=map_fn,
            shard_index=shard_index,
            shard_count=shard_count,
            multiple_of=multiple_of,
        )
    )
