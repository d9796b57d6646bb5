"""Metrics to JSONL and TensorBoard, written by process 0 only; the workdir may be ``gs://...``."""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import logging
from etils import epath


def _scalar(v):
    v = np.asarray(v)
    return float(v) if v.size == 1 else None


def _remote(path: epath.Path) -> bool:
    return "://" in os.fspath(path)


class MetricWriter:
    """Appends one JSON object per call to ``metrics.jsonl`` and writes TensorBoard scalars.

    A local file is appended to; a remote one (object stores cannot append) is rewritten whole
    at each call from the rows kept in memory, after those already there when the run started.
    """

    def __init__(self, workdir: str | os.PathLike, *, tensorboard: bool = True):
        self.active = jax.process_index() == 0
        workdir = epath.Path(workdir)
        self.path = workdir / "metrics.jsonl"
        self._tb = None
        self._lines: list[str] | None = None  # remote: the whole file
        if not self.active:
            return
        workdir.mkdir(parents=True, exist_ok=True)
        if _remote(self.path):
            self._lines = self.path.read_text().splitlines() if self.path.exists() else []
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(os.fspath(workdir / "tb"))
            except ImportError:  # metrics.jsonl is still written
                logging.warning("tensorboardX is not installed: no TensorBoard events.")
            except Exception as e:  # noqa: BLE001 - e.g. gs:// without google-cloud-storage
                logging.warning("no TensorBoard events in %s: %s", workdir / "tb", e)

    def write(self, step: int, metrics: dict, *, phase: str) -> None:
        if not self.active:
            return
        flat = {k: _scalar(v) for k, v in metrics.items()}
        flat = {k: v for k, v in flat.items() if v is not None and np.isfinite(v)}
        line = json.dumps({"phase": phase, "step": int(step), "time": time.time(), **flat})
        if self._lines is None:
            with self.path.open("a") as f:
                f.write(line + "\n")
        else:
            self._lines.append(line)
            self.path.write_text("\n".join(self._lines) + "\n")
        if self._tb is not None:
            for k, v in flat.items():
                self._tb.add_scalar(f"{phase}/{k}", v, int(step))
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str | os.PathLike, phase: str | None = None) -> list[dict]:
    """The rows of ``metrics.jsonl`` (of one phase), the writes of one step merged into one row."""
    path = epath.Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows: dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if phase is None or r["phase"] == phase:
            rows.setdefault((r["phase"], r["step"]), {}).update(r)
    return list(rows.values())
