"""TRL's and Tunix's GRPO steps for `grpo_step.py`, and what the three frameworks share.

Each ``run_*(a)`` takes the parsed arguments of `grpo_step.py`, runs ``1 + a.steps`` GRPO steps of
one framework on the same workload and returns its timings (see that script's docstring). They run
in a subprocess of their own, so each may import its framework and touch global state freely.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
from common import SIZES, tunix_qwen2_config, word_tokenizer

LR, CLIP, BETA, EPS = 1e-6, 1.0, 0.04, 0.2


def prompt_texts(rng, n: int, prompt_len: int, vocab: int) -> list[str]:
    """``n`` prompts of exactly ``prompt_len`` tokens: ``<bos>`` then random words."""
    return [
        " ".join(["<bos>", *(f"w{i}" for i in rng.randint(4, vocab, prompt_len - 1))])
        for _ in range(n)
    ]


def fake_reward(prompts, completions, **kwargs) -> list[float]:
    """TRL's and Tunix's reward: cheap, deterministic, varies within a group."""
    del prompts, kwargs
    return [float(len(str(c)) % 3) for c in completions]


def summarize(steps: list[dict], a) -> dict:
    """Median over the timed steps (the first, compiling, step is reported apart)."""
    timed = steps[1:] or steps
    out = {k: statistics.median(s[k] for s in timed) for k in timed[0]}
    out["first_step_s"] = steps[0]["step_s"]
    out["steps_timed"] = len(timed)
    out["completion_tokens_per_s"] = a.prompts * a.group * a.max_new / out["step_s"]
    return out


# --------------------------------------------------------------------------------------------------
# TRL


def run_trl(a) -> dict:
    import torch
    import transformers
    from common import hf_config
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    cuda = torch.cuda.is_available()
    tok = word_tokenizer(SIZES[a.size]["vocab_size"])
    path = tempfile.mkdtemp(prefix="grpo_trl_")
    torch.manual_seed(0)
    hf = hf_config(a.size, bos_token_id=2, eos_token_id=tok.eos_token_id, pad_token_id=0)
    model = transformers.AutoModelForCausalLM.from_config(
        hf, dtype=torch.bfloat16, attn_implementation="sdpa"
    )
    model.save_pretrained(path)  # TRL builds its reference model from the policy's directory
    tok.save_pretrained(path)
    del model
    rng = np.random.RandomState(0)
    texts = prompt_texts(rng, a.prompts * (a.steps + 1), a.prompt_len, hf.vocab_size)
    n = a.prompts * a.group
    args = GRPOConfig(
        output_dir=os.path.join(path, "out"),
        model_init_kwargs=dict(dtype="bfloat16", attn_implementation="sdpa"),
        per_device_train_batch_size=a.micro_rows,
        gradient_accumulation_steps=n // a.micro_rows,  # one optimizer step per generation batch
        num_generations=a.group,
        max_completion_length=a.max_new,
        temperature=1.0,
        beta=BETA,
        epsilon=EPS,
        num_iterations=1,
        loss_type="grpo",
        learning_rate=LR,
        max_grad_norm=CLIP,
        gradient_checkpointing=a.trl_grad_ckpt == "on",
        bf16=cuda,
        use_cpu=not cuda,
        max_steps=a.steps + 1,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_vllm=False,
        shuffle_dataset=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=path,
        reward_funcs=fake_reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": texts}),
        processing_class=tok,
    )
    times: dict[str, float] = {}

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def wrap(name, fn, when=lambda *args, **kw: True):
        def call(*args, **kw):
            if not when(*args, **kw):
                return fn(*args, **kw)
            sync()
            t0 = time.perf_counter()
            out = fn(*args, **kw)
            sync()
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0
            return out

        return call

    trainer._generate = wrap("generate_s", trainer._generate)
    trainer._get_per_token_logps_and_entropies = wrap(
        "reference_s",
        trainer._get_per_token_logps_and_entropies,
        when=lambda model, *args, **kw: model is trainer.ref_model,
    )
    trainer._generate_and_score_completions = wrap(
        "generate_and_score_s", trainer._generate_and_score_completions
    )
    steps = []

    class StepTimer(transformers.TrainerCallback):
        def on_step_begin(self, *args, **kw):
            times.clear()
            sync()
            self.t0 = time.perf_counter()

        def on_step_end(self, *args, **kw):
            sync()
            s = dict(step_s=time.perf_counter() - self.t0, **times)
            s.setdefault("reference_s", 0.0)
            s["update_s"] = s["step_s"] - s.pop("generate_and_score_s")
            s["other_s"] = s["step_s"] - s["update_s"] - s["generate_s"] - s["reference_s"]
            steps.append(s)
            print(f"[trl] step {len(steps) - 1}: {s}", file=sys.stderr, flush=True)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append(float(logs["completions/mean_length"]))

    lengths: list[float] = []
    trainer.add_callback(StepTimer())
    trainer.train()
    shutil.rmtree(path, ignore_errors=True)
    return dict(
        setup=dict(
            gradient_checkpointing=args.gradient_checkpointing,
            generation_batch_size=args.generation_batch_size,
            per_device_train_batch_size=args.per_device_train_batch_size,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            attn_implementation="sdpa",
        ),
        completion_len_mean=float(np.mean(lengths)) if lengths else None,
        **summarize(steps, a),
    )


# --------------------------------------------------------------------------------------------------
# Tunix


def run_tunix(a) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx
    from tunix.models.qwen2 import model as tqwen
    from tunix.rl import rl_cluster as rlc
    from tunix.rl.grpo import grpo_learner
    from tunix.rl.rollout import base_rollout

    s = SIZES[a.size]
    tok = word_tokenizer(s["vocab_size"])
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), ("fsdp", "tp"))
    tcfg = tunix_qwen2_config(a.size)
    with jax.set_mesh(mesh):
        reference = tqwen.Qwen2(tcfg, rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(reference)
        actor = nnx.merge(graphdef, jax.tree.map(jnp.copy, state))
    training = rlc.RLTrainingConfig(
        actor_optimizer=optax.chain(optax.clip_by_global_norm(CLIP), optax.adamw(LR)),
        eval_every_n_steps=10**9,
        max_steps=a.steps + 1,
        mini_batch_size=a.prompts,  # one optimizer step per global step (mu = 1)
        train_micro_batch_size=a.micro_rows // a.group,  # in prompts: micro_rows samples
        rollout_micro_batch_size=a.prompts,  # all P * G samples in one sampler call
        compute_logps_micro_batch_size=max(1, a.micro_rows // a.group),
    )
    rollout = base_rollout.RolloutConfig(
        max_tokens_to_generate=a.max_new,
        max_prompt_length=a.prompt_len,
        kv_cache_size=a.prompt_len + a.max_new,
        temperature=1.0,
        top_p=1.0,
        top_k=None,
        eos_tokens=[tok.eos_token_id],
    )
    cluster = rlc.RLCluster(
        actor=actor,
        reference=reference,
        tokenizer=tok,
        cluster_config=rlc.ClusterConfig(
            role_to_mesh={r: mesh for r in (rlc.Role.ACTOR, rlc.Role.REFERENCE, rlc.Role.ROLLOUT)},
            rollout_engine="vanilla",
            offload_to_cpu=False,
            training_config=training,
            rollout_config=rollout,
        ),
    )
    learner = grpo_learner.GRPOLearner(
        rl_cluster=cluster,
        reward_fns=fake_reward,
        algo_config=grpo_learner.GRPOConfig(
            num_generations=a.group, num_iterations=1, beta=BETA, epsilon=EPS
        ),
    )
    times: dict[str, float] = {}
    steps = []

    def wrap(obj, attr, name):
        fn = getattr(obj, attr)

        def call(*args, **kw):
            t0 = time.perf_counter()
            out = jax.block_until_ready(fn(*args, **kw))
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0
            return out

        setattr(obj, attr, call)

    lengths: list[float] = []
    buffer_metrics = cluster.buffer_metrics

    def sniff(metrics, *args, **kw):  # Tunix logs the mean completion length of each rollout
        if "completions/mean_length" in metrics:
            lengths.append(float(metrics["completions/mean_length"][0]))
        return buffer_metrics(metrics, *args, **kw)

    cluster.buffer_metrics = sniff
    wrap(cluster, "generate", "generate_s")
    wrap(cluster, "get_ref_per_token_logps", "reference_s")
    wrap(cluster, "update_actor", "update_s")
    global_step = learner._run_global_step

    def timed_step(*args, **kw):
        times.clear()
        t0 = time.perf_counter()
        global_step(*args, **kw)
        jax.block_until_ready(nnx.state(cluster.actor_trainer.model))
        st = dict(step_s=time.perf_counter() - t0, **times)
        st["other_s"] = st["step_s"] - st["generate_s"] - st["reference_s"] - st["update_s"]
        steps.append(st)
        print(f"[tunix] step {len(steps) - 1}: {st}", file=sys.stderr, flush=True)

    learner._run_global_step = timed_step
    rng = np.random.RandomState(0)

    def batches():
        while True:
            yield {"prompts": prompt_texts(rng, a.prompts, a.prompt_len, s["vocab_size"])}

    learner.train(batches())
    return dict(
        setup=dict(rollout_engine="vanilla", remat="NONE", note="generate overlaps the update"),
        completion_len_mean=float(np.mean(lengths)) if lengths else None,
        **summarize(steps, a),
    )
