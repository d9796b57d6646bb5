"""Verifier of the built-in synthetic task (``lenrl.data.synthetic``).

One rule: after the last ``</think>`` the completion is exactly ``answer <integer>`` (whitespace
and trailing stop/pad tokens aside), and the integer equals the gold answer. Anything else —
no ``</think>``, extra text, a second answer — scores 0.
"""

from __future__ import annotations

import re

from lenrl.rewards.format import THINK_CLOSE, strip_trailing_specials

_ANSWER = re.compile(r"\s*answer\s+(-?\d+)\s*")


def extract_synthetic(text: str) -> int | None:
    """The integer of ``... </think> answer N``; ``None`` if the completion breaks the rule."""
    text = strip_trailing_specials(text)
    if THINK_CLOSE not in text:
        return None
    match = _ANSWER.fullmatch(text.rsplit(THINK_CLOSE, 1)[1])
    return int(match.group(1)) if match else None


def verify_synthetic(pred_text: str, gold: str) -> float:
    """1.0 if the completion's answer equals ``gold`` (an integer string), else 0.0."""
    pred = extract_synthetic(pred_text)
    return float(pred is not None and pred == int(gold))
