"""Answer extraction and verification for GSM8K and MATH-style answers (host strings).

Where the answer is looked for: ``lenrl.rewards.format.answer_region`` (after the last
``</think>``; nothing if a think block was never closed).

GSM8K. Gold: the number after the last ``####`` (``"... #### 1,234"``), or the whole gold if it
has none. Prediction: the number after the last ``####`` if present, else the content of the last
``\\boxed{}`` if present, else the last number of the answer region. Numbers may carry thousands
commas, a sign, a decimal part, ``$`` and ``%``; they are compared as exact rationals.

MATH. Prediction: the content of the last ``\\boxed{...}`` (or ``\\fbox{}``, ``\\boxed 5``) of the
answer region, nested braces matched; no box -> 0. Gold: the last box of the gold if it has one
(a full MATH solution), else the gold itself (MATH-500 style answers). Both are normalised
(``normalize_math``) — ``\\left``/``\\right``, spacing macros (``\\! \\, \\; \\:``), ``$``,
``^\\circ``, ``\\%``, trailing units (``\\text{ cm}``, ``\\mbox{...}``, ``5 inches``), a trailing
``.``, ``\\dfrac``/``\\tfrac`` -> ``\\frac``, ``\\frac12`` -> ``\\frac{1}{2}``, ``\\sqrt2`` ->
``\\sqrt{2}``, ``x = 5`` -> ``5``, thousands commas, spaces — then compared as exact rationals
when both parse as one (integers, decimals, ``a/b``, ``\\frac{a}{b}``, with a sign, so ``0.5``
equals ``\\frac{1}{2}``), else as strings. Not handled: symbolic equivalence (``\\sqrt{8}`` vs
``2\\sqrt{2}``), unordered lists, intervals with different brackets, mixed numbers.

``verify(pred_text, gold, kind)`` dispatches through ``VERIFIERS`` (``gsm8k``, ``math``,
``synthetic``) and returns 1.0 or 0.0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from lenrl.rewards.format import answer_region
from lenrl.rewards.synthetic import verify_synthetic

# -------------------------------------------------------------------------------------------
# Numbers.

_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_number(text: str) -> Fraction | None:
    """Exact value of a plain number (``"-1,234.50"``, ``"$5"``, ``"12%"``, ``"3/4"``) or None."""
    s = text.strip().replace("\u2212", "-").replace("$", "").replace("\\%", "").rstrip("%")
    s = s.replace(" ", "").rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    if _PLAIN_NUMBER.fullmatch(s):
        return Fraction(s)
    match = re.fullmatch(rf"({_PLAIN_NUMBER.pattern})/({_PLAIN_NUMBER.pattern})", s)
    if match and Fraction(match.group(2)) != 0:
        return Fraction(match.group(1)) / Fraction(match.group(2))
    return None


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (``"1,234"``, ``"-3.5"``), as written; or None."""
    matches = _NUMBER.findall(text.replace("\u2212", "-"))
    return matches[-1] if matches else None


