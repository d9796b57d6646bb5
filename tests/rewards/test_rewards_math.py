"""GSM8K and MATH answer extraction and verification (lenrl.rewards.math)."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenrl.rewards import VERIFIERS, verify, verify_batch
from lenrl.rewards.math import (
    extract_gsm8k,
    gsm8k_gold,
    last_boxed,
    math_equal,
    normalize_math,
    parse_number,
)


@pytest.mark.parametrize(
    "text,expected",
    [
        (r"so \boxed{5}", "5"),
        (r"\boxed{1} then \boxed{2}", "2"),  # the last box
        (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{1}{\sqrt{2}}"),  # nested braces
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces do not count
        (r"\boxed{{x}^{2}}", "{x}^{2}"),
        (r"\fbox{7}", "7"),
        (r"$\boxed 42$", "42"),
        (r"\boxed{\frac{1}{2}", None),  # never closed
        ("no box here 5", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    "pred,gold",
    [
        (r"\frac{1}{2}", "0.5"),
        (r"\dfrac{3}{4}", "0.75"),
        (r"\tfrac{3}{4}", r"\frac{3}{4}"),
        (r"\frac12", r"\frac{1}{2}"),
        (r"\frac1{2}", "1/2"),
        (r"\frac{1}2", ".5"),
        (r"-\frac{1}{2}", "-0.5"),
        (r"\frac{-1}{2}", "-1/2"),
        (r"\frac{2}{4}", r"\frac{1}{2}"),  # exact rationals
        ("10\\text{ cm}", "10"),
        ("10 \\text{ cm}^2", "10"),
        ("4\\mbox{ inches}", "4"),
        ("5 inches", "5"),
        (r"\text{5 cm}", "5"),
        (r"90^\circ", "90"),
        (r"90^{\circ}", "90"),
        (r"\$18.90", "18.9"),
        ("$18.90$", "18.90"),
        (r"50\%", "50"),
        ("1,234", "1234"),
        ("1{,}234", "1234"),
        (r"2\!000", "2000"),
        ("12.", "12"),
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"\left[ 0, \infty \right)", r"[0,\infty)"),
        ("x = 5", "5"),
        (r"k=\frac12", "0.5"),
        (r"\sqrt2", r"\sqrt{2}"),
        (r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt3}{2}"),
        (r"\text{(A)}", "(A)"),
        (r"\displaystyle \frac{1}{3}", r"\frac13"),
        ("{5}", "5"),
        ("-7", "\u22127"),
    ],
)
def test_math_equal(pred, gold):
    assert math_equal(pred, gold)
    assert verify(f"The answer is $\\boxed{{{pred}}}$.", gold, kind="math") == 1.0


@pytest.mark.parametrize(
    "pred,gold",
    [
        ("5", "50"),
        ("0.33", r"\frac{1}{3}"),
        (r"\frac{1}{2}", "2"),
        ("-5", "5"),
        (r"3.14", r"\pi"),
        ("(1,2)", "(2,1)"),
        ("1,2", "12"),  # not a thousands separator
        (r"\frac{1}{0}", "0"),
    ],
)
def test_math_not_equal(pred, gold):
    assert not math_equal(pred, gold)


def test_normalize_math_examples():
    assert normalize_math(r"\left( \frac12, 3 \right)") == r"(\frac{1}{2},3)"
    assert normalize_math(r"10\text{ cm}.") == "10"


def test_verify_math_answer_region():
    assert verify(r"<think> maybe \boxed{4} </think> so \boxed{5}", "5", "math") == 1.0
    assert verify(r"<think> maybe \boxed{5} </think> so \boxed{4}", "5", "math") == 0.0
    assert verify(r"<think> \boxed{5} and still thinking", "5", "math") == 0.0  # unclosed
    assert verify("the answer is 5", "5", "math") == 0.0  # MATH needs a box
    assert verify(r"\boxed{}", "5", "math") == 0.0
    gold_solution = r"We get $x = \boxed{\frac{3}{4}}$ in the end."
    assert verify(r"\boxed{0.75}", gold_solution, "math") == 1.0  # gold's last box


@pytest.mark.parametrize(
    "pred,value",
    [
        ("She has 1,234 apples.", 1234),
        ("It costs $5.00 in total.", 5),
        ("First 3, then 4, finally -12.", -12),
        ("The temperature is \u22124 degrees", -4),
        ("#### 72", 72),
        ("So #### 1,000 is the answer and not 7", 1000),
        ("The answer is \\boxed{72}. Check: 3", 72),
        ("<think> 5 </think> 6", 6),
        ("It is 0.5", Fraction(1, 2)),
    ],
)
def test_extract_gsm8k(pred, value):
    assert extract_gsm8k(pred) == value


def test_gsm8k_gold_and_verify():
    gold = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 1,072"
    assert gsm8k_gold(gold) == 1072
    assert gsm8k_gold("72") == 72
    assert verify("so 1072", gold, "gsm8k") == 1.0
    assert verify("so 1,072.0", gold, "gsm8k") == 1.0
    assert verify("so 1071", gold, "gsm8k") == 0.0
    assert verify("no number at all", gold, "gsm8k") == 0.0
    assert verify("", gold, "gsm8k") == 0.0
    assert verify("<think> 1072", gold, "gsm8k") == 0.0  # thinking never closed


@settings(max_examples=40, deadline=None)
@given(n=st.integers(-(10**7), 10**7))
def test_gsm8k_numbers_with_commas(n):
    assert verify(f"The total is {n:,}.", f"#### {n}", "gsm8k") == 1.0
    assert verify(f"#### {n + 1:,}", f"#### {n:,}", "gsm8k") == 0.0


@settings(max_examples=40, deadline=None)
@given(p=st.integers(-50, 50), q=st.integers(1, 50))
def test_fractions_compare_exactly(p, q):
    assert math_equal(rf"\frac{{{p}}}{{{q}}}", f"{p}/{q}")
    assert math_equal(rf"\dfrac{{{p}}}{{{q}}}", rf"\frac{{{2 * p}}}{{{2 * q}}}")
    assert not math_equal(rf"\frac{{{p}}}{{{q}}}", rf"\frac{{{p + 1}}}{{{q}}}")
    if 1000 % q == 0:  # terminating decimal in 3 places
        assert math_equal(rf"\frac{{{p}}}{{{q}}}", f"{p / q:.3f}")


def test_parse_number():
    assert parse_number("-1,234.50") == Fraction(-246900, 200)
    assert parse_number("3/4") == Fraction(3, 4)
    assert parse_number("12%") == 12
    assert parse_number("abc") is None
    assert parse_number("1/0") is None


def test_registry_and_batch():
    assert set(VERIFIERS) == {"gsm8k", "math", "synthetic"}
    with pytest.raises(ValueError, match="valid kinds"):
        verify("1", "1", kind="mmlu")
    scores = verify_batch([r"\boxed{1}", r"\boxed{2}", "none"], ["1", "1", "1"], "math")
    assert scores.dtype == np.float32 and scores.tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="gold"):
        verify_batch(["1"], [], "math")
