"""Runs a snippet in fresh Python processes with N fake CPU devices and returns their JSON results.

JAX fixes its device count at start-up, so tests that need a multi-device mesh run their body in a
subprocess: ``run(code, devices=8)`` executes ``code`` (which must ``print(json.dumps(...))`` as its
last line of output) with ``--xla_force_host_platform_device_count`` set;
``run_processes(code, processes=2, devices=4)`` runs it in several processes joined by
``jax.distributed`` (multi-process tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap


def run(code: str, devices: int = 8, timeout: int = 600):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_processes(code: str, processes: int = 2, devices: int = 4, timeout: int = 300):
    """Runs ``code`` in ``processes`` fresh processes joined by ``jax.distributed`` on 127.0.0.1
    (``lenrl.distributed.initialize`` reads ``LENRL_*``), ``devices`` fake CPU devices each, and
    returns every process's JSON result in process order."""
    import portpicker

    port = portpicker.pick_unused_port()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LENRL_", "JAX_", "TPU_", "MEGASCALE_", "XLA_"))
    }
    env.update(
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
        LENRL_COORDINATOR=f"127.0.0.1:{port}",
        LENRL_NUM_PROCESSES=str(processes),
        PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**env, "LENRL_PROCESS_ID": str(i)},
        )
        for i in range(processes)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise AssertionError(f"process failed:\n{out[-6000:]}")
    return [json.loads(out.strip().splitlines()[-1]) for out in outs]
