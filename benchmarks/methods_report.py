"""Tables and plots of the length-method sweep (`benchmarks/methods.py`), from per-run JSONs.

A run record is the trainer's ``summary.json`` (``before`` / ``after`` held-out metrics) plus
``method``, ``seed``, ``wall_s`` and, where the sweep adds them, ``curves`` (per RL step: train
``length_mean`` / ``accuracy``, ``base_budget``; held-out ``eval_*`` at the evaluation steps) and
``l1_targets`` (held-out length and accuracy at fixed prompt targets). Everything here is a pure
function of those records, so it can be tested on fabricated ones.

Spread over seeds is the sample standard deviation, ``std = sqrt(sum((x - mean)^2) / (n - 1))``
(``np.std(x, ddof=1)``), and 0 for a single seed.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend, no open figures

# Held-out metrics of `lenrl.evaluation.summarize` reported per method.
METRICS = ("accuracy", "length_mean", "acc_per_1k_tokens", "truncation_rate")
# Per-run scalars of the summary (and the sweep's wall time).
RUN_SCALARS = ("length_reduction", "accuracy_change", "wall_s")
_BY_DIFFICULTY = re.compile(r"^(accuracy|length_mean)/d(\d+)$")
SCHEDULE_METHODS = ("tlts", "siri")
L1_METHODS = ("l1_exact", "l1_max")


def load_runs(runs_dir: str) -> list[dict]:
    """Every ``*.json`` run record in ``runs_dir``, sorted by (method, seed)."""
    runs = []
    for path in sorted(glob.glob(os.path.join(runs_dir, "*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    return sorted(runs, key=lambda r: (r["method"], r["seed"]))


def mean_std(values) -> dict:
    """``{"mean", "std", "n", "values"}`` over seeds; ``std`` with ddof=1 (0 for one value)."""
    x = np.asarray(values, np.float64)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    return {"mean": float(np.mean(x)), "std": std, "n": len(x), "values": x.tolist()}


def _metric_keys(metrics: dict) -> list[str]:
    """The reported keys of one eval: `METRICS`, then accuracy/length by difficulty level."""
    by_d = sorted(
        (k for k in metrics if _BY_DIFFICULTY.match(k)),
        key=lambda k: (int(_BY_DIFFICULTY.match(k).group(2)), k),
    )
    return [k for k in METRICS if k in metrics] + by_d


def _stats(dicts: list[dict], keys) -> dict:
    return {k: mean_std([d[k] for d in dicts]) for k in keys if all(k in d for d in dicts)}


def aggregate(runs: list[dict], baseline: str = "none", order=None) -> dict:
    """Per method: mean and std over seeds of the held-out metrics after RL (and by difficulty),
    of ``length_reduction`` / ``accuracy_change`` / ``wall_s``; plus the warm start (the
    ``before`` metrics, one per seed: every method of a seed starts from the same policy)."""
    names = list(dict.fromkeys(r["method"] for r in runs))
    if order:
        names = [m for m in order if m in names] + [m for m in names if m not in order]
    methods = {}
    for name in names:
        rs = [r for r in runs if r["method"] == name]
        afters = [r["after"] for r in rs]
        entry = {"seeds": [r["seed"] for r in rs], **_stats(afters, _metric_keys(afters[0]))}
        entry.update(_stats(rs, RUN_SCALARS))
        methods[name] = entry
    first_per_seed = {}
    for r in runs:
        first_per_seed.setdefault(r["seed"], r["before"])
    befores = [first_per_seed[s] for s in sorted(first_per_seed)]
    warm = {"seeds": sorted(first_per_seed), **_stats(befores, _metric_keys(befores[0]))}
    return {"baseline": baseline, "warm_start": warm, "methods": methods}


def _cell(stat: dict | None, digits: int) -> str:
    if stat is None:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _difficulties(results: dict) -> list[int]:
    keys = {k for e in results["methods"].values() for k in e if _BY_DIFFICULTY.match(k)}
    return sorted({int(_BY_DIFFICULTY.match(k).group(2)) for k in keys})


def markdown_table(results: dict) -> str:
    """Two markdown tables (mean ± std over seeds): the headline metrics per method, then
    accuracy / mean length by difficulty level. The warm start is the first row."""
    base = results["baseline"]
    head = (
        "| method | seeds | accuracy | mean length | acc / 1k tokens | truncation rate "
        "| length vs warm start |\n|---|---|---|---|---|---|---|\n"
    )
    rows = []
    ws = results["warm_start"]
    rows.append(
        f"| warm start (before RL) | {len(ws['seeds'])} | {_cell(ws.get('accuracy'), 3)} "
        f"| {_cell(ws.get('length_mean'), 1)} | {_cell(ws.get('acc_per_1k_tokens'), 2)} "
        f"| {_cell(ws.get('truncation_rate'), 3)} | - |"
    )
    for name, e in results["methods"].items():
        label = f"**{name}** (baseline)" if name == base else name
        red = e.get("length_reduction")
        change = "-" if red is None else f"{-100 * red['mean']:+.0f}% ± {100 * red['std']:.0f}"
        rows.append(
            f"| {label} | {len(e['seeds'])} | {_cell(e.get('accuracy'), 3)} "
            f"| {_cell(e.get('length_mean'), 1)} | {_cell(e.get('acc_per_1k_tokens'), 2)} "
            f"| {_cell(e.get('truncation_rate'), 3)} | {change} |"
        )
    text = head + "\n".join(rows) + "\n"
    levels = _difficulties(results)
    if levels:
        text += "\nAccuracy / mean length by difficulty (number of operations):\n\n"
        text += "| method | " + " | ".join(f"d={d}" for d in levels) + " |\n"
        text += "|---|" + "---|" * len(levels) + "\n"
        for name, e in [("warm start (before RL)", ws), *results["methods"].items()]:
            cells = [
                f"{_cell(e.get(f'accuracy/d{d}'), 2)} / {_cell(e.get(f'length_mean/d{d}'), 1)}"
                for d in levels
            ]
            text += f"| {name} | " + " | ".join(cells) + " |\n"
    return text


def pareto_plot(results: dict, path: str, title: str = "") -> None:
    """Held-out accuracy against mean length, one point per method with ±std error bars on both
    axes; the baseline is a red star, the warm start a grey square."""
    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    base = results["baseline"]

    def point(e, **kw):
        x, y = e["length_mean"], e["accuracy"]
        ax.errorbar(x["mean"], y["mean"], xerr=x["std"], yerr=y["std"], capsize=3, **kw)
        return x["mean"], y["mean"]

    ws = results["warm_start"]
    if "length_mean" in ws:
        point(ws, fmt="s", color="tab:gray", label="warm start (before RL)")
    for name, e in results["methods"].items():
        if name == base:
            xy = point(e, fmt="*", color="tab:red", markersize=14, label=f"{name} (baseline)")
        else:
            xy = point(e, fmt="o", color="tab:blue", markersize=5)
        ax.annotate(name, xy, textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("mean completion length, held-out (tokens)")
    ax.set_ylabel("accuracy, held-out (greedy)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    n = max((len(e["seeds"]) for e in results["methods"].values()), default=0)
    ax.set_title(title or f"Length methods after RL (mean ± std over {n} seed{'s' * (n > 1)})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _by_method(runs, names):
    return {m: [r for r in runs if r["method"] == m] for m in names}


def l1_targets_plot(runs: list[dict], path: str, warm_length: float | None = None) -> None:
    """L1: produced held-out length (left) and accuracy (right) against the target written into
    the prompt, mean ± std over seeds; the diagonal is a perfect follower."""
    fig = Figure(figsize=(10, 4.2))
    lx, ax = fig.subplots(1, 2)
    drawn = False
    for name, rs in _by_method(runs, L1_METHODS).items():
        rs = [r for r in rs if r.get("l1_targets")]
        if not rs:
            continue
        drawn = True
        targets = [row["target"] for row in rs[0]["l1_targets"]]
        lens = np.array([[row["length_mean"] for row in r["l1_targets"]] for r in rs])
        accs = np.array([[row["accuracy"] for row in r["l1_targets"]] for r in rs])
        sd = lambda a: a.std(0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])  # noqa: E731
        lx.errorbar(targets, lens.mean(0), yerr=sd(lens), fmt="o-", capsize=3, label=name)
        ax.errorbar(targets, accs.mean(0), yerr=sd(accs), fmt="o-", capsize=3, label=name)
    if drawn:
        lo, hi = lx.get_xlim()
        lx.plot([lo, hi], [lo, hi], ":", color="k", label="length = target")
        if warm_length is not None:
            lx.axhline(warm_length, ls="--", color="tab:gray", label="warm start (no target)")
        lx.legend(fontsize=8)
        ax.legend(fontsize=8)
    else:
        lx.text(0.5, 0.5, "no L1 run in this sweep", ha="center", transform=lx.transAxes)
    lx.set_xlabel("target in the prompt (tokens)")
    lx.set_ylabel("produced length, held-out mean (tokens)")
    ax.set_xlabel("target in the prompt (tokens)")
    ax.set_ylabel("accuracy, held-out")
    ax.set_ylim(0, 1.02)
    for a in (lx, ax):
        a.grid(alpha=0.3)
    fig.suptitle("L1: requested target vs produced length (greedy, after RL)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _curve(rs: list[dict], xkey: str, ykey: str):
    """Mean and std over seeds of ``curves[ykey]`` at the steps every seed has."""
    series = [dict(zip(r["curves"][xkey], r["curves"][ykey], strict=True)) for r in rs]
    steps = sorted(set.intersection(*(set(s) for s in series)))
    y = np.array([[s[t] for t in steps] for s in series], np.float64)
    std = y.std(0, ddof=1) if len(y) > 1 else np.zeros(len(steps))
    return np.array(steps), y.mean(0), std


def schedules_plot(runs: list[dict], path: str, methods=SCHEDULE_METHODS) -> None:
    """Per method: train mean length, held-out mean length and the base budget (one token axis),
    held-out accuracy on a twin axis, over RL steps; mean (band: ± std) over seeds."""
    fig = Figure(figsize=(6 * len(methods), 4.8))
    axes = np.atleast_1d(fig.subplots(1, len(methods)))
    for ax, (name, rs) in zip(axes, _by_method(runs, methods).items(), strict=True):
        rs = [r for r in rs if r.get("curves")]
        ax.set_title(f"{name}: length and accuracy with the budget schedule")
        if not rs:
            ax.text(0.5, 0.5, f"no {name} run in this sweep", ha="center", transform=ax.transAxes)
            continue
        s, m, sd = _curve(rs, "step", "length_mean")
        ax.plot(s, m, color="tab:red", label="train mean length")
        ax.fill_between(s, m - sd, m + sd, color="tab:red", alpha=0.2)
        s, m, _ = _curve(rs, "step", "base_budget")
        ax.step(s, m, "--", where="post", color="tab:gray", label="budget schedule")
        if rs[0]["curves"].get("eval_step"):
            s, m, sd = _curve(rs, "eval_step", "eval_length_mean")
            ax.errorbar(s, m, yerr=sd, fmt="s", color="darkred", label="held-out mean length")
        ax.set_xlabel("RL step")
        ax.set_ylabel("tokens")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        acc = ax.twinx()
        if rs[0]["curves"].get("eval_step"):
            s, m, sd = _curve(rs, "eval_step", "eval_accuracy")
            acc.errorbar(s, m, yerr=sd, fmt="o-", color="tab:blue", label="held-out accuracy")
        acc.set_ylabel("accuracy, held-out", color="tab:blue")
        acc.set_ylim(0, 1.02)
        handles = [h for a in (ax, acc) for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(runs: list[dict], out_dir: str, baseline: str = "none", order=None) -> dict:
    """results.json, table.md, pareto.png, l1_targets.png and schedules.png in ``out_dir``."""
    results = aggregate(runs, baseline, order)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(markdown_table(results))
    pareto_plot(results, os.path.join(out_dir, "pareto.png"))
    warm = results["warm_start"].get("length_mean", {}).get("mean")
    l1_targets_plot(runs, os.path.join(out_dir, "l1_targets.png"), warm_length=warm)
    schedules_plot(runs, os.path.join(out_dir, "schedules.png"))
    return results
