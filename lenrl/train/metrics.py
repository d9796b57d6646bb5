"""Metrics to JSONL and TensorBoard, written by process 0 only."""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import logging


def _scalar(v):
    v = np.asarray(v)
    return float(v) if v.size == 1 else None


class MetricWriter:
    """Appends one JSON object per call to ``metrics.jsonl`` and writes TensorBoard scalars."""

    def __init__(self, workdir: str, *, tensorboard: bool = True):
        self.active = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if self.active:
            os.makedirs(workdir, exist_ok=True)
            if tensorboard:
                try:
                    from tensorboardX import SummaryWriter
                except ImportError:  # metrics.jsonl is still written
                    logging.warning("tensorboardX is not installed: no TensorBoard events.")
                else:
                    self._tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, metrics: dict, *, phase: str) -> None:
        if not self.active:
            return
        flat = {k: _scalar(v) for k, v in metrics.items()}
        flat = {k: v for k, v in flat.items() if v is not None and np.isfinite(v)}
        with open(self.path, "a") as f:
            f.write(json.dumps({"phase": phase, "step": int(step), "time": time.time(), **flat}))
            f.write("\n")
        if self._tb is not None:
            for k, v in flat.items():
                self._tb.add_scalar(f"{phase}/{k}", v, int(step))
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str, phase: str | None = None) -> list[dict]:
    """The rows of ``metrics.jsonl`` (of one phase), the writes of one step merged into one row."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows: dict[tuple, dict] = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if phase is None or r["phase"] == phase:
                rows.setdefault((r["phase"], r["step"]), {}).update(r)
    return list(rows.values())
