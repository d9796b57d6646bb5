"""Command line: ``python -m lenrl.launch --config=configs/x.py [--config.k=v] --workdir=DIR``.

Parses flags, sets up distribution (several hosts: `jax.distributed`), calls the trainer.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", "runs/default", "Where checkpoints, metrics and plots go."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
    from lenrl import distributed

    distributed.initialize()  # several hosts: jax.distributed; one host: nothing
    import jax

    from lenrl.train.trainer import train

    try:
        summary = train(_CONFIG.value, _WORKDIR.value)
    except (ValueError, FileNotFoundError, KeyError) as e:
        sys.exit(f"error: {e}")
    if summary and jax.process_index() == 0:
        b, a = summary["before"], summary["after"]
        print(
            json.dumps(
                {
                    "accuracy_before": round(b["accuracy"], 4),
                    "accuracy_after": round(a["accuracy"], 4),
                    "length_before": round(b["length_mean"], 2),
                    "length_after": round(a["length_mean"], 2),
                    "length_reduction": round(summary["length_reduction"], 4),
                    "workdir": _WORKDIR.value,
                }
            )
        )


def parse_flags(argv):
    """absl parsing, with a one-line error for an override of a key the config does not have."""
    try:
        return flags.FLAGS(argv)
    except AttributeError as e:  # ml_collections: unknown key in --config.a.b=...
        msg = str(e).replace("\\'", "'").replace("\\n", " ").replace("\n", " ").strip("'\"")
        bad = [a.split("=")[0] for a in argv if a.startswith("--config.")]
        sys.exit(
            f"error: unknown config key in {bad}: {msg}. Run with --helpfull or read the "
            "config file for the valid keys."
        )
    except flags.Error as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main, flags_parser=parse_flags)
