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
import tempfile
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


def cpu_env(devices: int, **extra: str) -> dict:
    """This environment without distributed/JAX settings, with ``devices`` fake CPU devices, the
    repository on ``PYTHONPATH`` and ``extra`` set."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LENRL_", "JAX_", "TPU_", "MEGASCALE_", "XLA_"))
    }
    env.update(
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        **extra,
    )
    return env


def one_and_two_processes(argv_one: list, argv_two: list, devices: int = 8) -> list:
    """Launches for `run_all`: ``argv_one`` as one process with ``devices`` fake CPU devices, then
    ``argv_two`` as two processes of ``devices // 2`` each, joined by ``jax.distributed`` on a
    free local port (the multi-process tests compare the two)."""
    import portpicker

    port = portpicker.pick_unused_port()
    launches = [(argv_one, cpu_env(devices))]
    for i in range(2):
        multi = dict(
            LENRL_COORDINATOR=f"127.0.0.1:{port}", LENRL_NUM_PROCESSES="2", LENRL_PROCESS_ID=str(i)
        )
        launches.append((argv_two, cpu_env(devices // 2, **multi)))
    return launches


def run_all(launches, timeout: int, logdir=None) -> list:
    """Starts every ``(argv, env)`` at once (output to a log file each, so no pipe fills up),
    waits for all, kills what is left on failure, and returns each one's JSON result (its last
    line of output) in order; a non-zero exit is an error showing that process's log."""
    logdir = logdir or tempfile.mkdtemp()
    procs = []
    try:
        for i, (argv, env) in enumerate(launches):
            log = open(os.path.join(logdir, f"process{i}.log"), "w+")
            procs.append((subprocess.Popen(argv, env=env, stdout=log, stderr=log), log))
        results = []
        for proc, log in procs:
            proc.wait(timeout=timeout)
            log.seek(0)
            out = log.read()
            if proc.returncode != 0:
                raise AssertionError(f"process failed:\n{out[-6000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()


def run_processes(code: str, processes: int = 2, devices: int = 4, timeout: int = 300):
    """Runs ``code`` in ``processes`` fresh processes joined by ``jax.distributed`` on 127.0.0.1
    (``lenrl.distributed.initialize`` reads ``LENRL_*``), ``devices`` fake CPU devices each, and
    returns every process's JSON result in process order."""
    import portpicker

    env = cpu_env(
        devices,
        LENRL_COORDINATOR=f"127.0.0.1:{portpicker.pick_unused_port()}",
        LENRL_NUM_PROCESSES=str(processes),
    )
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    return run_all([(argv, {**env, "LENRL_PROCESS_ID": str(i)}) for i in range(processes)], timeout)
