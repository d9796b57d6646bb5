"""The sampler against cache-free references and transformers' ``generate`` on tiny models."""

import dataclasses

import jax
import numpy as np
import pytest
import tiny_hf
import torch
from flax import nnx

from lenrl.sampling import SamplingConfig, ThinkingConfig, make_sampler

BASE = SamplingConfig(greedy=True, buckets=(8, 16), max_new_tokens=12, pad_id=0)


def completions(out):
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    return [list(tokens[i, : lengths[i]]) for i in range(len(lengths))]


def check_layout(out, budgets, stop_ids, pad_id=0):
    """Mask, lengths, padding and ``truncated`` agree; budgets are never exceeded."""
    tokens, mask = np.asarray(out.tokens), np.asarray(out.mask)
    lengths, truncated = np.asarray(out.lengths), np.asarray(out.truncated)
    width = tokens.shape[1]
    np.testing.assert_array_equal(mask, np.arange(width)[None] < lengths[:, None])
    assert (lengths <= np.asarray(budgets)).all()
    assert (tokens[~mask] == pad_id).all()
    assert (np.asarray(out.logprobs)[~mask] == 0).all()
    for i, n in enumerate(lengths):
        body = list(tokens[i, : max(n - 1, 0)])
        assert not set(body) & set(stop_ids), f"row {i} continued past a stop token"
        ended_on_stop = n > 0 and tokens[i, n - 1] in stop_ids
        assert truncated[i] == (not ended_on_stop)
        if truncated[i]:
            assert n == budgets[i], f"row {i} truncated at {n} < budget {budgets[i]}"


def hf_greedy(hf_model, prompts, max_new, stop_ids, pad_id=0):
    t = max(len(p) for p in prompts)
    ids = np.full((len(prompts), t), pad_id, np.int64)
    att = np.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, t - len(p) :] = p
        att[i, t - len(p) :] = 1
    with torch.no_grad():
        gen = hf_model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(att),
            do_sample=False,
            max_new_tokens=max_new,
            eos_token_id=list(stop_ids),
            pad_token_id=pad_id,
        )
    return gen[:, t:].numpy()


def pick_stop(ref_outs, budgets):
    """A token that ends some rows early but not all (so both stop paths are exercised)."""
    counts = {}
    for out in ref_outs:
        for tok in set(out[1:]):
            counts[tok] = counts.get(tok, 0) + 1
    for tok in sorted(counts, key=lambda t: -counts[t]):
        hits = [tok in out[: b - 1] for out, b in zip(ref_outs, budgets, strict=True)]
        if any(hits) and not all(hits):
            return tok
    raise AssertionError("no usable stop token in the reference outputs")


@pytest.mark.parametrize("kind", tiny_hf.KINDS)
def test_greedy_equals_argmax_and_transformers(kind, tiny_model, reference):
    hf, model = tiny_model(kind)
    prompts = reference.prompts(0, 6, 8, tiny_hf.VOCAB)
    budgets = np.array([12, 9, 12, 4, 12, 11])
    free_run, _ = reference.greedy(model, prompts, budgets)
    stop = (pick_stop(free_run, budgets), tiny_hf.VOCAB - 1)  # several stop ids
    ref, _ = reference.greedy(model, prompts, budgets, stop)

    cfg = dataclasses.replace(BASE, stop_token_ids=stop)
    graphdef, state = nnx.split(model)
    out = make_sampler(graphdef, cfg)(state, prompts, budgets, jax.random.key(0))
    got = completions(out)
    assert got == ref
    check_layout(out, budgets, stop)
    assert np.asarray(out.truncated).any() and not np.asarray(out.truncated).all()
    # the loop ran exactly as long as the longest live sequence
    assert int(out.decode_steps) == max(len(r) for r in ref)

    hf_out = hf_greedy(hf, prompts, int(budgets.max()), stop)
    for i, row in enumerate(got):
        assert list(hf_out[i, : len(row)]) == row, f"row {i} differs from transformers"


def test_logprobs_equal_full_forward_and_sampling_is_keyed(tiny_model, reference):
    _, model = tiny_model("qwen2")
    cfg = dataclasses.replace(BASE, greedy=False, temperature=0.8, top_k=20, top_p=0.9)
    graphdef, state = nnx.split(model)
    sampler = make_sampler(graphdef, cfg)
    prompts = reference.prompts(1, 5, 8, tiny_hf.VOCAB)
    budgets = np.array([12, 3, 7, 12, 1])
    out = sampler(state, prompts, budgets, jax.random.key(7))
    np.testing.assert_array_equal(np.asarray(out.lengths), budgets)  # no stop ids: full budgets
    got = completions(out)

    logits = reference.logits(model, prompts, got)  # [N, L, V], no cache
    logp_ref = jax.nn.log_softmax(logits, axis=-1)
    method = cfg.method()
    mask = np.asarray(out.mask)
    for i, row in enumerate(got):
        j = np.arange(len(row))
        np.testing.assert_allclose(
            np.asarray(out.logprobs)[i, : len(row)], logp_ref[i, j, row], atol=1e-4
        )
        samp_ref = method.log_prob(logits[i, : len(row)], np.asarray(row))
        np.testing.assert_allclose(
            np.asarray(out.sampling_logprobs)[i, : len(row)], samp_ref, atol=1e-4
        )
    assert np.isfinite(np.asarray(out.sampling_logprobs)[mask]).all()

    again = sampler(state, prompts, budgets, jax.random.key(7))
    np.testing.assert_array_equal(np.asarray(again.tokens), np.asarray(out.tokens))
    other = sampler(state, prompts, budgets, jax.random.key(8))
    assert not np.array_equal(np.asarray(other.tokens), np.asarray(out.tokens))


