"""A few RL steps of a config on the current device: step times and peak device memory as JSON.

python benchmarks/rl_steps.py --config=configs/default.py --set rl.steps=5 --set sft.steps=0
python benchmarks/rl_steps.py --config=configs/default.py --shape=qwen2.5-0.5b --set rl.steps=3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import jax
import numpy as np
from sampler import SIZES  # benchmarks/sampler.py, beside this script

from lenrl import config_files

# Decoder bodies of real checkpoints, shared with the sampler benchmark (random weights; the vocab
# is the task tokenizer's).
SHAPES = {
    f"qwen2.5-{k}": {f: v for f, v in shape.items() if f != "vocab_size"}
    for k, shape in SIZES.items()
    if k != "smoke"
}


def _set(config, assignment: str):
    key, value = assignment.split("=", 1)
    *path, last = key.split(".")
    node = config
    for p in path:
        node = node[p]
    node[last] = type(node[last])(value) if not isinstance(node[last], bool) else value == "True"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/default.py")
    ap.add_argument("--shape", default="", choices=["", *SHAPES])
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    config = config_files.load(args.config)
    config.progress = False
    config.eval.sweep = ()
    config.checkpoint.export = False
    if args.shape:
        for k, v in SHAPES[args.shape].items():
            config.model[k] = v
        config.model.dtype = "bfloat16"
    for a in args.set:
        _set(config, a)
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    from lenrl.data.tokenizer import build_synthetic_tokenizer
    from lenrl.train.metrics import read_metrics
    from lenrl.train.setup import model_config
    from lenrl.train.trainer import train

    num_params = model_config(config, build_synthetic_tokenizer()).num_params()
    workdir = tempfile.mkdtemp()
    t0 = time.time()
    summary = train(config, workdir)
    wall = time.time() - t0
    rows = [r for r in read_metrics(workdir, "rl") if "reward" in r]
    steady = rows[1:] or rows
    stats = jax.devices()[0].memory_stats() or {}
    print(
        json.dumps(
            {
                "device": jax.devices()[0].device_kind,
                "shape": args.shape or "config",
                "params": num_params,
                "wall_s": wall,
                "rl_steps": len(rows),
                "step_s_median": float(
                    np.median([r["sample_time"] + r["update_time"] for r in steady])
                ),
                "sample_s_median": float(np.median([r["sample_time"] for r in steady])),
                "update_s_median": float(np.median([r["update_time"] for r in steady])),
                # Per step: a step whose completion width (bucketed by 32) is new compiles the
                # update and the log-prob programs again, which dominates at 0.5B shapes.
                "step_s": [round(r["sample_time"] + r["update_time"], 3) for r in rows],
                "peak_bytes": stats.get("peak_bytes_in_use"),
                "accuracy_after": summary.get("after", {}).get("accuracy"),
                "length_after": summary.get("after", {}).get("length_mean"),
            }
        )
    )


if __name__ == "__main__":
    main()
