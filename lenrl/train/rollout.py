"""One RL rollout: prompts -> budgets -> samples -> verification -> shaped rewards -> advantages.

The device does the sampling and every formula (budgets, penalties, advantages are pure JAX,
jitted once by `Rollout`); the host does what only the host can: apply the chat template,
decode completions for the verifier, and assemble the fixed-shape `UpdateBatch`. Lengths and
truncation come from the sampler's token masks, never from decoded strings.

With several processes (`lenrl.train.multihost`), each process draws, tokenises, decodes and
verifies only its own prompts (rows ``[lo, hi)`` of the ``P * G`` samples); the sampler runs on
global arrays made from every process's rows; the small per-sample results (scores, lengths,
prompt tokens) are gathered so that every process holds the same global arrays and computes the
same penalty state, advantages, group filtering and `UpdateBatch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from lenrl.algorithms.filtering import keep_groups
from lenrl.penalties.base import LengthMethod, Rollouts
from lenrl.rewards import format_reward, verify_batch
from lenrl.sampling.prompts import PromptBatch, pad_prompts
from lenrl.sampling.sampler import Sampler
from lenrl.train.batch import UpdateBatch
from lenrl.train.multihost import Rows, agree_max, to_host

# What L1 / HBPO write into the prompt for a length target (spec section 1).
TARGET_TEMPLATES = {
    "l1_exact": "Think for {n} tokens.",
    "l1_max": "Think for maximum {n} tokens.",
    "hbpo": "I will answer within {n} tokens.",
}


def prompt_ids(tokenizer, question: str, target: int = 0, template: str | None = None):
    """Token ids of the chat-formatted prompt, with the length instruction when ``target > 0``."""
    content = question if not (target and template) else f"{question} {template.format(n=target)}"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer.encode(text, add_special_tokens=False)


@dataclasses.dataclass
class Rollout:
    """Everything one rollout needs, fixed for a run. Build once; call `collect` per step."""

    tokenizer: object
    sampler: Sampler
    method: LengthMethod
    advantage: Callable  # (rewards, *, valid, correct, length) -> advantages, [P, G]
    base_budget: Callable  # step -> base budget (i32)
    verifier: str  # lenrl.rewards.VERIFIERS key
    prompts_per_step: int  # P
    group_size: int  # G
    prompt_len: int  # Tp, left-padded prompt width of the update batch
    dynamic_sampling: bool = False
    max_draws: int = 4  # prompt batches drawn at most per step with dynamic sampling
    ref_logprobs: Callable | None = None  # (tokens, attn_mask) -> [N, Tc]; None when beta = 0
    width_bucket: int = 32  # update-batch completion width is a multiple of this
    max_widths: int = 8  # ... and takes at most this many values (each compiles the update once)
    think_in_prompt: bool = False  # the chat template opens <think> (R1-distill style)
    rows: Rows | None = None  # this process's rows of the P * G samples; None = all of them

    def __post_init__(self):
        self._budgets = jax.jit(self.method.budgets)
        self._apply = jax.jit(self.method.apply)
        self._advantage = jax.jit(self.advantage)
        self._template = TARGET_TEMPLATES.get(self.method.name)

    def _local(self, n: int) -> slice:
        return slice(0, n) if self.rows is None else self.rows.local

    def _gather(self, tree):
        """This process's sample rows -> the global rows, on every process."""
        return jax.tree.map(np.asarray, tree) if self.rows is None else self.rows.gather(tree)

    def _prompt_rows(self, prompts: list[list[int]]):
        """Prompts left-padded with 0 to ``prompt_len``: ``(tokens [n, Tp] i32, mask [n, Tp])``."""
        tokens = np.zeros((len(prompts), self.prompt_len), np.int32)
        mask = np.zeros(tokens.shape, bool)
        for i, ids in enumerate(prompts):
            if len(ids) > self.prompt_len:
                raise ValueError(
                    f"a prompt has {len(ids)} tokens, more than config.data.max_prompt_len="
                    f"{self.prompt_len}; raise config.data.max_prompt_len."
                )
            tokens[i, self.prompt_len - len(ids) :] = ids
            mask[i, self.prompt_len - len(ids) :] = True
        return tokens, mask

    def _sample(self, params, prompts: list[list[int]], budgets_N: np.ndarray, key):
        """The sampler over all ``N`` samples; ``prompts`` are this process's rows of them."""
        if jax.process_count() == 1:
            return self.sampler(params, prompts, budgets_N, key)
        cfg = self.sampler.cfg
        local = pad_prompts(prompts, cfg, self.sampler.model_cfg.vocab_size)
        t = agree_max(local.tokens.shape[1])  # every process pads to the same bucket
        pad = ((0, 0), (t - local.tokens.shape[1], 0))
        tokens = np.pad(local.tokens, pad, constant_values=cfg.pad_id)
        batch = PromptBatch(*self.rows.to_global((tokens, local.lengths)))
        return self.sampler(params, batch, budgets_N, key)

    def _draw(self, params, pstate, batch: dict, step: int, key):
        """Samples and scores one prompt batch (this process's prompts of it). Returns per-group
        numpy arrays of the whole batch (the same on every process), the state and the texts
        of this process's samples."""
        g = self.group_size
        rep = lambda x: np.repeat(np.asarray(x), g, axis=0)  # noqa: E731 - per prompt -> per row
        first = self._gather({"index": rep(batch["index"]), "difficulty": rep(batch["difficulty"])})
        p = len(first["index"]) // g
        index = jnp.asarray(first["index"][::g], jnp.int32)
        budget_PxG, target_PxG = to_host(self._budgets(pstate, index, step, self.base_budget(step)))
        rows = self._local(p * g)
        lo = rows.start // g
        prompts = [
            prompt_ids(
                self.tokenizer, batch["prompt"][i], int(target_PxG[lo + i, j]), self._template
            )
            for i in range(len(batch["prompt"]))
            for j in range(g)
        ]
        prompt_tokens, prompt_mask = self._prompt_rows(prompts)  # fails before sampling
        out = self._sample(params, prompts, budget_PxG.reshape(-1), key)
        host = to_host(
            dict(
                tokens=out.tokens,
                mask=out.mask,
                logp=out.logprobs,
                forced=out.forced,
                length=out.lengths,
                truncated=out.truncated,
            )
        )
        tokens, mask = host["tokens"][rows], host["mask"][rows]
        texts = self.tokenizer.batch_decode(
            [t[m] for t, m in zip(tokens, mask, strict=True)], skip_special_tokens=True
        )
        golds = [a for a in batch["answer"] for _ in range(g)]
        fmt = [format_reward(t, think_in_prompt=self.think_in_prompt) for t in texts]
        scored = self._gather(
            dict(
                correct=verify_batch(texts, golds, self.verifier),
                format_ok=np.asarray(fmt, np.float32),
                prompt_tokens=prompt_tokens,
                prompt_mask=prompt_mask,
            )
        )
        correct = scored["correct"].reshape(p, g)
        fmt = scored["format_ok"].reshape(p, g)
        rollouts = Rollouts(
            correct=jnp.asarray(correct),
            length=out.lengths.reshape(p, g),
            truncated=out.truncated.reshape(p, g),
            budget=jnp.asarray(budget_PxG, jnp.int32),
            target=jnp.asarray(target_PxG, jnp.int32),
            format_ok=jnp.asarray(fmt),
            valid=jnp.ones((p, g), bool),
            prompt_index=index,
        )
        reward, pstate = self._apply(rollouts, pstate, step)
        groups = dict(
            prompt_tokens=scored["prompt_tokens"].reshape(p, g, -1),
            prompt_mask=scored["prompt_mask"].reshape(p, g, -1),
            tokens=host["tokens"].reshape(p, g, -1),
            mask=host["mask"].reshape(p, g, -1),
            logp=host["logp"].reshape(p, g, -1),
            forced=host["forced"].reshape(p, g, -1),
            correct=correct,
            format_ok=fmt,
            length=host["length"].reshape(p, g),
            truncated=host["truncated"].reshape(p, g),
            budget=budget_PxG,
            target=target_PxG,
            reward=to_host(reward),
            difficulty=first["difficulty"][::g],
        )
        return groups, pstate, texts

    def collect(self, params, pstate, prompt_iter: Iterator[dict], step: int, key):
        """Samples, scores and builds the update batch for one step.

        With ``dynamic_sampling``, groups whose rewards are all equal are dropped and more prompt
        batches are drawn (at most ``max_draws``) until ``P`` groups are kept; missing groups
        are padding (``valid = False``). Returns ``(UpdateBatch, pstate, stats, sample_texts)``:
        the batch holds host arrays (the same on every process), ``sample_texts`` are this
        process's decoded samples.
        """
        kept: list[dict] = []
        texts: list[str] = []
        draws, n_kept = 0, 0
        all_groups = []
        while n_kept < self.prompts_per_step and draws < max(1, self.max_draws):
            batch = next(prompt_iter)
            groups, pstate, t = self._draw(
                params, pstate, batch, step, jax.random.fold_in(key, draws)
            )
            draws += 1
            all_groups.append(groups)
            texts.extend(t)
            keep = np.ones(len(groups["reward"]), bool)
            if self.dynamic_sampling:
                keep = np.asarray(
                    keep_groups(
                        jnp.asarray(groups["reward"]), jnp.ones(groups["reward"].shape, bool)
                    )
                )
            take = np.flatnonzero(keep)[: self.prompts_per_step - n_kept]
            kept.append({k: v[take] for k, v in groups.items()})
            n_kept += len(take)
            if not self.dynamic_sampling:
                break
        sel = {k: np.concatenate([c[k] for c in kept]) for k in kept[0]}
        valid_p = np.arange(self.prompts_per_step) < n_kept
        sel = {k: _pad_groups(v, self.prompts_per_step) for k, v in sel.items()}
        valid = np.repeat(valid_p[:, None], self.group_size, axis=1)

        advantages = self._advantage(
            jnp.asarray(sel["reward"], jnp.float32),
            valid=jnp.asarray(valid),
            correct=jnp.asarray(sel["correct"], jnp.float32),
            length=jnp.asarray(sel["length"], jnp.int32),
        )
        update = self._update_batch(sel, valid, np.asarray(advantages))
        seen = {k: np.concatenate([g[k] for g in all_groups]) for k in all_groups[0]}
        stats = rollout_stats(seen, draws=draws, kept=n_kept)
        stats["base_budget"] = float(self.base_budget(step))
        return update, pstate, stats, texts

    def width_step(self, full: int) -> int:
        """Update widths are multiples of this (and at most ``full``, the sampler's width): a
        multiple of ``width_bucket`` large enough for at most ``max_widths`` distinct widths. A new
        width costs a compile of the update and log-prob programs (~1 min for a 0.5B model on an
        H100), a wider one at most ``full / max_widths`` padding columns."""
        return self.width_bucket * max(1, -(-full // (self.max_widths * self.width_bucket)))

    def _update_batch(self, sel: dict, valid, advantages) -> UpdateBatch:
        n = self.prompts_per_step * self.group_size
        # Completion width: the longest completion, rounded up to a bucket, so the update does not
        # pay for the sampler's full budget when every completion is short (one compile a bucket).
        full = sel["tokens"].shape[-1]
        longest = int(sel["mask"].sum(-1).max(initial=1))
        step = self.width_step(full)
        width = min(full, -(-max(longest, 1) // step) * step)
        sel = {**sel, **{k: sel[k][..., :width] for k in ("tokens", "mask", "logp", "forced")}}
        valid_n = valid.reshape(n, 1)
        tokens = np.zeros((n, self.prompt_len + width), np.int32)
        attn = np.zeros(tokens.shape, bool)
        prompt_mask = sel["prompt_mask"].reshape(n, self.prompt_len) & valid_n
        tokens[:, : self.prompt_len] = np.where(prompt_mask, sel["prompt_tokens"].reshape(n, -1), 0)
        attn[:, : self.prompt_len] = prompt_mask
        comp_mask = sel["mask"].reshape(n, width) & valid.reshape(n, 1)
        tokens[:, self.prompt_len :] = np.where(comp_mask, sel["tokens"].reshape(n, width), 0)
        attn[:, self.prompt_len :] = comp_mask
        loss_mask = comp_mask & ~sel["forced"].reshape(n, width)
        tokens_j, attn_j = jnp.asarray(tokens), jnp.asarray(attn)
        logp_ref = (
            jnp.asarray(to_host(self.ref_logprobs(tokens_j, attn_j)))
            if self.ref_logprobs is not None
            else jnp.zeros((n, width), jnp.float32)
        )
        return UpdateBatch(
            tokens=tokens_j,
            attn_mask=attn_j,
            loss_mask=jnp.asarray(loss_mask),
            advantages=jnp.asarray(advantages.reshape(n), jnp.float32),
            logp_old=jnp.asarray(sel["logp"].reshape(n, width), jnp.float32),
            logp_ref=logp_ref,
            truncated=jnp.asarray(sel["truncated"].reshape(n)),
            valid=jnp.asarray(valid.reshape(n)),
            correct=jnp.asarray(sel["correct"].reshape(n), jnp.float32),
        )


def _pad_groups(x: np.ndarray, p: int) -> np.ndarray:
    if len(x) >= p:
        return x[:p]
    pad = np.zeros((p - len(x), *x.shape[1:]), x.dtype)
    return np.concatenate([x, pad])


def rollout_stats(g: dict, *, draws: int = 1, kept: int | None = None) -> dict:
    """Per-step metrics over every sampled group (spec section 6 quantities)."""
    length = g["length"].astype(np.float64)
    correct = g["correct"] >= 0.5
    stats = {
        "reward": g["reward"].mean(),
        "accuracy": correct.mean(),
        "format_ok": g["format_ok"].mean(),
        "length_mean": length.mean(),
        "length_median": np.median(length),
        "length_p90": np.percentile(length, 90),
        "length_correct_mean": length[correct].mean() if correct.any() else np.nan,
        "truncation_rate": g["truncated"].mean(),
        "acc_per_1k_tokens": 1000.0 * correct.sum() / max(length.sum(), 1.0),
        "draws": draws,
        "solve_all_frac": (correct.all(-1)).mean(),
        "solve_none_frac": (~correct.any(-1)).mean(),
    }
    if kept is not None:
        stats["groups_kept"] = kept
    return {k: float(v) for k, v in stats.items()}
