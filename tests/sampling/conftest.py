"""Tiny parity models and cache-free references shared by the sampler tests."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_hf
from flax import nnx

from lenrl import models


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``get(kind) -> (hf_model, lenrl_model)``: tiny random checkpoints, built once per kind."""
    built = {}

    def get(kind):
        if kind not in built:
            path = tmp_path_factory.mktemp(f"tiny_{kind}")
            hf = tiny_hf.make(kind, path)
            built[kind] = (hf, models.from_pretrained(path))
        return built[kind]

    return get


def random_prompts(seed, n, max_len, vocab, min_len=1):
    rng = np.random.RandomState(seed)
    return [list(rng.randint(3, vocab, rng.randint(min_len, max_len + 1))) for _ in range(n)]


def _forward_fn(model):
    graphdef, state = nnx.split(model)

    @jax.jit
    def fwd(state, tokens, mask):
        return nnx.merge(graphdef, state)(tokens, attention_mask=mask)

    return lambda tokens, mask: np.asarray(fwd(state, jnp.asarray(tokens), jnp.asarray(mask)))


def right_padded(seqs, width):
    tokens = np.zeros((len(seqs), width), np.int32)
    mask = np.zeros((len(seqs), width), bool)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = s
        mask[i, : len(s)] = True
    return tokens, mask


def greedy_reference(model, prompts, budgets, stop_ids=(), thinking=None, think_budgets=None):
    """Step-by-step argmax of the full forward (no KV cache), right-padded to one width.

    With ``thinking`` (a `ThinkingConfig`) and ``think_budgets``, applies budget forcing as the
    sampler documents it, written independently here. Returns ``(completions, forced_flags)``.
    """
    n = len(prompts)
    limits = [int(b) for b in budgets]
    width = max(len(p) for p in prompts) + max(limits) + 1
    fwd = _forward_fn(model)
    seqs = [list(p) for p in prompts]
    outs, flags = [[] for _ in range(n)], [[] for _ in range(n)]
    done = [b == 0 for b in limits]
    still_thinking = [thinking is not None] * n
    pending = [[] for _ in range(n)]
    while not all(done):
        logits = fwd(*right_padded(seqs, width))
        for i in range(n):
            if done[i]:
                continue
            step = len(outs[i])
            if still_thinking[i] and step >= think_budgets[i]:
                still_thinking[i] = False
                pending[i] = list(thinking.forced_token_ids)
                limits[i] = min(limits[i], step + len(pending[i]) + thinking.answer_budget)
            is_forced = bool(pending[i])
            tok = pending[i].pop(0) if is_forced else int(np.argmax(logits[i, len(seqs[i]) - 1]))
            if thinking is not None and tok in thinking.end_token_ids:
                still_thinking[i] = False
            seqs[i].append(tok)
            outs[i].append(tok)
            flags[i].append(is_forced)
            if (tok in stop_ids and not is_forced) or len(outs[i]) >= limits[i]:
                done[i] = True
    return outs, flags


def full_forward_logits(model, prompts, completions):
    """Logits ``[N, L, V]`` predicting each completion token, from one full forward (no cache)."""
    seqs = [list(p) + list(c) for p, c in zip(prompts, completions, strict=True)]
    width = max(len(s) for s in seqs)
    logits = _forward_fn(model)(*right_padded(seqs, width))
    length = max(len(c) for c in completions)
    out = np.zeros((len(seqs), max(length, 1), logits.shape[-1]), np.float32)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        out[i, : len(c)] = logits[i, len(p) - 1 : len(p) - 1 + len(c)]
    return out


@pytest.fixture
def reference():
    """The reference functions above, as a namespace fixture."""

    class R:
        greedy = staticmethod(greedy_reference)
        logits = staticmethod(full_forward_logits)
        prompts = staticmethod(random_prompts)

    return R
