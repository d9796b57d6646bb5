"""Sampler settings: one frozen dataclass, validated on construction, closed over by the jit.

Everything here is static (it fixes shapes or the traced program); per-call values that may
change every step without recompiling (budgets, thinking budgets, the key) are arguments of the
sampler instead.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from lenrl.sampling.methods import Greedy, Method, Sample

QUEUE_ORDERS = ("budget_desc", "given")


@dataclasses.dataclass(frozen=True)
class ThinkingConfig:
    """Budget forcing ("s1", Muennighoff et al. 2025, arXiv:2501.19393, here used to cap thinking).

    A sequence is *thinking* from its first new token until it emits one of ``end_token_ids``.
    When it has generated ``thinking_budget`` tokens (a per-sequence sampler argument) while still
    thinking, the sampler writes ``forced_token_ids`` (end of thinking + an answer prefix) one per
    decode step, then lets it generate at most ``answer_budget`` more tokens (never beyond its
    ``max_new_tokens``). Forced tokens are flagged in `SampleOutput.forced`.
    """

    end_token_ids: tuple[int, ...]  # any one closes the thinking, e.g. the id of "</think>"
    forced_token_ids: tuple[int, ...]  # written at the budget: e.g. ids of "\n</think>\n\nAnswer:"
    answer_budget: int = 64  # new tokens allowed after the forced ones

    def __post_init__(self):
        object.__setattr__(self, "end_token_ids", _ids(self.end_token_ids, "end_token_ids"))
        object.__setattr__(
            self, "forced_token_ids", _ids(self.forced_token_ids, "forced_token_ids")
        )
        if not self.end_token_ids:
            raise ValueError("ThinkingConfig.end_token_ids is empty: give the id(s) of </think>.")
        if not self.forced_token_ids:
            raise ValueError(
                "ThinkingConfig.forced_token_ids is empty: give the tokens written when the "
                "thinking budget runs out (at least the end-of-thinking token)."
            )
        if self.answer_budget < 0:
            raise ValueError(f"ThinkingConfig.answer_budget={self.answer_budget} must be >= 0.")


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Static settings of `make_sampler`. Sizes: N prompts per call, T prompt bucket, L width."""

    greedy: bool = False  # argmax decoding; temperature/top_k/top_p are then ignored
    temperature: float = 1.0  # > 0, divides the logits before top-k / top-p
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    top_p: float = 1.0  # nucleus mass in (0, 1]; 1.0 = off
    stop_token_ids: tuple[int, ...] = ()  # any one ends a sequence (it is part of the completion)
    pad_id: int = 0  # fills prompts' left padding and completions after their end
    buckets: tuple[int, ...] = (64, 128, 256, 512, 1024)  # prompt lengths T; one compile each
    max_new_tokens: int = 1024  # L: output width and largest per-sequence budget
    num_slots: int | None = None  # S: decode rows on device; None = N (one static batch)
    refill_rows: int | None = None  # R: prompts prefilled per refill; None = S, or S // 8 if set
    refill_min_free: int | None = None  # refill once this many slots are free; None = R
    queue_order: str = "budget_desc"  # "budget_desc" starts long budgets first; or "given"
    thinking: ThinkingConfig | None = None  # budget forcing; None = off
    cache_dtype: str | None = None  # KV cache dtype; None = the model's compute dtype
    decode_window: int | None = 128  # decode reads a KV window grown ~this many tokens at a time
    #                                  (`windows`); None = every step reads the whole T + L cache
    max_windows: int = 4  # at most this many windows: the program holds one decode loop each
    #                       (and one refill with slot refill), so compile time grows with it

    def __post_init__(self):
        object.__setattr__(self, "stop_token_ids", _ids(self.stop_token_ids, "stop_token_ids"))
        object.__setattr__(self, "buckets", tuple(int(b) for b in self.buckets))
        if not self.greedy:
            self.method()  # validates temperature / top_k / top_p
        if self.pad_id < 0:
            raise ValueError(f"pad_id={self.pad_id} must be >= 0.")
        b = self.buckets
        if not b or any(x < 1 for x in b) or list(b) != sorted(set(b)):
            raise ValueError(
                f"buckets={b} must be a non-empty, strictly increasing tuple of positive prompt "
                "lengths."
            )
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1.")
        for name in ("num_slots", "refill_rows", "refill_min_free"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name}={v} must be >= 1 (or None for the default).")
        if self.num_slots is not None and self.refill_rows is not None:
            if self.refill_rows > self.num_slots:
                raise ValueError(
                    f"refill_rows={self.refill_rows} exceeds num_slots={self.num_slots}; a refill "
                    "cannot fill more slots than exist."
                )
        if self.decode_window is not None and self.decode_window < 1:
            raise ValueError(
                f"decode_window={self.decode_window} must be >= 1 (or None: read the whole cache)."
            )
        if self.max_windows < 1:
            raise ValueError(f"max_windows={self.max_windows} must be >= 1.")
        if self.queue_order not in QUEUE_ORDERS:
            raise ValueError(f"queue_order={self.queue_order!r}: use one of {QUEUE_ORDERS}.")
        if self.thinking is not None:
            both = set(self.thinking.forced_token_ids) & set(self.stop_token_ids)
            if both:
                raise ValueError(
                    f"ThinkingConfig.forced_token_ids and stop_token_ids share {sorted(both)}: a "
                    "forced token would end the sequence it is meant to continue."
                )

    def method(self) -> Method:
        if self.greedy:
            return Greedy()
        return Sample(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)

    def bucket(self, length: int) -> int:
        """The smallest bucket that holds a prompt of ``length`` tokens (ValueError if none)."""
        for b in self.buckets:
            if length <= b:
                return b
        raise ValueError(
            f"a prompt of {length} tokens is longer than the largest bucket {self.buckets[-1]}; "
            "add a larger length to SamplingConfig.buckets."
        )

    def windows(self, bucket: int) -> tuple[int, ...]:
        """Cache widths ``W_1 < ... < W_K = T + L`` that decoding steps through for bucket ``T``.

        ``K = clip(round(L / decode_window), 1, max_windows)`` windows split the ``L`` new-token
        slots evenly: ``W_k = T + ceil(k * L / K)``. A remainder under half a step earns no
        window of its own, so ``L < 1.5 * decode_window`` keeps one window (one decode loop to
        compile). ``decode_window=None`` gives ``(T + L,)``: every step reads the whole cache.
        """
        t, width = bucket, self.max_new_tokens
        if self.decode_window is None:
            return (t + width,)
        k = min(max(int(width / self.decode_window + 0.5), 1), self.max_windows, width)
        return tuple(t + -(-i * width // k) for i in range(1, k + 1))

    def slots(self, num_prompts: int) -> Slots:
        """Resolves the slot knobs for ``num_prompts`` prompts per call."""
        s = min(self.num_slots or num_prompts, num_prompts)
        default_r = s if self.num_slots is None else max(1, s // 8)
        r = min(self.refill_rows or default_r, s)
        return Slots(num_slots=s, refill_rows=r, min_free=min(self.refill_min_free or r, s))


class Slots(NamedTuple):
    num_slots: int  # S, decode rows
    refill_rows: int  # R, rows of one refill prefill
    min_free: int  # a refill starts once this many slots are free (or none is live)


def _ids(ids, name: str) -> tuple[int, ...]:
    if isinstance(ids, int):
        ids = (ids,)
    ids = tuple(int(i) for i in ids)
    if any(i < 0 for i in ids):
        raise ValueError(f"{name}={ids}: token ids must be >= 0.")
    return ids
