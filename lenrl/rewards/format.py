"""Format reward and answer region for ``<think> ... </think> answer`` completions (host strings).

A completion is well formatted when it has exactly one think block, closed, and a non-empty
answer after it:

    <think> reasoning (may be empty) </think> answer      -> 1.0
    (no think block) / two blocks / unclosed / no answer  -> 0.0

With ``think_in_prompt=True`` (chat templates that open ``<think>`` in the generation prompt, as
DeepSeek-R1 and Qwen3 do) the completion must instead hold no ``<think>`` and exactly one
``</think>``. Trailing stop/pad tokens left by decoding without ``skip_special_tokens`` are
ignored. Lengths are never computed here: they come from token masks on device.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# Stop and pad tokens that decoding may leave at the end of a completion.
_TRAILING_SPECIALS = re.compile(r"(?:\s*(?:<eos>|<pad>|<\|endoftext\|>|<\|im_end\|>|</s>))+\s*$")


def strip_trailing_specials(text: str) -> str:
    """``text`` without trailing ``<eos>``/``<pad>``/``<|endoftext|>``/``<|im_end|>``/``</s>``."""
    return _TRAILING_SPECIALS.sub("", text)


def format_reward(text: str, *, think_in_prompt: bool = False) -> float:
    """1.0 if ``text`` is ``<think> ... </think> answer`` (see module doc), else 0.0."""
    text = strip_trailing_specials(text)
    n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if think_in_prompt:
        ok = n_open == 0 and n_close == 1
    else:
        ok = n_open == 1 and n_close == 1 and text.lstrip().startswith(THINK_OPEN)
    return float(ok and bool(text.split(THINK_CLOSE, 1)[1].strip()))


def answer_region(text: str) -> str | None:
    """Where verifiers look for the answer.

    The text after the last ``</think>``; the whole text if it has no think tags at all; ``None``
    if a ``<think>`` was opened and never closed (the model ran out of budget while thinking).
    """
    text = strip_trailing_specials(text)
    if THINK_CLOSE in text:
        return text.rsplit(THINK_CLOSE, 1)[1]
    if THINK_OPEN in text:
        return None
    return text
