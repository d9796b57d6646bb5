"""Properties of the built-in synthetic task (lenrl.data.synthetic)."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenrl.data import synthetic
from lenrl.data.synthetic import SyntheticConfig, sample_problem, split_of, synthetic_example
from lenrl.data.tokenizer import build_synthetic_tokenizer
from lenrl.rewards.format import format_reward
from lenrl.rewards.math import verify

STEP = re.compile(r"(\d) ([+-]) (\d) = (\d)")


def _eval_chain(text: str) -> int:
    """Independent reference: left-to-right integer evaluation of "3 + 4 - 5"."""
    words = text.split()
    value = int(words[0])
    for op, b in zip(words[1::2], words[2::2], strict=True):
        value = value + int(b) if op == "+" else value - int(b)
    return value


def _chain_steps(minimal: str) -> list[tuple[int, str, int, int]]:
    """(a, op, b, c) of each step of a minimal chain "<think> a op b = c op b = c ... </think>"."""
    words = minimal.split()[1 : minimal.split().index("</think>")]
    steps, prev = [], int(words[0])
    for op, b, eq, c in zip(words[1::4], words[2::4], words[3::4], words[4::4], strict=True):
        assert eq == "="
        steps.append((prev, op, int(b), int(c)))
        prev = int(c)
    return steps


def _strip_redundancy(verbose: str) -> str:
    text = re.sub(r" check \d [+-] \d = \d ok", "", verbose)
    return re.sub(r"^<think> problem [\d+\- ]+? (?=\d [+-] \d =)", "<think> ", text)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    index=st.integers(0, 10**6),
    split=st.sampled_from(["train", "eval"]),
)
def test_example_properties(seed, index, split):
    ex = synthetic_example(seed, index, split)
    assert ex == synthetic_example(seed, index, split)  # pure function of (seed, index, split)
    assert ex.index == index and 2 <= ex.difficulty <= 5
    assert ex.prompt.endswith(" = ?")
    expression = ex.prompt[: -len(" = ?")]
    assert len(expression.split()) == 2 * ex.difficulty + 1
    assert ex.answer == str(_eval_chain(expression))
    steps = _chain_steps(ex.minimal)
    assert len(steps) == ex.difficulty
    for a, op, b, c in steps:  # every written step is true integer arithmetic within 0..9
        assert c == (a + b if op == "+" else a - b) and 0 <= c <= 9 and 1 <= b <= 9
    for a, op, b, c in STEP.findall(ex.verbose):  # re-checks are true as well
        assert int(c) == (int(a) + int(b) if op == "+" else int(a) - int(b))
    assert _strip_redundancy(ex.verbose) == ex.minimal  # redundancy is all that differs
    for text in (ex.verbose, ex.minimal):
        assert verify(text, ex.answer, kind="synthetic") == 1.0
        assert format_reward(text) == 1.0
    assert split_of(sample_problem(seed, index, split), 10) == split


def test_seeds_change_problems():
    a = [synthetic_example(0, i).prompt for i in range(50)]
    b = [synthetic_example(1, i).prompt for i in range(50)]
    assert a != b and len(set(a)) > 40


def test_train_and_eval_never_share_a_problem():
    train = {synthetic_example(s, i, "train").prompt for s in (0, 1) for i in range(1500)}
    evals = {synthetic_example(s, i, "eval").prompt for s in (0, 3) for i in range(400)}
    assert train and evals and not train & evals
    # Short problems collide often inside a split, so the split must be by content, not index.
    assert any(synthetic_example(0, i, "eval").difficulty == 2 for i in range(400))


def test_difficulty_covers_configured_range():
    config = SyntheticConfig(min_ops=3, max_ops=4)
    levels = {synthetic_example(0, i, config=config).difficulty for i in range(200)}
    assert levels == {3, 4}


def test_minimal_is_well_under_half_of_mean_verbose_length_in_tokens():
    tok = build_synthetic_tokenizer()
    examples = [synthetic_example(0, i) for i in range(600)]
    # Completion tokens, counting the <eos> the chat template appends.
    verbose = np.array([len(tok(e.verbose)["input_ids"]) + 1 for e in examples])
    minimal = np.array([len(tok(e.minimal)["input_ids"]) + 1 for e in examples])
    assert minimal.mean() <= 0.5 * verbose.mean()
    assert 0.25 < minimal.mean() / verbose.mean() < 0.4  # documented: about 20 vs 61
    assert np.all(minimal <= verbose)
    # SFT must see a spread of verbosity, including fully minimal solutions.
    assert (verbose == minimal).any() and verbose.std() > 15
    assert verbose.max() <= 4 * 5 + 6 + 7 * 3 * 5 + 12  # bound for the sampler budget


def test_no_redundancy_config_gives_minimal():
    config = SyntheticConfig(max_checks_per_op=0, restate_prob=0.0)
    for i in range(20):
        ex = synthetic_example(0, i, config=config)
        assert ex.verbose == ex.minimal


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_ops": 0},
        {"min_ops": 4, "max_ops": 3},
        {"max_checks_per_op": -1},
        {"restate_prob": 1.5},
        {"eval_percent": 0},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        SyntheticConfig(**kwargs)


def test_bad_split_and_index():
    with pytest.raises(ValueError, match="unknown split"):
        synthetic_example(0, 0, "test")
    with pytest.raises(ValueError, match=">= 0"):
        synthetic_example(0, -1)


def test_record_matches_example():
    rec = synthetic.synthetic_record(5, 7, "eval")
    ex = synthetic_example(5, 7, "eval")
    assert rec == {
        "prompt": ex.prompt,
        "answer": ex.answer,
        "difficulty": ex.difficulty,
        "index": 7,
        "solution": ex.verbose,
    }
