"""Resumable checkpoints with orbax: the train state pytree plus the data iterator's state.

A checkpoint holds ``state`` (a pytree: params, optimizer state, step, every penalty's state) and
``data`` (the grain iterator state, JSON). orbax writes each step into a temporary directory and
renames it when complete, so a run killed mid-save never leaves a checkpoint that is picked up.
The manager keeps the last ``keep`` checkpoints and, when a metric is given, the best one too.

The directory may be local or remote (``gs://...``): it is an `etils.epath.Path`, which orbax
takes as is. With several processes every process calls `save` and `restore` (orbax writes the
arrays collectively, each process its own shards); the data item holds every process's iterator
state (gathered to process 0, which writes the JSON), and each process restores its own.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from lenrl.train.multihost import gather_json

_PER_PROCESS = "lenrl_per_process"  # data item: {_PER_PROCESS: [state of process 0, 1, ...]}


class Checkpointer:
    """A thin owner of an `orbax.checkpoint.CheckpointManager` for one phase of a run."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        keep: int = 2,
        best_metric: str | None = None,
        best_mode: str = "max",
    ):
        policies = [ocp.checkpoint_managers.LatestN(n=keep)]
        if best_metric is not None:
            policies.append(
                ocp.checkpoint_managers.BestN(
                    get_metric_fn=lambda m: m[best_metric],
                    reverse=best_mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=True,
                )
            )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=False,
            create=True,
        )
        self.directory = as_path(directory)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(
        self, step: int, state: Any, data_state: dict | None = None, metrics: dict | None = None
    ) -> None:
        """Writes ``state`` and this process's ``data_state`` (every process calls it)."""
        args = {"state": ocp.args.StandardSave(state)}
        args["data"] = ocp.args.JsonSave({_PER_PROCESS: gather_json(data_state or {})})
        self.manager.save(step, args=ocp.args.Composite(**args), metrics=metrics, force=True)
        self.manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, int]:
        """Restores onto ``abstract_state`` (its shardings decide the placement, so a checkpoint
        written on one mesh restores onto another). Returns ``(state, data_state, step)``."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(_abstract, abstract_state)
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()
            ),
        )
        return out["state"], _own(dict(out["data"] or {})), step

    def close(self) -> None:
        self.manager.close()


def as_path(path: str | os.PathLike) -> epath.Path:
    """``path`` as an `epath.Path`: local paths made absolute, ``gs://...`` kept as is."""
    if "://" in os.fspath(path):
        return epath.Path(path)
    return epath.Path(os.path.abspath(os.fspath(path)))


def _own(data: dict) -> dict:
    """This process's iterator state. A checkpoint of another number of processes gives
    process 0's: every process has drawn the same number of batches, and batch ``k`` is the same
    global step for any number of shards (`lenrl.data.pipeline`). Older checkpoints hold the
    state itself."""
    if _PER_PROCESS not in data:
        return data
    states = data[_PER_PROCESS]
    return dict(states[jax.process_index()] if jax.process_index() < len(states) else states[0])


def _abstract(x):
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x
