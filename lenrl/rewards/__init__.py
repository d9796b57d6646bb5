"""Verifiers and format reward (host-side, on decoded strings; lengths never come from here)."""

from lenrl.rewards.format import answer_region, format_reward
from lenrl.rewards.math import VERIFIERS, verify, verify_batch

__all__ = ["VERIFIERS", "answer_region", "format_reward", "verify", "verify_batch"]
