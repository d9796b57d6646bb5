"""Built-in synthetic reasoning task: short digit add/subtract chains with verbose solutions.

Why this task. The default run trains a ~1M-parameter transformer from scratch on 2 CPU cores
in minutes, so the task must be learnable from a few thousand supervised examples, must have a
verifiable answer, and must let the supervised model be *verbose in a way that costs nothing to
drop*, so that a length penalty can cut completion length by half or more with accuracy held.

Problem. A start digit ``a0`` and ``k`` operations ``(op_i, b_i)``, ``op`` in ``{+, -}``, ``b``
in ``1..9``, chosen so that every running value stays in ``0..9``: ordinary integer arithmetic,
no modulus, so every written step is literally true. From any value there are exactly 9 legal
operations, so problems are uniform over a space of ``10 * 9**k``. ``difficulty = k`` (default
``2..5``, uniform). Each step is a lookup in a 90-entry table plus a copy of the next operation
from the prompt (an induction-head pattern), which a two-layer transformer learns quickly.

    prompt:   3 + 4 - 5 + 6 = ?
    minimal:  <think> 3 + 4 = 7 - 5 = 2 + 6 = 8 </think> answer 8
    verbose:  <think> problem 3 + 4 - 5 + 6 3 + 4 = 7 check 3 + 4 = 7 ok - 5 = 2 + 6 = 8
              check 2 + 6 = 8 ok check 2 + 6 = 8 ok </think> answer 8

The thinking is a running-total chain ``a0 op1 b1 = v1 op2 b2 = v2 ...``. Redundant content,
all of it true, is added per example: with probability ``restate_prob`` a restatement
``problem <prompt>`` first, and ``n ~ UniformInt[0, max_checks_per_op * k]`` re-checks
``check v op b = v' ok`` of already computed steps, each placed right after a uniformly chosen
step. Dropping any redundancy leaves a correct solution, so (a) supervised training learns a
*distribution* over verbosity, (b) the minimal solution is about a third of the mean verbose
length (``4k + 6`` vs about ``15.5k + 7`` tokens counting the stop token: 20 vs 61 at the mean
``k = 3.5``), (c) verbosity never decides correctness.

Answer rule (one rule, checked by ``lenrl.rewards.synthetic.verify_synthetic``): after the
closing ``</think>`` the completion is exactly ``answer <integer>``.

Determinism and splits. An example is a pure function of ``(seed, split, index)``. The problem
space is split by a hash of the problem text (independent of the seed): a problem whose hash
falls in the first ``eval_percent`` of 100 buckets belongs to ``eval``, otherwise to ``train``,
and each split draws (rejection sampling) only its own problems. Train and eval therefore never
share a problem, for any seeds. Duplicates inside a split are possible (only 810 distinct
2-step problems exist).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import NamedTuple

import numpy as np

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_WORD = "answer"
CHECK_WORD = "check"
OK_WORD = "ok"
PROBLEM_WORD = "problem"
QUESTION_SUFFIX = "= ?"
# Every word the task writes (besides the special tokens of the tokenizer).
TASK_WORDS = (
    tuple(str(d) for d in range(10))
    + ("+", "-", "=", "?")
    + (ANSWER_WORD, CHECK_WORD, OK_WORD, PROBLEM_WORD)
)
SPLITS = ("train", "eval")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic task; the defaults are what the default run trains on."""

    min_ops: int = 2  # fewest operations per problem (difficulty = number of operations)
    max_ops: int = 5  # most operations per problem
    max_checks_per_op: int = 3  # re-checks per example ~ UniformInt[0, max_checks_per_op * ops]
    restate_prob: float = 0.5  # probability that the thinking starts with "problem <prompt>"
    eval_percent: int = 10  # share (in %) of the problem space held out for the eval split

    def __post_init__(self):
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"need 1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        if self.max_checks_per_op < 0:
            raise ValueError(f"max_checks_per_op must be >= 0, got {self.max_checks_per_op}")
        if not 0.0 <= self.restate_prob <= 1.0:
            raise ValueError(f"restate_prob must be in [0, 1], got {self.restate_prob}")
        if not 1 <= self.eval_percent <= 99:
            raise ValueError(f"eval_percent must be in [1, 99], got {self.eval_percent}")


DEFAULT_CONFIG = SyntheticConfig()


class Problem(NamedTuple):
    """A chain ``start op_1 b_1 ... op_k b_k``; ``values[i]`` is the running value after step i."""

    start: int
    ops: tuple[str, ...]  # [k] "+" or "-"
    operands: tuple[int, ...]  # [k] in 1..9
    values: tuple[int, ...]  # [k] running values in 0..9; values[-1] is the answer


