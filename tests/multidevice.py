"""Runs a snippet in a fresh Python process with N fake CPU devices and returns its JSON result.

JAX fixes its device count at start-up, so tests that need a multi-device mesh run their body in a
subprocess: ``run(code, devices=8)`` executes ``code`` (which must ``print(json.dumps(...))`` as its
last line of output) with ``--xla_force_host_platform_device_count`` set.
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
