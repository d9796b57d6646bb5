"""benchmarks/grpo_step.py: a framework that timed out after logging its steps still reports."""

import argparse
import os
import statistics
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def grpo_step():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import grpo_step

        yield grpo_step
    finally:
        sys.path.remove(os.path.join(ROOT, "benchmarks"))


def _step(i, gen):
    s = dict(step_s=gen + 3.0, generate_s=gen, reference_s=1.0, update_s=2.0, other_s=0.0)
    return f"[trl] step {i}: {s}"


def test_steps_are_read_back_from_the_log(grpo_step):
    a = argparse.Namespace(prompts=4, group=2, max_new=10)
    log = "\n".join(["loading...", _step(0, 50.0), "noise [tunix] step 9: {}", _step(1, 7.0)])
    log += "\n" + _step(2, 9.0) + "\nTraceback (most recent call last):"
    out = grpo_step.from_log("trl", log, 170, a)
    assert out["status"].startswith("timed out after 170 s") and "3 steps" in out["status"]
    assert out["first_step_s"] == 53.0  # the compiling step is reported apart
    assert out["step_s"] == statistics.median([10.0, 12.0]) and out["steps_timed"] == 2
    assert out["completion_tokens_per_s"] == pytest.approx(4 * 2 * 10 / 11.0)


def test_a_log_without_a_timed_step_is_unavailable(grpo_step):
    a = argparse.Namespace(prompts=4, group=2, max_new=10)
    out = grpo_step.from_log("trl", _step(0, 50.0), 170, a)
    assert out == {"status": "unavailable: timed out after 170 s (--timeout-s)"}