@pytest.mark.parametrize("greedy, order", [(True, "budget_desc"), (False, "given")])
def test_slot_refill_equals_static_batch(greedy, order, tiny_model, reference):
    """Fewer slots than prompts, refilled mid-decode, give each prompt the same completion."""
    _, model = tiny_model("qwen2")
    graphdef, state = nnx.split(model)
    prompts = reference.prompts(2, 11, 16, tiny_hf.VOCAB)
    budgets = np.array([12, 1, 5, 0, 12, 2, 9, 3, 12, 6, 4])
    stop = (5, 17)
    base = dataclasses.replace(BASE, greedy=greedy, stop_token_ids=stop, queue_order=order)
    static = make_sampler(graphdef, base)(state, prompts, budgets, jax.random.key(3))
    refill_cfg = dataclasses.replace(base, num_slots=4, refill_rows=2, refill_min_free=1)
    refill = make_sampler(graphdef, refill_cfg)(state, prompts, budgets, jax.random.key(3))
    for name in ("tokens", "mask", "forced", "lengths", "truncated"):
        np.testing.assert_array_equal(getattr(refill, name), getattr(static, name), err_msg=name)
    np.testing.assert_allclose(refill.logprobs, static.logprobs, atol=1e-5)
    np.testing.assert_allclose(refill.sampling_logprobs, static.sampling_logprobs, atol=1e-5)
    check_layout(refill, budgets, stop)
    assert int(np.asarray(refill.lengths)[3]) == 0  # a zero budget yields an empty completion
    # 4 slots cannot finish 11 prompts in the longest completion's steps.
    assert int(refill.decode_steps) > int(np.asarray(static.lengths).max())
    if greedy:
        ref, _ = reference.greedy(model, prompts, budgets, stop)
        assert completions(refill) == ref


def test_budget_forcing(tiny_model, reference):
    _, model = tiny_model("qwen2")
    graphdef, state = nnx.split(model)
    prompts = reference.prompts(4, 5, 8, tiny_hf.VOCAB)
    budgets = np.array([12, 12, 12, 6, 12])
    free_run, _ = reference.greedy(model, prompts, budgets)
    end = free_run[0][1]  # prompt 0 closes its thinking by itself at step 1
    think = np.array([4, 2, 0, 5, 12])  # row 3: forcing is cut by max_new_tokens=6
    assert all(end not in free_run[i][: think[i]] for i in (1, 2, 3)), "pick another seed"
    others = [t for r in free_run[1:] for t in r]
    forced_ids = tuple(t for t in range(3, tiny_hf.VOCAB) if t not in others and t != end)[:2]
    thinking = ThinkingConfig(end_token_ids=(end,), forced_token_ids=forced_ids, answer_budget=3)
    cfg = dataclasses.replace(BASE, thinking=thinking)
    out = make_sampler(graphdef, cfg)(state, prompts, budgets, jax.random.key(0), think)
    ref, ref_forced = reference.greedy(model, prompts, budgets, (), thinking, think)
    got = completions(out)
    assert got == ref
    forced = np.asarray(out.forced)
    for i, flags in enumerate(ref_forced):
        np.testing.assert_array_equal(forced[i, : len(flags)], flags, err_msg=f"row {i}")
    assert not forced[0].any()  # closed its thinking before the budget
    assert list(np.nonzero(forced[1])[0]) == [2, 3] and len(got[1]) == 2 + 2 + 3
    assert list(np.nonzero(forced[2])[0]) == [0, 1]
    assert len(got[3]) == 6 and bool(out.truncated[3]) and list(np.nonzero(forced[3])[0]) == [5]
    assert not forced[4].any() and len(got[4]) == 12
    assert not (forced & ~np.asarray(out.mask)).any()
    assert (np.asarray(out.sampling_logprobs)[forced] == 0).all()
    # forced tokens still carry their policy log-probability (the loss decides to mask them)
    logits = reference.logits(model, prompts, got)
    for i in (1, 2):
        j = np.nonzero(forced[i])[0]
        want = jax.nn.log_softmax(logits[i, j], -1)[np.arange(len(j)), np.asarray(got[i])[j]]
        np.testing.assert_allclose(np.asarray(out.logprobs)[i, j], want, atol=1e-4)
