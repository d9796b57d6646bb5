"""Builders: a run's config (an `ml_collections.ConfigDict`) -> the library objects it names.

Every check of user input happens here, before any work, with a message naming the config key.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import tempfile

import jax
import ml_collections
from etils import epath

from lenrl import models, penalties, schedules
from lenrl.algorithms import get_advantage
from lenrl.algorithms.drpo import DRPOConfig
from lenrl.algorithms.losses import LossConfig
from lenrl.data import sources
from lenrl.data.synthetic import SyntheticConfig
from lenrl.data.tokenizer import save_synthetic_tokenizer
from lenrl.sampling.config import SamplingConfig
from lenrl.sharding import MeshConfig, make_mesh

SCHEDULES = {
    "constant": schedules.constant,
    "linear": schedules.linear,
    "exponential": schedules.exponential,
    "tlts": schedules.tlts,
    "siri": schedules.siri,
    "rounds": schedules.rounds,
    "warmup_then": schedules.warmup_then,
}


def _dict(cd) -> dict:
    """A config sub-dict as a plain dict, without unset (None) placeholders."""
    d = cd.to_dict() if isinstance(cd, ml_collections.ConfigDict) else dict(cd or {})
    return {k: v for k, v in d.items() if v is not None}


def build_mesh(config):
    """The mesh of ``config.mesh``; with every size given (no -1) it takes the first
    ``data * fsdp * tensor`` devices, so a smaller mesh than the machine is allowed."""
    m = MeshConfig(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
    sizes = (m.data, m.fsdp, m.tensor)
    devices = jax.devices()
    if -1 not in sizes:
        need = sizes[0] * sizes[1] * sizes[2]
        if need > len(devices):
            raise ValueError(
                f"config.mesh asks for {need} devices but {len(devices)} are available; set one "
                "of config.mesh.data/fsdp/tensor to -1."
            )
        devices = devices[:need]
    return make_mesh(m, devices)


def build_tokenizer(config, workdir: str | os.PathLike):
    """The run's tokenizer; the synthetic one is saved into ``workdir/tokenizer`` by process 0
    (local or remote workdir); other processes build their own copy in a temporary directory."""
    if config.model.tokenizer == "synthetic":
        main, remote = jax.process_index() == 0, "://" in os.fspath(workdir)
        if main and not remote:
            path = save_synthetic_tokenizer(os.path.join(os.fspath(workdir), "tokenizer"))
            return models.load_tokenizer(path)
        with tempfile.TemporaryDirectory() as local:
            tokenizer = models.load_tokenizer(save_synthetic_tokenizer(local))
            if main:  # remote workdir: a copy for the user
                dest = epath.Path(workdir) / "tokenizer"
                dest.mkdir(parents=True, exist_ok=True)
                for name in os.listdir(local):
                    (dest / name).write_bytes(epath.Path(local, name).read_bytes())
        return tokenizer
    path = config.model.tokenizer or config.model.path
    if not path or not os.path.isdir(path):
        raise FileNotFoundError(
            f"config.model.tokenizer / config.model.path {path!r} is not a directory: point "
            "config.model.path at a local Hugging Face checkpoint (config.json, *.safetensors, "
            "tokenizer files)."
        )
    return models.load_tokenizer(path)


def model_config(config, tokenizer) -> models.ModelConfig:
    m = config.model
    eos = tokenizer.eos_token_id
    return models.ModelConfig(
        model_type=m.model_type,
        vocab_size=len(tokenizer),
        hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size,
        num_layers=m.num_layers,
        num_heads=m.num_heads,
        num_kv_heads=m.num_kv_heads,
        head_dim=m.head_dim,
        qkv_bias=m.model_type == "qwen2",
        qk_norm=m.model_type == "qwen3",
        tie_word_embeddings=True,
        eos_token_id=eos,
        param_dtype=m.param_dtype,
        dtype=m.dtype,
        remat=m.remat,
        attention=m.get("attention", "auto"),
    )


def build_model(config, tokenizer, mesh):
    """The policy: loaded from ``config.model.path`` or randomly initialised, placed on ``mesh``."""
    m = config.model
    if m.path:
        if not os.path.isfile(os.path.join(m.path, "config.json")):
            raise FileNotFoundError(
                f"config.model.path={m.path!r} has no config.json: download the checkpoint to a "
                "local directory first (lenrl never downloads at run time) and point "
                "config.model.path at it."
            )
        return models.from_pretrained(
            m.path,
            mesh=mesh,
            param_dtype=m.param_dtype,
            dtype=m.dtype,
            remat=m.remat,
            attention=m.get("attention", "auto"),
        )
    return models.init_model(model_config(config, tokenizer), mesh=mesh, seed=config.seed)


def build_source(config, split: str):
    """The prompt source of ``split`` ("train" | "eval") as a grain MapDataset."""
    d = config.data
    if d.kind == "synthetic":
        n = d.num_train if split == "train" else d.num_eval
        synth = SyntheticConfig(**_dict(d.get("synthetic")))
        seed = config.seed
        if split == "eval" and d.get("eval_seed", -1) >= 0:
            seed = d.eval_seed  # one held-out set for runs of different seeds
        return sources.synthetic_source(num_examples=n, split=split, seed=seed, config=synth)
    fields = dict(
        question_field=d.question_field,
        answer_field=d.answer_field,
        difficulty_field=d.difficulty_field or None,
        solution_field=d.solution_field or None,
    )
    if d.kind == "tfds":
        return sources.tfds_source(d.path, data_dir=d.data_dir, split=split, **fields)
    if not d.path:
        raise ValueError(f"config.data.path is empty: give the {d.kind} file or directory.")
    path = d.path.format(split=split) if "{split}" in d.path else d.path
    if not os.path.exists(path) and not any(c in path for c in "*?["):
        raise FileNotFoundError(
            f"config.data.path={path!r} does not exist: put the {d.kind} data there (use "
            "'{split}' in the path for separate train/eval files)."
        )
    return sources.get_source(d.kind, path=path, **fields)


def build_method(config) -> penalties.LengthMethod:
    hp = _dict(config.penalty.hparams)
    name = config.penalty.name
    if name in penalties.REGISTRY:
        valid = [h for h in penalties.hparam_names(name) if h != "num_samples"]
        extra = sorted(set(hp) - set(valid))
        if extra:
            raise ValueError(
                f"config.penalty.hparams has {extra}, which {name!r} does not take (valid: "
                f"{valid}). Use --config=configs/methods.py:{name} for its "
                "preset, or set config.penalty.hparams to its own options."
            )
    return penalties.get(name, num_samples=config.rl.group_size, **hp)


def build_budget(config):
    """``step -> base budget`` (i32), bucketed if ``config.budget.bucket``."""
    b = config.budget
    if b.schedule not in SCHEDULES:
        raise ValueError(
            f"config.budget.schedule={b.schedule!r} is unknown; valid: {sorted(SCHEDULES)}."
        )
    try:
        sched = SCHEDULES[b.schedule](**_dict(b.hparams))
    except TypeError as e:
        raise ValueError(f"config.budget.hparams do not fit schedule {b.schedule!r}: {e}") from e
    return schedules.as_budget(sched, bucket=b.bucket or None)


def build_advantage(config):
    hp = _dict(config.rl.advantage_hparams)
    name = config.rl.advantage
    if name == "positive_group":  # DRPO's weights normalise lengths by the sampler's budget
        hp.setdefault("l_max", int(config.budget.max_new_tokens))
    if name == "hbpo" and config.penalty.name == "hbpo":
        default = inspect.signature(penalties.REGISTRY["hbpo"]).parameters["subgroup_budgets"]
        budgets = _dict(config.penalty.hparams).get("subgroup_budgets", default.default)
        k = hp.setdefault("num_subgroups", len(budgets))
        if k != len(budgets):
            raise ValueError(
                f"config.rl.advantage_hparams.num_subgroups={k} differs from the {len(budgets)} "
                "subgroups of config.penalty.hparams.subgroup_budgets; make them equal."
            )
    return get_advantage(name, **hp)


def build_loss(config) -> LossConfig | DRPOConfig:
    overrides = _dict(config.rl.loss)
    if config.rl.objective == "drpo":
        return DRPOConfig(**overrides)
    if config.rl.objective != "pg":
        raise ValueError(f"config.rl.objective={config.rl.objective!r}: use 'pg' or 'drpo'.")
    presets = {"grpo": LossConfig.grpo, "dapo": LossConfig.dapo}
    if config.rl.loss_preset not in presets:
        raise ValueError(f"config.rl.loss_preset={config.rl.loss_preset!r}: use {list(presets)}.")
    names = {f.name for f in dataclasses.fields(LossConfig)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ValueError(f"config.rl.loss has unknown keys {bad}; valid: {sorted(names)}.")
    # Dr. GRPO's constant normaliser is the budget, not the (bucketed) width of one batch.
    overrides.setdefault("l_max", int(config.budget.max_new_tokens))
    return presets[config.rl.loss_preset](**overrides)


def sampling_config(config, tokenizer, *, greedy=False, num_prompts=None) -> SamplingConfig:
    """The rollout sampler's settings; with ``num_prompts`` (evaluation) the slot count is
    ``config.eval.num_slots`` (0 = every eval prompt at once), which bounds the KV cache on large
    eval sets: slot refill then streams the prompts through that many rows."""
    stop = [tokenizer.eos_token_id]
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ValueError("the tokenizer has no pad token; set one in the tokenizer config.")
    bucket = 1 << max(config.data.max_prompt_len - 1, 1).bit_length()
    s = config.sampling
    return SamplingConfig(
        greedy=greedy,
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        stop_token_ids=tuple(t for t in stop if t is not None),
        pad_id=tokenizer.pad_token_id,
        buckets=(bucket,),
        max_new_tokens=config.budget.max_new_tokens,
        num_slots=(s.num_slots if num_prompts is None else config.eval.get("num_slots", 0)) or None,
    )


def check(config) -> None:
    """Every check that needs no model or data: runs before any work."""
    if config.rl.steps > 0:
        build_method(config)
        build_loss(config)
        build_budget(config)
        build_advantage(config)
    r = config.rl
    if r.steps > 0 and r.prompts_per_step % (r.num_minibatches * r.num_microbatches):
        raise ValueError(
            f"config.rl.prompts_per_step={r.prompts_per_step} must be divisible by "
            f"num_minibatches x num_microbatches = {r.num_minibatches * r.num_microbatches}."
        )
    if config.sft.steps > 0 and config.data.kind != "synthetic" and not config.data.solution_field:
        raise ValueError(
            "config.sft.steps > 0 needs worked solutions: set config.data.solution_field or "
            "config.sft.steps=0."
        )
    if jax.process_count() > 1 and r.prompts_per_step % jax.process_count():
        raise ValueError("config.rl.prompts_per_step must be divisible by the number of hosts.")
