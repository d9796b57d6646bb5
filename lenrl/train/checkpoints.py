"""Resumable checkpoints with orbax: the train state pytree plus the data iterator's state.

A checkpoint holds ``state`` (a pytree: params, optimizer state, step, every penalty's state) and
``data`` (the grain iterator state, JSON). orbax writes each step into a temporary directory and
renames it when complete, so a run killed mid-save never leaves a checkpoint that is picked up.
The manager keeps the last ``keep`` checkpoints and, when a metric is given, the best one too.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """A thin owner of an `orbax.checkpoint.CheckpointManager` for one phase of a run."""

    def __init__(
        self,
        directory: str,
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
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(
        self, step: int, state: Any, data_state: dict | None = None, metrics: dict | None = None
    ) -> None:
        args = {"state": ocp.args.StandardSave(state)}
        args["data"] = ocp.args.JsonSave(data_state or {})
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
        return out["state"], dict(out["data"] or {}), step

    def close(self) -> None:
        self.manager.close()


def _abstract(x):
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x
