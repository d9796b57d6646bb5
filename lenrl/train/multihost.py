"""Host <-> device traffic that is the same code on one process and on many (multi-controller JAX).

With ``jax.distributed`` every process runs the same program. A batch of ``N`` rows is laid out
along the mesh's ``batch`` axis, and each process owns the rows its devices hold, a contiguous
block ``[lo, hi)`` (`Rows`); it draws exactly those rows' prompts from the input pipeline (shard
``lo / (hi - lo)`` of ``N / (hi - lo)``, which `lenrl.data.pipeline` makes the same examples, in
the same order, as the global batch of one process). So:

* process-local host data -> global array: `Rows.to_global`
  (`jax.make_array_from_process_local_data`);
* global array -> the whole value on every host: `to_host` (`multihost_utils.process_allgather`);
* process-local host data -> the whole value on every host: `Rows.gather` (both of the above);
* small host values every process must agree on: `agree_max`, `broadcast_json`, `gather_json`.

Where the mesh does not split a batch over processes (one process, or rows replicated across
processes), ``[lo, hi) = [0, N)`` and every process holds every row. On one process every helper
is the identity or ``np.asarray``, so single-process runs compute exactly what they did before.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding

from lenrl.sharding import AxisRules


def packed_sharding(mesh: Mesh, rules: AxisRules, shape: tuple[int, ...]) -> NamedSharding:
    """Sharding of a packed-batch field ``[K, rows or samples, ...]``: axis 1 over the mesh's
    batch axes (where it divides), the ``K`` bins and the rest whole."""
    axes = (None, "batch") + (None,) * (len(shape) - 2)
    return NamedSharding(mesh, rules.spec(axes, shape, mesh))


def is_main() -> bool:
    """Process 0: the one that writes logs, metrics, plots and exports."""
    return jax.process_index() == 0


def to_host(tree):
    """Every leaf as a numpy array of its whole global value, on every process.

    A leaf held whole by this process (any leaf on one process, a replicated one on many) is
    read directly; a leaf split over processes is all-gathered (a collective: call it on every
    process, in the same order).
    """

    def local(x):
        return not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated

    leaves, treedef = jax.tree.flatten(tree)
    split = [i for i, x in enumerate(leaves) if not local(x)]
    out = [None if i in split else np.asarray(x) for i, x in enumerate(leaves)]
    if split:
        gathered = multihost_utils.process_allgather([leaves[i] for i in split], tiled=True)
        for i, g in zip(split, gathered, strict=True):
            out[i] = np.asarray(g)
    return jax.tree.unflatten(treedef, out)


@dataclasses.dataclass(frozen=True)
class Rows:
    """The rows ``[lo, hi)`` of an ``N``-row batch that this process holds on ``mesh``."""

    mesh: Mesh
    rules: AxisRules
    size: int  # N, rows of the global batch
    lo: int
    hi: int

    @classmethod
    def of(cls, mesh: Mesh, rules: AxisRules, size: int) -> Rows:
        """This process's block of rows. Raises ValueError if it is not one contiguous block."""
        sharding = NamedSharding(mesh, rules.spec(("batch",), (size,), mesh))
        blocks = sorted(
            {
                (s.start or 0, size if s.stop is None else s.stop)
                for (s,) in sharding.addressable_devices_indices_map((size,)).values()
            }
        )
        lo, hi = blocks[0][0], blocks[-1][1]
        contiguous = all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
        if not contiguous or size % (hi - lo) or lo % (hi - lo):
            raise ValueError(
                f"process {jax.process_index()} holds rows {blocks} of a batch of {size}: not one "
                "aligned block. Order the mesh's devices by process (jax.devices() does) or "
                "change config.mesh."
            )
        return cls(mesh, rules, size, lo, hi)

    @property
    def count(self) -> int:
        """Distinct row blocks: the number of input-pipeline shards."""
        return self.size // (self.hi - self.lo)

    @property
    def index(self) -> int:
        """This process's input-pipeline shard."""
        return self.lo // (self.hi - self.lo)

    @property
    def local(self) -> slice:
        return slice(self.lo, self.hi)

    def sharding(self, ndim: int) -> NamedSharding:
        """Batch sharding of an ``[N, ...]`` array with ``ndim`` dimensions."""
        axes = ("batch",) + (None,) * (ndim - 1)
        shape = (self.size,) + (1,) * (ndim - 1)
        return NamedSharding(self.mesh, self.rules.spec(axes, shape, self.mesh))

    def to_global(self, tree):
        """This process's rows ``[hi - lo, ...]`` (numpy) -> global ``[N, ...]`` arrays."""

        def one(x):
            x = np.asarray(x)
            if x.shape[0] != self.hi - self.lo:
                raise ValueError(f"{x.shape[0]} local rows; this process holds {self.hi - self.lo}")
            shape = (self.size, *x.shape[1:])
            return jax.make_array_from_process_local_data(self.sharding(x.ndim), x, shape)

        return jax.tree.map(one, tree)

    def to_global_packed(self, tree):
        """This process's share ``[K, b, ...]`` of a packed batch (numpy, ``b`` rows or samples,
        the same ``b`` on every process) -> global ``[K, b * count, ...]`` arrays sharded over
        axis 1, the layout of `lenrl.train.run.Run.put_packed`; shares go in process order.

        ``b * count`` must be a multiple of the mesh's batch size, unless ``count`` is 1 (then
        every process must hold the same values)."""

        def one(x):
            x = np.asarray(x)
            shape = (x.shape[0], x.shape[1] * self.count, *x.shape[2:])
            sharding = packed_sharding(self.mesh, self.rules, shape)
            if self.count > 1 and sharding.spec[1] is None:
                raise ValueError(f"{shape[1]} rows do not split over the mesh's batch axis.")
            return jax.make_array_from_process_local_data(sharding, x, shape)

        return jax.tree.map(one, tree)

    def gather(self, tree):
        """This process's rows -> the whole ``[N, ...]`` numpy arrays on every process."""
        if jax.process_count() == 1:
            return jax.tree.map(np.asarray, tree)
        return to_host(self.to_global(tree))


def agree_max(value: int) -> int:
    """The largest of every process's ``value`` (e.g. a padded width all must share)."""
    if jax.process_count() == 1:
        return int(value)
    return int(np.max(multihost_utils.process_allgather(np.asarray(value, np.int64))))


def _encode(obj: Any, length: int | None = None) -> np.ndarray:
    raw = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    return raw if length is None else np.pad(raw, (0, length - raw.size))


def _decode(buf: np.ndarray) -> Any:
    return json.loads(bytes(np.asarray(buf, np.uint8)).rstrip(b"\0").decode())


def broadcast_json(obj: Any) -> Any:
    """Process 0's JSON-able ``obj`` on every process (others' ``obj`` is ignored)."""
    if jax.process_count() == 1:
        return obj
    raw = _encode(obj if is_main() else None)
    n = int(multihost_utils.broadcast_one_to_all(np.int64(raw.size)))
    buf = multihost_utils.broadcast_one_to_all(np.pad(raw[:n], (0, max(n - raw.size, 0))))
    return _decode(buf)


def gather_json(obj: Any) -> list:
    """Every process's JSON-able ``obj``, in process order, on every process."""
    if jax.process_count() == 1:
        return [obj]
    raw = _encode(obj)
    bufs = multihost_utils.process_allgather(_encode(obj, agree_max(raw.size)))
    return [_decode(b) for b in np.asarray(bufs)]
