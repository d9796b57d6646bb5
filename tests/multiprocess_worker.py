"""One process of `tests/train/test_multiprocess.py`: trains the tiny config, then resumes it.

python tests/multiprocess_worker.py WORKDIR [--resume]

With ``LENRL_COORDINATOR`` / ``LENRL_NUM_PROCESSES`` / ``LENRL_PROCESS_ID`` set it joins a
``jax.distributed`` run (`lenrl.distributed.initialize`); without, it is one process. It trains
`config()` for ``RL_STEPS`` RL steps; with ``--resume`` it first stops after one RL step (a
finished run of ``rl.steps = 1``), then runs again on the same workdir with ``rl.steps = 2``,
which restores every process from the step-1 checkpoints. The last line of output is JSON.
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RL_STEPS = 2


def config():
    """configs/default.py:smoke, shrunk: one layer, 2 SFT + 2 RL steps, small evaluations."""
    from lenrl import config_files

    c = config_files.load(os.path.join(ROOT, "configs", "default.py"), "smoke")
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 2, 2, 2  # tensor inside a process, batch across
    c.model.num_layers = 1
    c.sft.steps = 2
    c.rl.steps = RL_STEPS
    c.rl.loss.beta = 0.0  # no reference model: fewer programs to compile
    c.data.num_eval = 4
    c.budget.hparams.value = 48
    c.budget.max_new_tokens = 48
    c.eval.budget = 48
    c.eval.sweep = ()
    c.checkpoint.every = 1
    c.checkpoint.export = True  # a collective gather of the parameters, written by process 0
    return c


def main(argv):
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    from lenrl import distributed

    started = distributed.initialize()
    import jax
    from etils import epath

    from lenrl.train.trainer import train

    workdir, resume = epath.Path(argv[1]), "--resume" in argv[2:]
    c = config()
    if resume:
        c.rl.steps = 1
        train(c, workdir)
        c.rl.steps = RL_STEPS
    summary = train(c, workdir)
    print(
        json.dumps(
            dict(
                started=started,
                process_index=jax.process_index(),
                process_count=jax.process_count(),
                device_count=jax.device_count(),
                after=summary["after"],
            )
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv)
