"""The training run: supervised warm start (`lenrl.train.sft`), then GRPO with length control.

``train(config, workdir)`` is everything ``python -m lenrl.launch`` does, importable from a
notebook. Each phase keeps its own orbax checkpoints under ``workdir/checkpoints/<phase>``; a
restarted run with the same workdir resumes from the newest complete checkpoint. Per step the RNG
is ``fold_in(seed, step)``, so a resumed run draws the same samples as an uninterrupted one.

Several processes (``jax.distributed``) run this same code over one mesh of all their devices:
each draws its own rows of every batch (`lenrl.train.multihost.Rows`), the jitted steps see
global arrays, every process keeps the same host-side state (penalties, metrics), orbax writes
checkpoints collectively, and process 0 alone writes metrics, JSON, plots and the export. The
workdir may be remote (``gs://...``): every file goes through `etils.epath`.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from flax import nnx

from lenrl import models, plots
from lenrl.evaluation import budget_sweep
from lenrl.sampling.sampler import make_sampler
from lenrl.train import setup
from lenrl.train.checkpoints import Checkpointer
from lenrl.train.logprobs import completion_logprobs
from lenrl.train.metrics import read_metrics
from lenrl.train.multihost import broadcast_json, is_main, to_host
from lenrl.train.packing import pack_update_batch, padding_stats
from lenrl.train.rollout import Rollout
from lenrl.train.run import EVAL_KEY, SAMPLE_KEY, UPDATE_KEY, Run
from lenrl.train.sft import run_sft
from lenrl.train.update import (
    drpo_objective,
    make_optimizer,
    make_update,
    pg_loss,
    warmup_cosine,
)


def run_rl(run: Run) -> dict:
    """Phase 2: GRPO (or DRPO) with the configured length method. Returns a summary."""
    config, cfg = run.config, run.config.rl
    method = setup.build_method(config)
    loss_cfg = setup.build_loss(config)
    tp = config.data.max_prompt_len
    packed = cfg.get("packing", False)
    if config.rl.objective == "drpo":
        loss_fn = drpo_objective(
            tp, cfg.group_size, loss_cfg, l_max=config.budget.max_new_tokens, packed=packed
        )
        use_ref = False
    else:
        loss_fn = pg_loss(tp, loss_cfg, packed=packed)
        use_ref = loss_cfg.beta > 0
    opt_steps = cfg.steps * cfg.epochs * cfg.num_minibatches
    if cfg.lr_schedule == "cosine":
        lr = warmup_cosine(cfg.learning_rate, cfg.warmup_steps, opt_steps)
    elif cfg.lr_schedule == "constant":
        lr = optax.warmup_constant_schedule(0.0, cfg.learning_rate, max(cfg.warmup_steps, 1))
    else:
        raise ValueError(f"config.rl.lr_schedule={cfg.lr_schedule!r}: use 'constant' or 'cosine'.")
    optimizer = make_optimizer(lr, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip)
    ckpt = Checkpointer(
        run.workdir / "checkpoints" / "rl",
        keep=config.checkpoint.keep,
        best_metric="eval/acc_per_1k_tokens",
    )
    num_prompts = _num_prompts(config)
    state = {
        "params": run.params,
        "opt_state": run.on_mesh(jax.jit(optimizer.init)(run.params)),
        "penalty": run.shared(method.init(num_prompts)),
        # A copy: the policy's buffers are donated to the update.
        "ref": jax.tree.map(jnp.copy, run.params) if use_ref else {},
    }
    step, data_state = 0, None
    summary_path = run.workdir / "summary.json"
    if ckpt.latest_step() is not None:
        state, data_state, step = ckpt.restore(state)
    before = broadcast_json(_load_json(run.workdir / "eval_before.json"))  # process 0 decides
    if before is None:
        m, rec = run.evaluate(state["params"], "rl", 0)
        before = {"metrics": m, "lengths": [r["length"] for r in rec]}
        _save_json(run.workdir / "eval_before.json", before)

    sampler = make_sampler(
        run.graphdef,
        setup.sampling_config(config, run.tokenizer),
        mesh=run.mesh,
        model_cfg=run.model_cfg,
    )
    ref_fn = None
    if use_ref:
        fwd = jax.jit(lambda p, t, a: completion_logprobs(nnx.merge(run.graphdef, p), t, a, tp)[0])
        # In chunks of one update microbatch: the forward holds [rows, Tc, V] f32 logits, which
        # for a whole rollout batch at real vocabularies would not fit.
        chunk = max(1, cfg.prompts_per_step * cfg.group_size // _accumulation(cfg))

        def ref_fn(t, a):
            parts = [
                fwd(state["ref"], t[i : i + chunk], a[i : i + chunk])
                for i in range(0, t.shape[0], chunk)
            ]
            return parts[0] if len(parts) == 1 else jnp.concatenate(parts)

    rollout = Rollout(
        tokenizer=run.tokenizer,
        sampler=sampler,
        method=method,
        advantage=setup.build_advantage(config),
        base_budget=setup.build_budget(config),
        verifier=config.data.verifier,
        prompts_per_step=cfg.prompts_per_step,
        group_size=cfg.group_size,
        prompt_len=tp,
        dynamic_sampling=cfg.dynamic_sampling,
        max_draws=cfg.max_draws,
        think_in_prompt=config.data.get("think_in_prompt", False),
        ref_logprobs=ref_fn,
        max_widths=cfg.get("max_update_widths", 8),
        rows=run.rows(cfg.prompts_per_step * cfg.group_size),
    )
    update = make_update(
        run.graphdef,
        optimizer,
        loss_fn,
        batch_size=cfg.prompts_per_step * cfg.group_size,
        group_size=cfg.group_size,
        epochs=cfg.epochs,
        num_minibatches=cfg.num_minibatches,
        num_microbatches=cfg.num_microbatches,
        packed=packed,
    )
    update = run.jit_update(update, state["params"], state["opt_state"])
    batch_axis = run.mesh.shape["data"] * run.mesh.shape["fsdp"]
    it = run.iterator(rollout.rows, cfg.group_size, data_state, seed_offset=1)
    params, opt_state, pstate = state["params"], state["opt_state"], state["penalty"]
    bar = run.progress(cfg.steps, step, "GRPO")
    while step < cfg.steps:
        t0 = time.perf_counter()
        ub, pstate, stats, _ = rollout.collect(
            params, pstate, it, step, run.step_key(SAMPLE_KEY, step)
        )
        t1 = time.perf_counter()
        if packed:  # every process packs the same whole batch, so the rows agree everywhere
            pb = pack_update_batch(
                to_host(ub),
                prompt_len=tp,
                row_len=tp + config.budget.max_new_tokens,
                pad_id=run.tokenizer.pad_token_id,
                num_bins=cfg.num_minibatches * cfg.num_microbatches,
                group_size=cfg.group_size,
                rows_multiple=batch_axis,
            )
            stats = {**stats, "padding_fraction": padding_stats(pb)["padding_fraction"]}
            batch = run.put_packed(pb)
        else:
            batch = run.put(ub)
        params, opt_state, m = update(
            params, opt_state, batch, run.step_key(UPDATE_KEY, step), step
        )
        m = {**stats, **to_host(m)}
        t2 = time.perf_counter()
        tokens = float(np.asarray(ub.loss_mask).sum())
        m.update(
            sample_time=t1 - t0,
            update_time=t2 - t1,
            tokens_per_s=tokens / (t2 - t0),
            learning_rate=float(lr(step * cfg.epochs * cfg.num_minibatches)),
        )
        step += 1
        bar.update(1)
        bar.set_postfix(
            reward=f"{m['reward']:.2f}", acc=f"{m['accuracy']:.2f}", len=f"{m['length_mean']:.1f}"
        )
        eval_metrics = None
        if config.eval.every and step % config.eval.every == 0 and step < cfg.steps:
            eval_metrics, _ = run.evaluate(params, "rl", step)
        if step % config.log_every == 0:
            run.writer.write(step, m, phase="rl")
        if step % config.checkpoint.every == 0 or step == cfg.steps:
            state = {
                "params": params,
                "opt_state": opt_state,
                "penalty": pstate,
                "ref": state["ref"],
            }
            best = (
                {"eval/acc_per_1k_tokens": eval_metrics["acc_per_1k_tokens"]}
                if eval_metrics
                else None
            )
            ckpt.save(step, state, it.get_state(), metrics=best)
    bar.close()
    ckpt.close()
    run.params = params
    return _finish(run, before, summary_path)


def _accumulation(cfg) -> int:
    """Update microbatches per rollout batch."""
    return cfg.num_minibatches * cfg.num_microbatches


def _finish(run: Run, before: dict, summary_path: epath.Path) -> dict:
    config = run.config
    after_m, after_rec = run.evaluate(run.params, "rl", config.rl.steps)
    after = {"metrics": after_m, "lengths": [r["length"] for r in after_rec]}
    _save_json(run.workdir / "eval_after.json", after)
    if is_main():
        with (run.workdir / "training.png").open("wb") as f:
            plots.training_curves(
                read_metrics(run.workdir, "rl"),
                before["lengths"],
                after["lengths"],
                f,
                title=f"{config.penalty.name} on {config.data.kind}",
            )
    sweep = {}
    if config.eval.sweep:
        for label, params in (("after RL", run.params),):
            sweep[label] = budget_sweep(
                run.eval_sampler,
                params,
                run.tokenizer,
                run.eval_examples,
                budgets=config.eval.sweep,
                verifier=config.data.verifier,
                key=run.step_key(EVAL_KEY, 10**6),
            )
        if is_main():
            with (run.workdir / "budget_curve.png").open("wb") as f:
                plots.budget_curve(sweep, f)
    b, a = before["metrics"], after_m
    summary = {
        "before": b,
        "after": a,
        "length_reduction": 1.0 - a["length_mean"] / max(b["length_mean"], 1e-9),
        "accuracy_change": a["accuracy"] - b["accuracy"],
        "budget_sweep": sweep,
    }
    _save_json(summary_path, summary)
    if config.checkpoint.export:  # every process: the parameters are gathered collectively
        models.save_pretrained(
            nnx.merge(run.graphdef, run.params), run.workdir / "export", tokenizer=run.tokenizer
        )
    return summary


def _num_prompts(config) -> int:
    n = len(setup.build_source(config, "train"))
    return int(n)


def _load_json(path: epath.Path):
    return json.loads(path.read_text()) if is_main() and path.exists() else None


def _save_json(path: epath.Path, obj):
    if not is_main():
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    tmp.replace(path)


def train(config, workdir: str | os.PathLike) -> dict:
    """Runs (or resumes) both phases; returns the summary written to ``summary.json``."""
    run = Run(config, workdir)
    try:
        run_sft(run)
        if config.rl.steps <= 0:
            return {}
        return run_rl(run)
    finally:
        run.writer.close()
