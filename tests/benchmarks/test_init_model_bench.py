"""benchmarks/init_model.py runs in tiny mode and reports both init methods (no timing checks)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_init_benchmark_tiny():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "init_model.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    leaf, single = out["methods"]["per_leaf"], out["methods"]["single_jit"]
    assert leaf["status"] == single["status"] == "ok", out
    assert leaf["params"] == single["params"] > 0
    assert leaf["seconds"] > 0 and single["compile_seconds"] > 0
