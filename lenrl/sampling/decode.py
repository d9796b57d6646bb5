"""The device side of sampling: slot state, refill prefill, one decode step, and the loops.

Pure functions, traced inside the one jit that `lenrl.sampling.sampler.make_sampler` builds.

Layout. ``S`` decode slots share one preallocated KV cache of ``C = T + L`` slots per row (``T``
the prompt bucket, ``L`` = ``SamplingConfig.max_new_tokens``). A slot holding prompt ``i`` (``P``
real tokens, left-padded to ``T``) keeps the first ``T - 1`` prompt tokens in cache slots
``0 .. T-2`` (written by the refill prefill, padding marked empty) and feeds the last prompt token
at slot ``T - 1`` as its first decode step, so every emitted token, the first included, comes out
of the same `decode_step`. Token ``g`` of the completion is fed back at slot ``T + g`` with
position ``P + g``.

Loops (the slot-refill policy). The queue holds all ``N`` prompts (``queue_order``). The outer
``while_loop`` runs while a slot is live or the queue is not empty; each iteration

1. refills, if one is due (see 2.): the first ``min(R, free, queued)`` free slots get the next
   queued prompts with ONE prefill of ``R`` rows (``refill_rows``; unused rows are masked),
   merged into those slots' cache rows (the rest of each row is marked empty, like
   `KVCache.clear_rows`);
2. decodes: an inner ``while_loop`` of single-token steps over all ``S`` slots, which exits as
   soon as no slot is live, or once ``min(refill_min_free, queued)`` slots are free while prompts
   wait.

With ``num_slots = None`` (``S = R = N``) this is one prefill then one decode loop: a static batch
whose cost follows the longest live sequence, not the largest budget.

Windows (``SamplingConfig.decode_window``). A decode step reads every slot of the cache it is
given, so reading all ``C`` slots while rows are short would cost mostly empty cache (at batch 256
on a Qwen2.5-0.5B shape with ``C = 640`` the cache read is twice the weights). The cache
therefore grows through the static widths ``W_1 < ... < W_K = C`` of `SamplingConfig.windows`:
the loops above run on a ``[S, W_k]`` cache and also stop when a live row's next slot would be
``W_k``; the cache is then padded with empty slots to ``W_{k+1}`` (one copy per window, never one
per step) and the loops resume. Slots are never moved, so every step feeds the same tokens at the
same slots and positions as with one window: the tokens are those of ``decode_window=None`` and
log-probs agree to f32 rounding (empty slots get exactly zero attention weight; only the order
of the sums changes). The window only grows, also under slot refill
(a refilled row starts at slot ``T - 1 < W_1``). Costs: the one compiled program holds ``K``
copies of the decode loop (and of the refill when ``S < N``; with ``S = N`` every prompt starts
before the first step), ``K <= max_windows``, so compile time grows with ``K``. Memory: each
layer's keys/values are padded separately and the old ones die right after, so XLA's peak stays
about one whole cache (test_windows.py checks the compiled program's temp memory).

Sampling keys are ``fold_in(fold_in(key, prompt_index), token_index)``, so a prompt's completion
does not depend on which slot or when it ran: slot refill and a static batch agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from lenrl.models import KVCache
from lenrl.sampling.config import SamplingConfig, Slots

Shard = Callable[[jax.Array, tuple], jax.Array]  # (array, logical axes) -> constrained array

CACHE_AXES = ("batch", "cache_length", "kv_heads", "head_dim")


class SampleOutput(NamedTuple):
    """Completions in the caller's order. ``N`` prompts, ``L`` = ``max_new_tokens`` columns."""

    tokens: jax.Array  # [N, L] i32, completion tokens; pad_id after the end
    mask: jax.Array  # [N, L] bool, True on the completion (stop and forced tokens included)
    logprobs: jax.Array  # [N, L] f32, log p_policy(token) at temperature 1; 0 off the mask
    sampling_logprobs: jax.Array  # [N, L] f32, log-prob under the sampling distribution; 0 for
    #                               greedy, forced tokens and off the mask
    forced: jax.Array  # [N, L] bool, tokens written by budget forcing (mask them in the loss)
    lengths: jax.Array  # [N] i32, completion lengths (= mask.sum(-1), stop token counted)
    truncated: jax.Array  # [N] bool, ended at its budget without a stop token
    decode_steps: jax.Array  # [] i32, decode steps the loop ran (cost follows this)


