"""Verifier of the synthetic task (lenrl.rewards.synthetic)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenrl.data.synthetic import ANSWER_WORD, THINK_CLOSE, synthetic_example
from lenrl.rewards import verify
from lenrl.rewards.synthetic import extract_synthetic, verify_synthetic


@pytest.mark.parametrize(
    "text,value",
    [
        ("<think> 3 + 4 = 7 </think> answer 7", 7),
        ("<think> 3 + 4 = 7 </think>answer 7 <eos> <pad>", 7),
        ("<think> </think> answer -2", -2),
        ("<think> answer 1 </think> answer 7", 7),  # only after the last </think>
        ("<think> 3 + 4 = 7 </think> answer 7 answer 8", None),  # extra text
        ("<think> 3 + 4 = 7 </think> 7", None),  # no answer word
        ("<think> 3 + 4 = 7 </think> answer", None),
        ("<think> 3 + 4 = 7 answer 7", None),  # never closed
        ("answer 7", None),
        ("", None),
    ],
)
def test_extract_synthetic(text, value):
    assert extract_synthetic(text) == value


@settings(max_examples=30, deadline=None)
@given(pred=st.integers(0, 9), gold=st.integers(0, 9))
def test_verify_synthetic_is_exact_match(pred, gold):
    text = f"<think> 1 + 1 = 2 </think> answer {pred}"
    assert verify_synthetic(text, str(gold)) == float(pred == gold)
    assert verify(text, str(gold), kind="synthetic") == float(pred == gold)


def test_rule_matches_the_task_format():
    ex = synthetic_example(0, 0)
    assert ex.minimal.endswith(f"{THINK_CLOSE} {ANSWER_WORD} {ex.answer}")
    assert verify_synthetic(ex.verbose, ex.answer) == 1.0
    wrong = str((int(ex.answer) + 1) % 10)
    assert verify_synthetic(ex.verbose, wrong) == 0.0
    truncated = ex.verbose[: ex.verbose.index(THINK_CLOSE)]
    assert verify_synthetic(truncated, ex.answer) == 0.0
