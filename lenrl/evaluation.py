"""Evaluation: accuracy, lengths, accuracy per 1,000 tokens, pass@k, by difficulty, budget sweeps.

The quantities of spec section 6, computed from sampler outputs (lengths from token masks) and the
host-side verifier. ``python -m lenrl.eval`` is the command-line front end. With several processes
each one samples every example (the same replicated inputs) and gets the same results.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import jax
import numpy as np

from lenrl.rewards import format_reward, verify_batch
from lenrl.train.multihost import to_host
from lenrl.train.rollout import prompt_ids


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al. 2021, arXiv 2107.03374):
    ``1 - C(n - c, k) / C(n, k)``."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}.")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize(correct_NxK, length_NxK, truncated_NxK, difficulty_N=None, ks=(1,)) -> dict:
    """Metrics over ``N`` problems with ``K`` samples each (arrays ``[N, K]``)."""
    correct = np.asarray(correct_NxK) >= 0.5
    length = np.asarray(length_NxK, np.float64)
    n, k = correct.shape
    out = {
        "accuracy": correct.mean(),
        "length_mean": length.mean(),
        "length_median": np.median(length),
        "length_p90": np.percentile(length, 90),
        "length_correct_mean": length[correct].mean() if correct.any() else float("nan"),
        "length_correct_median": np.median(length[correct]) if correct.any() else float("nan"),
        "truncation_rate": np.asarray(truncated_NxK).mean(),
        "acc_per_1k_tokens": 1000.0 * correct.sum() / max(length.sum(), 1.0),
        "num_problems": n,
        "samples_per_problem": k,
    }
    for kk in ks:
        if kk <= k:
            out[f"pass_at_{kk}"] = np.mean([pass_at_k(k, int(c), kk) for c in correct.sum(1)])
    if difficulty_N is not None:
        difficulty_N = np.asarray(difficulty_N)
        for d in np.unique(difficulty_N):
            sel = difficulty_N == d
            out[f"accuracy/d{d}"] = correct[sel].mean()
            out[f"length_mean/d{d}"] = length[sel].mean()
    return {k: float(v) for k, v in out.items()}


def evaluate(
    sampler,
    params,
    tokenizer,
    examples: Sequence[dict],
    *,
    budget: int,
    verifier: str,
    key,
    num_samples: int = 1,
    ks: Sequence[int] = (1,),
    thinking_budget: int | None = None,
    think_in_prompt: bool = False,
) -> tuple[dict, list[dict]]:
    """Samples ``num_samples`` completions per example and scores them.

    Args:
      sampler: a `lenrl.sampling.Sampler`; params: the policy's `nnx.State`.
      examples: records with ``prompt``, ``answer`` and optionally ``difficulty``.
      budget: ``max_new_tokens`` for every sample.
      thinking_budget: with a sampler configured for budget forcing, the thinking cap.
    Returns:
      ``(metrics, records)``: `summarize` metrics and one record per sample (text, length...).
    """
    prompts = [prompt_ids(tokenizer, ex["prompt"]) for ex in examples for _ in range(num_samples)]
    out = sampler(params, prompts, budget, key, thinking_budget=thinking_budget)
    # Every process passes every prompt; the outputs may be split over processes: gathered.
    tokens, mask, lengths, truncated = to_host((out.tokens, out.mask, out.lengths, out.truncated))
    texts = tokenizer.batch_decode(
        [t[m] for t, m in zip(tokens, mask, strict=True)], skip_special_tokens=True
    )
    golds = [ex["answer"] for ex in examples for _ in range(num_samples)]
    correct = verify_batch(texts, golds, verifier)
    n, k = len(examples), num_samples
    difficulty = [int(ex.get("difficulty", 0)) for ex in examples]
    metrics = summarize(
        correct.reshape(n, k), lengths.reshape(n, k), truncated.reshape(n, k), difficulty, ks
    )
    fmt = [format_reward(t, think_in_prompt=think_in_prompt) for t in texts]
    metrics["format_ok"] = float(np.mean(fmt))
    records = [
        dict(
            prompt=examples[i // k]["prompt"],
            answer=golds[i],
            text=texts[i],
            correct=float(correct[i]),
            length=int(lengths[i]),
            truncated=bool(truncated[i]),
            difficulty=difficulty[i // k],
        )
        for i in range(n * k)
    ]
    return metrics, records


def budget_sweep(
    sampler,
    params,
    tokenizer,
    examples,
    *,
    budgets: Sequence[int],
    verifier: str,
    key,
    thinking: bool = False,
) -> list[dict]:
    """Accuracy and length at each budget: a hard cap, or with ``thinking`` a forced end of
    thinking at the budget (budget forcing). Returns one metrics dict per budget."""
    rows = []
    for i, b in enumerate(budgets):
        kwargs = dict(budget=int(b), thinking_budget=int(b)) if thinking else dict(budget=int(b))
        if thinking:
            kwargs["budget"] = sampler.cfg.max_new_tokens
        metrics, _ = evaluate(
            sampler,
            params,
            tokenizer,
            examples,
            verifier=verifier,
            key=jax.random.fold_in(key, i),
            **kwargs,
        )
        rows.append({"budget": int(b), **metrics})
    return rows