class Queue(NamedTuple):
    """The call's prompts and per-prompt budgets, constant through the loops."""

    tokens: jax.Array  # [N, T] i32, left-padded prompts
    lengths: jax.Array  # [N] i32, real prompt tokens
    budgets: jax.Array  # [N] i32, max new tokens (clipped to L)
    think_budgets: jax.Array  # [N] i32, thinking budget (used only with cfg.thinking)
    order: jax.Array  # [N] i32, queue position -> prompt index


@struct.dataclass
class Results:
    """Per-prompt result buffers, indexed by prompt (the caller's order)."""

    tokens: jax.Array  # [N, L] i32
    logprobs: jax.Array  # [N, L] f32
    sampling_logprobs: jax.Array  # [N, L] f32
    forced: jax.Array  # [N, L] bool
    lengths: jax.Array  # [N] i32
    stopped: jax.Array  # [N] bool, emitted a stop token


@struct.dataclass
class SlotState:
    """Everything the decode loops carry. ``S`` slots, cache of ``C`` slots per row."""

    cache: KVCache  # k, v: per layer [S, C, Hkv, D]; pos: [S, C] i32 (-1 = empty)
    token: jax.Array  # [S] i32, next token to feed (last prompt token, then last emitted)
    write: jax.Array  # [S] i32, cache slot that token goes to
    position: jax.Array  # [S] i32, its position in the sequence
    prompt: jax.Array  # [S] i32, prompt index held (N before the first refill)
    generated: jax.Array  # [S] i32, completion tokens emitted so far
    limit: jax.Array  # [S] i32, the sequence ends after this many tokens
    live: jax.Array  # [S] bool, holds an unfinished sequence
    thinking: jax.Array  # [S] bool, has not closed its thinking yet
    think_budget: jax.Array  # [S] i32, tokens allowed before forcing
    forcing: jax.Array  # [S] i32, index of the next forced token; 0 = not forcing
    queue_head: jax.Array  # [] i32, queue position of the next prompt to start
    steps: jax.Array  # [] i32, decode steps run
    out: Results


def init_state(
    model_cfg, cfg: SamplingConfig, slots: Slots, q: Queue, shard: Shard, cache_width: int
) -> SlotState:
    """Empty slots, an empty queue head and a cache of ``cache_width`` (first window) slots."""
    n, _ = q.tokens.shape
    s, width = slots.num_slots, cfg.max_new_tokens
    cache = KVCache.init(model_cfg, s, cache_width, cfg.cache_dtype)
    zeros_s = jnp.zeros((s,), jnp.int32)
    out = Results(
        tokens=jnp.full((n, width), cfg.pad_id, jnp.int32),
        logprobs=jnp.zeros((n, width), jnp.float32),
        sampling_logprobs=jnp.zeros((n, width), jnp.float32),
        forced=jnp.zeros((n, width), bool),
        lengths=jnp.zeros((n,), jnp.int32),
        stopped=jnp.zeros((n,), bool),
    )
    return SlotState(
        cache=_shard_cache(cache, shard),
        token=zeros_s,
        write=zeros_s,
        position=zeros_s,
        prompt=jnp.full((s,), n, jnp.int32),
        generated=zeros_s,
        limit=zeros_s,
        live=jnp.zeros((s,), bool),
        thinking=jnp.zeros((s,), bool),
        think_budget=zeros_s,
        forcing=zeros_s,
        queue_head=jnp.zeros((), jnp.int32),
        steps=jnp.zeros((), jnp.int32),
        out=out,
    )


def _shard_cache(cache: KVCache, shard: Shard) -> KVCache:
    return KVCache(
        tuple(shard(k, CACHE_AXES) for k in cache.k),
        tuple(shard(v, CACHE_AXES) for v in cache.v),
        shard(cache.pos, ("batch", "cache_length")),
    )


def grow(cache: KVCache, width: int, shard: Shard) -> KVCache:
    """Pads every row of the cache with empty slots (zero keys/values, position -1) to ``width``."""
    extra = width - cache.pos.shape[1]
    kv_pad = ((0, 0), (0, extra), (0, 0), (0, 0))
    return _shard_cache(
        KVCache(
            tuple(jnp.pad(k, kv_pad) for k in cache.k),
            tuple(jnp.pad(v, kv_pad) for v in cache.v),
            jnp.pad(cache.pos, ((0, 0), (0, extra)), constant_values=-1),
        ),
        shard,
    )