class SyntheticExample(NamedTuple):
    """One example: what the pipeline, the SFT warm start, the tests and the plots need."""

    prompt: str  # user message, e.g. "3 + 4 - 5 + 6 = ?"
    answer: str  # gold answer, e.g. "8"
    verbose: str  # verbose completion (SFT target), "<think> ... </think> answer 8"
    minimal: str  # same solution without any redundancy
    difficulty: int  # number of operations
    index: int  # index of the example in its split


def _rng(seed: int, split: str, index: int, attempt: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {SPLITS}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng([seed, SPLITS.index(split), index, attempt])


def _draw_problem(rng: np.random.Generator, config: SyntheticConfig) -> Problem:
    k = int(rng.integers(config.min_ops, config.max_ops + 1))
    value = start = int(rng.integers(0, 10))
    ops, operands, values = [], [], []
    for _ in range(k):
        # From value v: "+ b" for b in 1..9-v, "- b" for b in 1..v: always exactly 9 choices.
        choice = int(rng.integers(0, 9))
        if choice < 9 - value:
            op, b, value = "+", choice + 1, value + choice + 1
        else:
            b = choice - (9 - value) + 1
            op, value = "-", value - b
        ops.append(op)
        operands.append(b)
        values.append(value)
    return Problem(start, tuple(ops), tuple(operands), tuple(values))


def problem_text(problem: Problem) -> str:
    """The chain without the question mark: ``"3 + 4 - 5 + 6"``."""
    parts = [str(problem.start)]
    for op, b in zip(problem.ops, problem.operands, strict=True):
        parts += [op, str(b)]
    return " ".join(parts)


def split_of(problem: Problem, eval_percent: int) -> str:
    """``"eval"`` or ``"train"`` from a seed-independent hash of the problem text."""
    digest = hashlib.blake2b(problem_text(problem).encode(), digest_size=8).digest()
    return "eval" if int.from_bytes(digest, "little") % 100 < eval_percent else "train"


def sample_problem(
    seed: int, index: int, split: str = "train", config: SyntheticConfig = DEFAULT_CONFIG
) -> Problem:
    """The problem at ``index`` of ``split``: a pure function of its arguments."""
    for attempt in range(10_000):
        problem = _draw_problem(_rng(seed, split, index, attempt), config)
        if split_of(problem, config.eval_percent) == split:
            return problem
    raise RuntimeError("no problem found for the split; is eval_percent extreme?")


def _step_words(prev: int, op: str, b: int, value: int) -> list[str]:
    return [str(prev), op, str(b), "=", str(value)]


def solution_text(
    problem: Problem, checks_after: tuple[int, ...] = (), restate: bool = False
) -> str:
    """Completion text; ``checks_after[i]`` re-checks of step i follow step i (``()`` = none)."""
    words = [THINK_OPEN]
    if restate:
        words += [PROBLEM_WORD, problem_text(problem)]
    words.append(str(problem.start))
    prev = problem.start
    steps = zip(problem.ops, problem.operands, problem.values, strict=True)
    for i, (op, b, value) in enumerate(steps):
        words += [op, str(b), "=", str(value)]
        n_checks = checks_after[i] if checks_after else 0
        words += ([CHECK_WORD] + _step_words(prev, op, b, value) + [OK_WORD]) * n_checks
        prev = value
    words += [THINK_CLOSE, ANSWER_WORD, str(problem.values[-1])]
    return " ".join(words)


def synthetic_example(
    seed: int, index: int, split: str = "train", config: SyntheticConfig = DEFAULT_CONFIG
) -> SyntheticExample:
    """Example ``index`` of ``split``: prompt, gold answer, verbose and minimal solutions."""
    problem = sample_problem(seed, index, split, config)
    k = len(problem.ops)
    # Verbosity uses its own stream (problem draws use attempts 0..9999).
    rng = np.random.default_rng([seed, SPLITS.index(split), index, 2**32 - 1])
    n_checks = int(rng.integers(0, config.max_checks_per_op * k + 1))
    checks_after = tuple(np.bincount(rng.integers(0, k, size=n_checks), minlength=k).tolist())
    restate = bool(rng.random() < config.restate_prob)
    return SyntheticExample(
        prompt=f"{problem_text(problem)} {QUESTION_SUFFIX}",
        answer=str(problem.values[-1]),
        verbose=solution_text(problem, checks_after, restate),
        minimal=solution_text(problem),
        difficulty=k,
        index=index,
    )


def synthetic_record(
    seed: int, index: int, split: str = "train", config: SyntheticConfig = DEFAULT_CONFIG
) -> dict:
    """Pipeline record ``{prompt, answer, difficulty, index, solution}`` (solution = verbose)."""
    ex = synthetic_example(seed, index, split, config)
    return {
        "prompt": ex.prompt,
        "answer": ex.answer,
        "difficulty": ex.difficulty,
        "index": ex.index,
        "solution": ex.verbose,
    }
