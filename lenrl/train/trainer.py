"""The training run: supervised warm start, then GRPO with length control; resumable.

``train(config, workdir)`` is everything ``python -m lenrl.launch`` does, importable from a
notebook. Each phase keeps its own orbax checkpoints under ``workdir/checkpoints/<phase>``; a
restarted run with the same workdir resumes from the newest complete checkpoint. Per step the RNG
is ``fold_in(seed, step)``, so a resumed run draws the same samples as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from lenrl import models, plots
from lenrl.data.pipeline import make_prompt_iterator
from lenrl.evaluation import budget_sweep, evaluate
from lenrl.sampling.sampler import make_sampler
from lenrl.sharding import AxisRules
from lenrl.train import setup
from lenrl.train.batch import pad_rows, supervised_batch
from lenrl.train.checkpoints import Checkpointer
from lenrl.train.logprobs import completion_logprobs
from lenrl.train.metrics import MetricWriter, read_metrics
from lenrl.train.rollout import Rollout, prompt_ids
from lenrl.train.update import (
    drpo_objective,
    make_optimizer,
    make_update,
    pg_loss,
    sft_loss,
    warmup_cosine,
)

SAMPLE_KEY, UPDATE_KEY, EVAL_KEY = 1, 2, 3


class Run:
    """The objects shared by both phases (built once from the config)."""

    def __init__(self, config, workdir: str):
        setup.check(config)
        self.config, self.workdir = config, workdir
        os.makedirs(workdir, exist_ok=True)
        self.mesh = setup.build_mesh(config)
        self.rules = AxisRules()
        self.tokenizer = setup.build_tokenizer(config, workdir)
        model = setup.build_model(config, self.tokenizer, self.mesh)
        self.graphdef, self.params = nnx.split(model)
        self.model_cfg = model.cfg
        self.key = jax.random.key(config.seed)
        self.writer = MetricWriter(workdir)
        eval_source = setup.build_source(config, "eval")
        self.eval_examples = [
            eval_source[i] for i in range(min(config.data.num_eval, len(eval_source)))
        ]
        self.eval_sampler = make_sampler(
            self.graphdef,
            setup.sampling_config(
                config,
                self.tokenizer,
                greedy=config.eval.greedy,
                num_prompts=len(self.eval_examples),
            ),
            mesh=self.mesh,
            model_cfg=self.model_cfg,
        )

    def batch_sharding(self, x):
        axes = ("batch",) + (None,) * (x.ndim - 1)
        return NamedSharding(self.mesh, self.rules.spec(axes, x.shape, self.mesh))

    def on_mesh(self, tree):
        """Leaves not already laid out on the mesh (e.g. optimizer counters) become replicated
        over it, so jitted steps see one device set."""
        replicated = NamedSharding(self.mesh, PartitionSpec())

        def one(x):
            sh = getattr(x, "sharding", None)
            if isinstance(sh, NamedSharding) and sh.mesh == self.mesh:
                return x
            return jax.device_put(x, replicated)

        return jax.tree.map(one, tree)

    def put(self, tree):
        return jax.tree.map(lambda x: jax.device_put(x, self.batch_sharding(x)), tree)

    def step_key(self, stream: int, step: int):
        return jax.random.fold_in(jax.random.fold_in(self.key, stream), step)

    def evaluate(self, params, tag: str, step: int):
        cfg = self.config
        metrics, records = evaluate(
            self.eval_sampler,
            params,
            self.tokenizer,
            self.eval_examples,
            budget=cfg.eval.budget,
            verifier=cfg.data.verifier,
            key=self.step_key(EVAL_KEY, step),
            think_in_prompt=cfg.data.get("think_in_prompt", False),
        )
        self.writer.write(step, {f"eval/{k}": v for k, v in metrics.items()}, phase=tag)
        return metrics, records

    def iterator(self, batch_size: int, state: dict | None, seed_offset: int):
        it = make_prompt_iterator(
            setup.build_source(self.config, "train"),
            batch_size=batch_size,
            seed=self.config.seed + seed_offset,
            shard_index=jax.process_index(),
            shard_count=jax.process_count(),
        )
        if state:
            it.set_state(state)
        return it

    def progress(self, total: int, start: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            initial=start,
            desc=desc,
            disable=not self.config.progress,
            dynamic_ncols=True,
        )


def _jit_update(run: Run, update, params, opt_state):
    param_sh = jax.tree.map(lambda x: x.sharding, params)
    opt_sh = jax.tree.map(lambda x: x.sharding, opt_state)
    return jax.jit(update, out_shardings=(param_sh, opt_sh, None), donate_argnums=(0, 1))


def run_sft(run: Run) -> None:
    """Phase 1: cross-entropy on worked solutions (the verbose chains of thought)."""
    cfg = run.config.sft
    if cfg.steps <= 0:
        return
    ckpt = Checkpointer(
        os.path.join(run.workdir, "checkpoints", "sft"), keep=run.config.checkpoint.keep
    )
    optimizer = make_optimizer(
        warmup_cosine(cfg.learning_rate, cfg.warmup_steps, cfg.steps), grad_clip=1.0
    )
    opt_state = run.on_mesh(jax.jit(optimizer.init)(run.params))
    state = {"params": run.params, "opt_state": opt_state}
    step, data_state = 0, None
    if ckpt.latest_step() is not None:
        state, data_state, step = ckpt.restore(state)
    if step >= cfg.steps:
        run.params = state["params"]
        ckpt.close()
        return
    tp = run.config.data.max_prompt_len
    update = make_update(run.graphdef, optimizer, sft_loss(tp), batch_size=cfg.batch_size)
    update = _jit_update(run, update, state["params"], state["opt_state"])
    it = run.iterator(cfg.batch_size, data_state, seed_offset=0)
    params, opt_state = state["params"], state["opt_state"]
    eos = run.tokenizer.eos_token_id
    bar = run.progress(cfg.steps, step, "warm start")
    while step < cfg.steps:
        batch = next(it)
        prompts = [prompt_ids(run.tokenizer, q) for q in batch["prompt"]]
        comps = [
            run.tokenizer.encode(s, add_special_tokens=False)[: cfg.max_len - 1] + [eos]
            for s in batch["solution"]
        ]
        width = min(cfg.max_len, -(-max(map(len, comps)) // 16) * 16)  # bucketed: few compiles
        tokens, mask = pad_rows(prompts, comps, tp, width, run.tokenizer.pad_token_id)
        ub = run.put(supervised_batch(tokens, mask, tp))
        params, opt_state, m = update(params, opt_state, ub, run.step_key(UPDATE_KEY, step), step)
        step += 1
        bar.update(1)
        if step % run.config.log_every == 0 or step == cfg.steps:
            m = jax.device_get(m)
            bar.set_postfix(nll=f"{float(m['nll']):.3f}")
            run.writer.write(step, m, phase="sft")
        if step % run.config.checkpoint.every == 0 or step == cfg.steps:
            ckpt.save(step, {"params": params, "opt_state": opt_state}, it.get_state())
    bar.close()
    ckpt.close()
    run.params = params


def run_rl(run: Run) -> dict:
    """Phase 2: GRPO (or DRPO) with the configured length method. Returns a summary."""
    config, cfg = run.config, run.config.rl
    method = setup.build_method(config)
    loss_cfg = setup.build_loss(config)
    tp = config.data.max_prompt_len
    if config.rl.objective == "drpo":
        loss_fn = drpo_objective(tp, cfg.group_size, loss_cfg, l_max=config.budget.max_new_tokens)
        use_ref = False
    else:
        loss_fn = pg_loss(tp, loss_cfg)
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
        os.path.join(run.workdir, "checkpoints", "rl"),
        keep=config.checkpoint.keep,
        best_metric="eval/acc_per_1k_tokens",
    )
    num_prompts = _num_prompts(config)
    state = {
        "params": run.params,
        "opt_state": run.on_mesh(jax.jit(optimizer.init)(run.params)),
        "penalty": method.init(num_prompts),
        # A copy: the policy's buffers are donated to the update.
        "ref": jax.tree.map(jnp.copy, run.params) if use_ref else {},
    }
    step, data_state = 0, None
    summary_path = os.path.join(run.workdir, "summary.json")
    if ckpt.latest_step() is not None:
        state, data_state, step = ckpt.restore(state)
    before = _load_json(os.path.join(run.workdir, "eval_before.json"))
    if before is None:
        m, rec = run.evaluate(state["params"], "rl", 0)
        before = {"metrics": m, "lengths": [r["length"] for r in rec]}
        _save_json(os.path.join(run.workdir, "eval_before.json"), before)

    sampler = make_sampler(
        run.graphdef,
        setup.sampling_config(config, run.tokenizer),
        mesh=run.mesh,
        model_cfg=run.model_cfg,
    )
    ref_fn = None
    if use_ref:
        fwd = jax.jit(lambda p, t, a: completion_logprobs(nnx.merge(run.graphdef, p), t, a, tp)[0])
        ref_fn = lambda t, a: fwd(state["ref"], t, a)  # noqa: E731
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
    )
    update = _jit_update(run, update, state["params"], state["opt_state"])
    it = run.iterator(cfg.prompts_per_step, data_state, seed_offset=1)
    params, opt_state, pstate = state["params"], state["opt_state"], state["penalty"]
    bar = run.progress(cfg.steps, step, "GRPO")
    while step < cfg.steps:
        t0 = time.perf_counter()
        ub, pstate, stats, _ = rollout.collect(
            params, pstate, it, step, run.step_key(SAMPLE_KEY, step)
        )
        t1 = time.perf_counter()
        params, opt_state, m = update(
            params, opt_state, run.put(ub), run.step_key(UPDATE_KEY, step), step
        )
        m = {**stats, **jax.device_get(m)}
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


def _finish(run: Run, before: dict, summary_path: str) -> dict:
    config = run.config
    after_m, after_rec = run.evaluate(run.params, "rl", config.rl.steps)
    after = {"metrics": after_m, "lengths": [r["length"] for r in after_rec]}
    _save_json(os.path.join(run.workdir, "eval_after.json"), after)
    if jax.process_index() == 0:
        plots.training_curves(
            read_metrics(run.workdir, "rl"),
            before["lengths"],
            after["lengths"],
            os.path.join(run.workdir, "training.png"),
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
        if jax.process_index() == 0:
            plots.budget_curve(sweep, os.path.join(run.workdir, "budget_curve.png"))
    b, a = before["metrics"], after_m
    summary = {
        "before": b,
        "after": a,
        "length_reduction": 1.0 - a["length_mean"] / max(b["length_mean"], 1e-9),
        "accuracy_change": a["accuracy"] - b["accuracy"],
        "budget_sweep": sweep,
    }
    _save_json(summary_path, summary)
    if config.checkpoint.export and jax.process_index() == 0:
        models.save_pretrained(
            nnx.merge(run.graphdef, run.params),
            os.path.join(run.workdir, "export"),
            tokenizer=run.tokenizer,
        )
    return summary


def _num_prompts(config) -> int:
    n = len(setup.build_source(config, "train"))
    return int(n)


def _load_json(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def _save_json(path, obj):
    if jax.process_index() != 0:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=float)
    os.replace(tmp, path)


def train(config, workdir: str) -> dict:
    """Runs (or resumes) both phases; returns the summary written to ``summary.json``."""
    run = Run(config, workdir)
    try:
        run_sft(run)
        if config.rl.steps <= 0:
            return {}
        return run_rl(run)
    finally:
        run.writer.close()