def refill(model, state: SlotState, q: Queue, slots: Slots, shard: Shard) -> SlotState:
    """Starts the next queued prompts in free slots with one prefill of ``R`` rows."""
    n, t = q.tokens.shape
    r = slots.refill_rows
    free_S = ~state.live
    n_fill = jnp.minimum(jnp.minimum(r, free_S.sum()), n - state.queue_head)
    rank_S = jnp.cumsum(free_S, dtype=jnp.int32) - 1
    take_S = free_S & (rank_S < n_fill)
    row_S = jnp.where(take_S, rank_S, 0)  # refill row feeding each slot

    arange_R = jnp.arange(r, dtype=jnp.int32)
    pid_R = q.order[jnp.minimum(state.queue_head + arange_R, n - 1)]
    tokens_RxT = q.tokens[pid_R]
    len_R = q.lengths[pid_R]
    mask_RxT = (jnp.arange(t) >= t - len_R[:, None]) & (arange_R < n_fill)[:, None]

    cache = state.cache
    head = t - 1  # prompt tokens held in the cache before the first decode step
    if head > 0:
        mask_RxH = mask_RxT[:, :head]
        pos_RxH = jnp.maximum(jnp.cumsum(mask_RxH, axis=1, dtype=jnp.int32) - 1, 0)
        small = KVCache.init(model.cfg, r, head, cache.k[0].dtype)
        small = _shard_cache(small, shard)
        _, small = model.extend(
            tokens_RxT[:, :head], pos_RxH, small, jnp.zeros((r,), jnp.int32), mask_RxH
        )

        def merge(big_SxCxKxD, new_RxHxKxD):
            fresh = shard(new_RxHxKxD[row_S], CACHE_AXES)
            old = big_SxCxKxD[:, :head]
            merged = jnp.where(take_S[:, None, None, None], fresh, old)
            return jax.lax.dynamic_update_slice_in_dim(big_SxCxKxD, merged, 0, axis=1)

        k = tuple(merge(b, s) for b, s in zip(cache.k, small.k, strict=True))
        v = tuple(merge(b, s) for b, s in zip(cache.v, small.v, strict=True))
        new_pos_SxH = small.pos[row_S]
    else:
        k, v = cache.k, cache.v
        new_pos_SxH = jnp.zeros((free_S.shape[0], 0), jnp.int32)
    rest = cache.pos.shape[1] - head
    new_pos_SxC = jnp.concatenate(
        [new_pos_SxH, jnp.full((free_S.shape[0], rest), -1, jnp.int32)], axis=1
    )
    pos = jnp.where(take_S[:, None], new_pos_SxC, cache.pos)
    cache = _shard_cache(KVCache(k, v, pos), shard)

    pid_S = pid_R[row_S]
    budget_S = q.budgets[pid_S]

    def put(new, old):
        return jnp.where(take_S, new, old)

    return state.replace(
        cache=cache,
        token=put(tokens_RxT[row_S, t - 1], state.token),
        write=put(head, state.write),
        position=put(len_R[row_S] - 1, state.position),
        prompt=put(pid_S, state.prompt),
        generated=put(0, state.generated),
        limit=put(budget_S, state.limit),
        live=state.live | (take_S & (budget_S > 0)),
        thinking=state.thinking | take_S,
        think_budget=put(q.think_budgets[pid_S], state.think_budget),
        forcing=put(0, state.forcing),
        queue_head=state.queue_head + n_fill,
    )