# -------------------------------------------------------------------------------------------
# Boxed answers.


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` / ``\fbox{...}`` (nested braces) or ``\boxed 5``.

    None if there is no box or the last one is never closed.
    """
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    if text.startswith(" ", i):  # "\boxed 5": the argument is the next word
        match = re.match(r"\s+([^\s$]+)", text[i:])
        return match.group(1) if match else None
    if not text.startswith("{", i):
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{" and text[j - 1] != "\\":
            depth += 1
        elif text[j] == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


# -------------------------------------------------------------------------------------------
# MATH normalisation.

_SPACING = re.compile(r"\\[!,;:> ]|\\q?quad(?![a-zA-Z])")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![a-zA-Z])")
_TEXT_MACRO = r"\\(?:text|textrm|textbf|textit|mbox|mathrm|mathbf|operatorname)"
_TRAILING_TEXT = re.compile(rf"(?<=\S)\s*{_TEXT_MACRO}\s*\{{[^{{}}]*\}}(?:\^\{{?\d\}}?)?\s*$")
_WRAPPED_TEXT = re.compile(rf"{_TEXT_MACRO}\s*\{{([^{{}}]*)\}}")
_TRAILING_WORDS = re.compile(r"^(.*\d)\s+[a-zA-Z]+(?:\s+[a-zA-Z]+)*(?:\^\{?\d\}?)?$")
_FRAC = re.compile(r"^(-?)\\frac\{([^{}]+)\}\{([^{}]+)\}$")


def _strip_outer_braces(s: str) -> str:
    while len(s) >= 2 and s[0] == "{" and s[-1] == "}" and last_boxed("\\boxed" + s) == s[1:-1]:
        s = s[1:-1]
    return s


def normalize_math(answer: str) -> str:
    """Canonical string of a MATH-style final answer (see the module docstring)."""
    s = answer.strip().replace("\n", " ").replace("\u2212", "-")
    s = s.replace("\\displaystyle", "").replace("{,}", ",")
    s = _LEFT_RIGHT.sub("", _SPACING.sub(" ", s))
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°", "", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    s = s.strip().rstrip(".").strip()
    while _TRAILING_TEXT.search(s):  # units: "10 \text{ cm}", "4\mbox{ inches}^2"
        s = _TRAILING_TEXT.sub("", s).strip()
    s = _WRAPPED_TEXT.sub(r"\1", s)  # "\text{(A)}" -> "(A)"
    s = _TRAILING_WORDS.sub(r"\1", s.strip())  # "5 inches" -> "5"
    # A short variable assignment "x = 5" or "k=\frac12" -> its right-hand side.
    parts = s.split("=")
    if len(parts) == 2 and len(parts[0].strip()) <= 2:
        s = parts[1]
    # Shorthand TeX: \frac12 -> \frac{1}{2}, \frac1{2}, \frac{1}2, \sqrt2 -> \sqrt{2}.
    s = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\{([^{}]*)\}\s*([0-9a-zA-Z])", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt\s*([0-9a-zA-Z])", r"\\sqrt{\1}", s)
    s = _strip_outer_braces(s.replace(" ", "").rstrip("."))
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    return s


def math_value(normalized: str) -> Fraction | None:
    """Exact value of a normalised answer that is a number or a numeric fraction, else None."""
    match = _FRAC.fullmatch(normalized)
    if match:
        num, den = parse_number(match.group(2)), parse_number(match.group(3))
        if num is None or den is None or den == 0:
            return None
        return (-1 if match.group(1) else 1) * num / den
    if re.fullmatch(r"-?\d[\d.]*/-?\d[\d.]*|-?\.?\d[\d.]*", normalized):
        try:
            return parse_number(normalized)
        except (ValueError, ZeroDivisionError):
            return None
    return None


def math_equal(pred: str, gold: str) -> bool:
    """Equivalence of two final answers: exact rationals where both parse, else strings."""
    pred_n, gold_n = normalize_math(pred), normalize_math(gold)
    pred_v, gold_v = math_value(pred_n), math_value(gold_n)
    if pred_v is not None and gold_v is not None:
        return pred_v == gold_v
    return pred_n == gold_n


# -------------------------------------------------------------------------------------------
# Verifiers.


def gsm8k_gold(gold: str) -> Fraction | None:
    """Value of a GSM8K gold answer: the number after the last ``####``, else the whole gold."""
    text = gold.rsplit("####", 1)[1] if "####" in gold else gold
    number = parse_number(text)
    if number is None:
        found = last_number(text)
        number = parse_number(found) if found else None
    return number


def extract_gsm8k(pred_text: str) -> Fraction | None:
    """Value of a model's GSM8K answer: after ``####``, else the last box, else the last number."""
    region = answer_region(pred_text)
    if region is None:
        return None
    if "####" in region:
        found = _NUMBER.search(region.rsplit("####", 1)[1].replace("\u2212", "-"))
        return parse_number(found.group()) if found else None
    boxed = last_boxed(region)
    if boxed is not None:
        return math_value(normalize_math(boxed))
    found = last_number(region)
    return parse_number(found) if found else None


def verify_gsm8k(pred_text: str, gold: str) -> float:
    """1.0 if the model's number equals the gold number exactly, else 0.0."""
    pred, gold_value = extract_gsm8k(pred_text), gsm8k_gold(gold)
    return float(pred is not None and gold_value is not None and pred == gold_value)


def extract_math(pred_text: str) -> str | None:
    r"""Content of the last ``\boxed{}`` of the answer region, or None."""
    region = answer_region(pred_text)
    return None if region is None else last_boxed(region)


def verify_math(pred_text: str, gold: str) -> float:
    r"""1.0 if the last box of the answer equals the gold (its last box if it has one), else 0.0."""
    pred = extract_math(pred_text)
    if pred is None:
        return 0.0
    gold_answer = last_boxed(gold) if "\\boxed" in gold or "\\fbox" in gold else gold
    return float(gold_answer is not None and math_equal(pred, gold_answer))


VERIFIERS: dict[str, Callable[[str, str], float]] = {
    "gsm8k": verify_gsm8k,
    "math": verify_math,
    "synthetic": verify_synthetic,
}


def verify(pred_text: str, gold: str, kind: str = "math") -> float:
    """Correctness in {0.0, 1.0} of a completion against a gold answer, by ``kind``."""
    if kind not in VERIFIERS:
        raise ValueError(f"unknown verifier kind {kind!r}; valid kinds: {sorted(VERIFIERS)}")
    return VERIFIERS[kind](pred_text, gold)


def verify_batch(pred_texts: Sequence[str], golds: Sequence[str], kind: str) -> np.ndarray:
    """``verify`` over a batch: ``f32 [N]`` scores (reshape to ``[P, G]`` as needed)."""
    if len(pred_texts) != len(golds):
        raise ValueError(f"{len(pred_texts)} predictions but {len(golds)} gold answers")
    return np.asarray(
        [verify(p, g, kind) for p, g in zip(pred_texts, golds, strict=True)], np.float32
    )
