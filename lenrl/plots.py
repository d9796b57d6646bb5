"""Plots of a run: accuracy and length per step, length histograms, accuracy vs budget."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend switch, no open figures


def training_curves(
    rows: list[dict], before: list[int], after: list[int], path: str, title: str = ""
) -> None:
    """Left: accuracy and mean length per RL step (budget dashed). Right: held-out length
    histograms before and after RL."""
    rows = sorted(rows, key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(11, 4))
    ax, hx = fig.subplots(1, 2)
    ax.plot(steps, [r.get("accuracy", np.nan) for r in rows], color="tab:blue", label="accuracy")
    ax.set_xlabel("RL step")
    ax.set_ylabel("accuracy (train samples)", color="tab:blue")
    ax.set_ylim(0, 1.02)
    lx = ax.twinx()
    lx.plot(
        steps, [r.get("length_mean", np.nan) for r in rows], color="tab:red", label="mean length"
    )
    if any("base_budget" in r for r in rows):
        lx.plot(
            steps,
            [r.get("base_budget", np.nan) for r in rows],
            "--",
            color="tab:gray",
            label="budget",
        )
    ev = [r for r in rows if "eval/accuracy" in r]
    if ev:  # held-out evaluations (greedy): the numbers the summary reports
        ax.plot(
            [r["step"] for r in ev],
            [r["eval/accuracy"] for r in ev],
            "o",
            color="tab:blue",
            label="held-out accuracy",
        )
        lx.plot(
            [r["step"] for r in ev],
            [r["eval/length_mean"] for r in ev],
            "s",
            color="tab:red",
            label="held-out mean length",
        )
        ax.legend(loc="lower left")
    lx.set_ylabel("tokens per completion (lines: train samples)", color="tab:red")
    lx.set_ylim(bottom=0)
    ax.set_title(title or "GRPO with length control")
    bins = np.linspace(0, max([*before, *after, 1]) + 1, 40)
    hx.hist(before, bins=bins, alpha=0.6, label=f"before RL (mean {np.mean(before):.1f})")
    hx.hist(after, bins=bins, alpha=0.6, label=f"after RL (mean {np.mean(after):.1f})")
    hx.set_xlabel("completion length (tokens), held-out problems")
    hx.set_ylabel("count")
    hx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def budget_curve(rows_by_label: dict[str, list[dict]], path: str) -> None:
    """Accuracy against the token budget, one line per label (e.g. before/after RL)."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for label, rows in rows_by_label.items():
        ax.plot([r["budget"] for r in rows], [r["accuracy"] for r in rows], "o-", label=label)
    ax.set_xlabel("token budget")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