def decode_step(model, state: SlotState, key, cfg: SamplingConfig, shard: Shard) -> SlotState:
    """Feeds every slot's next token, emits one token per live slot, retires finished ones."""
    live = state.live
    hidden, cache = model.extend(
        state.token[:, None], state.position[:, None], state.cache, state.write, live[:, None]
    )
    logits_SxV = model.logits(hidden[:, 0])  # f32
    g = state.generated
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, state.prompt)
    keys = jax.vmap(jax.random.fold_in)(keys, g)
    tok, sampling_logp, policy_lse = cfg.method().step(logits_SxV, keys)

    forced = jnp.zeros_like(live)
    limit, thinking, forcing = state.limit, state.thinking, state.forcing
    th = cfg.thinking
    if th is not None:
        forced_ids = jnp.asarray(th.forced_token_ids, jnp.int32)
        n_forced = len(th.forced_token_ids)
        start = live & thinking & (g >= state.think_budget)
        forced = start | (live & (forcing > 0))
        idx = jnp.where(start, 0, forcing)
        tok = jnp.where(forced, forced_ids[jnp.minimum(idx, n_forced - 1)], tok)
        sampling_logp = jnp.where(forced, 0.0, sampling_logp)
        forcing = jnp.where(forced, jnp.where(idx + 1 < n_forced, idx + 1, 0), forcing)
        limit = jnp.where(start, jnp.minimum(limit, g + n_forced + th.answer_budget), limit)
        thinking = thinking & ~start & ~_isin(tok, th.end_token_ids)

    stop = live & ~forced & _isin(tok, cfg.stop_token_ids)
    policy_logp = jnp.take_along_axis(logits_SxV, tok[:, None], axis=-1)[:, 0] - policy_lse
    idx_S = jnp.where(live, state.prompt, state.out.tokens.shape[0])  # N drops the write
    o = state.out
    out = o.replace(
        tokens=o.tokens.at[idx_S, g].set(tok, mode="drop"),
        logprobs=o.logprobs.at[idx_S, g].set(policy_logp, mode="drop"),
        sampling_logprobs=o.sampling_logprobs.at[idx_S, g].set(sampling_logp, mode="drop"),
        forced=o.forced.at[idx_S, g].set(forced, mode="drop"),
        lengths=o.lengths.at[idx_S].set(g + 1, mode="drop"),
        stopped=o.stopped.at[idx_S].set(stop, mode="drop"),
    )
    step = live.astype(jnp.int32)
    generated = g + step
    return state.replace(
        cache=_shard_cache(cache, shard),
        token=jnp.where(live, tok, state.token),
        write=state.write + step,
        position=state.position + step,
        generated=generated,
        limit=limit,
        live=live & ~stop & (generated < limit),
        thinking=thinking,
        forcing=forcing,
        steps=state.steps + 1,
        out=out,
    )


def _isin(tok_S: jax.Array, ids: tuple[int, ...]) -> jax.Array:
    hit = jnp.zeros(tok_S.shape, bool)
    for i in ids:
        hit = hit | (tok_S == i)
    return hit


def generate(model, q: Queue, key, cfg: SamplingConfig, slots: Slots, shard: Shard):
    """Runs the refill / decode loops to completion, window by window; returns a `SampleOutput`."""
    n, t = q.tokens.shape
    windows = cfg.windows(t)

    def queued(s: SlotState):
        return s.queue_head < n

    def refill_due(s: SlotState):
        free = slots.num_slots - s.live.sum()
        return queued(s) & (free >= jnp.minimum(slots.min_free, n - s.queue_head))

    def run_window(s: SlotState, width: int | None, with_refill: bool) -> SlotState:
        """The loops over a cache of ``width`` slots (None: the last window, never outgrown)."""

        def fits(s: SlotState):  # every live row's next token has a slot in this window
            return True if width is None else ~jnp.any(s.live & (s.write >= width))

        def decode_loop(s: SlotState) -> SlotState:
            return jax.lax.while_loop(
                lambda s: s.live.any() & ~refill_due(s) & fits(s),
                lambda s: decode_step(model, s, key, cfg, shard),
                s,
            )

        if not with_refill:
            return decode_loop(s)

        def outer(s: SlotState) -> SlotState:
            s = jax.lax.cond(
                refill_due(s), lambda s: refill(model, s, q, slots, shard), lambda s: s, s
            )
            return decode_loop(s)

        return jax.lax.while_loop(lambda s: (s.live.any() | queued(s)) & fits(s), outer, s)

    # With S >= N every prompt starts before the first decode step (a refill is due while any
    # prompt waits), so windows after the first need no refill code.
    late_refill = slots.num_slots < n
    state = init_state(model.cfg, cfg, slots, q, shard, windows[0])
    for i, width in enumerate(windows):
        if i:
            state = state.replace(cache=grow(state.cache, width, shard))
        last = i == len(windows) - 1
        state = run_window(state, None if last else width, i == 0 or late_refill)
    o = state.out
    mask = jnp.arange(cfg.max_new_tokens)[None, :] < o.lengths[:, None]
    return SampleOutput(
        tokens=jnp.where(mask, o.tokens, cfg.pad_id),
        mask=mask,
        logprobs=jnp.where(mask, o.logprobs, 0.0),
        sampling_logprobs=jnp.where(mask, o.sampling_logprobs, 0.0),
        forced=o.forced & mask,
        lengths=o.lengths,
        truncated=~o.stopped,
        decode_steps=state.steps,
    )
