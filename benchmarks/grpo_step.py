"""One whole GRPO step: lenrl vs TRL's GRPOTrainer vs Tunix's GRPO learner, as JSON.

Commands (from the repo root, after the wheel install line of benchmarks/README.md):
  python benchmarks/grpo_step.py --frameworks lenrl --out $OUT/grpo_lenrl.json
  python benchmarks/grpo_step.py --frameworks trl --out $OUT/grpo_trl.json
  python benchmarks/grpo_step.py --frameworks tunix --out $OUT/grpo_tunix.json
  python benchmarks/grpo_step.py --merge a.json b.json c.json   # one table with the ratios
  python benchmarks/grpo_step.py --tiny                         # CPU, tiny shapes, all three

The step (the same in the three frameworks): ``P = 32`` prompts of 128 tokens, ``G = 8``
completions each sampled at temperature 1 up to 1024 new tokens, a fake reward (cheap, from the
text), group-normalised advantages, reference log-probs (``beta = 0.04``, k3 KL), and one
optimizer step (``mu = 1``, AdamW, global-norm clip 1) over the ``P * G`` samples in gradient-
accumulation micro-batches of ``--micro-rows`` samples. Random bf16 weights of the Qwen2.5-0.5B
shape, so completions almost never stop early (about ``1/V`` per token) and every framework
decodes all ``P * G * 1024`` tokens. The tokenizer is a word-level one with the model's
vocabulary built in memory (`common.word_tokenizer`); nothing is downloaded.

- lenrl: the trainer's own pieces: `make_sampler` + `Rollout.collect` (budgets, sampling, host
  decoding, verifier "synthetic" as the fake reward, advantages, `UpdateBatch`) + `make_update`
  with `pg_loss(LossConfig.grpo())`, jitted once with donation. The reference log-probs use
  `completion_logprobs` over ``--ref-rows`` rows at a time (``lax.map``).
- TRL (runner in ``grpo_baselines.py``): ``GRPOTrainer`` with transformers ``generate`` (no
  vLLM), loss_type "grpo", its default gradient checkpointing (``--trl-grad-ckpt``), the model
  loaded from a local directory.
- Tunix (runner in ``grpo_baselines.py``): ``GRPOLearner`` over an ``RLCluster`` with the
  "vanilla" rollout (its JAX sampler), its Qwen2 model with the same shape; actor, reference and
  rollout on one single-device mesh.

Each framework runs in its own subprocess (clean GPU memory, no shared global state), for
``1 + --steps`` steps; the first (compilation) is excluded and the median of the others reported,
with the time split into generate / reference / update / other (host work, rewards). A framework
that cannot run (not installed, an error, a time-out) is reported as ``{"status": "unavailable:
..."}`` with the reason. Ratios are other framework's step time / lenrl's.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
from common import SIZES, Report, device_info, guarded, on_mesh_of, versions, word_tokenizer
from grpo_baselines import BETA, CLIP, EPS, LR, prompt_texts, run_trl, run_tunix, summarize

FRAMEWORKS = ("lenrl", "trl", "tunix")

# --------------------------------------------------------------------------------------------------
# lenrl


def run_lenrl(a) -> dict:
    import jax
    import jax.numpy as jnp
    from common import model_config
    from flax import nnx

    from lenrl import models, penalties
    from lenrl.algorithms import get_advantage
    from lenrl.algorithms.losses import LossConfig
    from lenrl.sampling import SamplingConfig, make_sampler
    from lenrl.train.logprobs import completion_logprobs
    from lenrl.train.rollout import Rollout
    from lenrl.train.update import make_optimizer, make_update, pg_loss

    n, tp = a.prompts * a.group, a.prompt_len
    tok = word_tokenizer(SIZES[a.size]["vocab_size"])
    cfg = model_config(a.size, eos_token_id=tok.eos_token_id, remat=a.remat, attention=a.attention)
    graphdef, params = nnx.split(models.init_model(cfg))
    ref = jax.tree.map(jnp.copy, params)
    times: dict[str, float] = {}

    class timed:  # noqa: N801 - a timing wrapper that still looks like what it wraps
        def __init__(self, name, fn):
            self.name, self.fn = name, fn

        def __call__(self, *args):
            t0 = time.perf_counter()
            out = jax.block_until_ready(self.fn(*args))
            times[self.name] = times.get(self.name, 0.0) + time.perf_counter() - t0
            return out

        def __getattr__(self, attr):  # e.g. Sampler.cfg, read by Rollout
            return getattr(self.fn, attr)

    sampling = SamplingConfig(
        temperature=1.0,
        stop_token_ids=(tok.eos_token_id,),
        pad_id=tok.pad_token_id,
        buckets=(tp,),
        max_new_tokens=a.max_new,
    )
    sampler = make_sampler(graphdef, sampling, model_cfg=cfg)
    rows = a.ref_rows or n

    def ref_logprobs(tokens_NxT, attn_NxT):  # [N, Tc] f32, `rows` rows at a time
        def chunk(x):
            return completion_logprobs(nnx.merge(graphdef, ref), x[0], x[1], tp)[0]

        split = (tokens_NxT.reshape(n // rows, rows, -1), attn_NxT.reshape(n // rows, rows, -1))
        return jax.lax.map(chunk, split).reshape(n, -1)

    method = penalties.get("none", num_samples=a.group)
    rollout = Rollout(
        tokenizer=tok,
        sampler=timed("generate_s", sampler),
        method=method,
        advantage=get_advantage("grpo"),
        base_budget=lambda step: a.max_new,
        verifier="synthetic",
        prompts_per_step=a.prompts,
        group_size=a.group,
        prompt_len=tp,
        ref_logprobs=timed("reference_s", jax.jit(ref_logprobs)),
    )
    optimizer = make_optimizer(LR, grad_clip=CLIP)
    opt_state = on_mesh_of(jax.jit(optimizer.init)(params), params)
    update = make_update(
        graphdef,
        optimizer,
        pg_loss(tp, LossConfig.grpo(beta=BETA, eps_low=EPS, eps_high=EPS)),
        batch_size=n,
        group_size=a.group,
        num_microbatches=n // a.micro_rows,
    )
    shardings = jax.tree.map(lambda x: x.sharding, (params, opt_state))
    update = jax.jit(update, out_shardings=(*shardings, None), donate_argnums=(0, 1))
    rng = np.random.RandomState(0)

    def prompt_iter():
        for i in range(10**9):
            yield dict(
                prompt=prompt_texts(rng, a.prompts, tp, cfg.vocab_size),
                answer=["1"] * a.prompts,
                index=np.arange(a.prompts) + i * a.prompts,
                difficulty=np.zeros(a.prompts, np.float32),
            )

    it, pstate, key = prompt_iter(), method.init(a.prompts * (a.steps + 1)), jax.random.key(0)
    steps = []
    for step in range(a.steps + 1):
        times.clear()
        t0 = time.perf_counter()
        ub, pstate, stats, _ = rollout.collect(
            params, pstate, it, step, jax.random.fold_in(key, step)
        )
        t1 = time.perf_counter()
        params, opt_state, m = update(params, opt_state, ub, key, step)
        m = jax.device_get(m)
        t2 = time.perf_counter()
        s = dict(step_s=t2 - t0, update_s=t2 - t1, **times)
        s["other_s"] = t1 - t0 - s["generate_s"] - s["reference_s"]
        s["completion_len_mean"] = stats["length_mean"]
        steps.append(s)
        print(f"[lenrl] step {step}: {s}", file=sys.stderr, flush=True)
    if not np.isfinite(float(m["loss"])):
        raise FloatingPointError(f"non-finite loss {m}")
    return dict(
        setup=dict(
            remat=a.remat,
            attention=a.attention,
            ref_rows=rows,
            update_width=int(ub.loss_mask.shape[1]),
        ),
        **summarize(steps, a),
    )


RUNNERS = dict(lenrl=run_lenrl, trl=run_trl, tunix=run_tunix)
PACKAGES = dict(lenrl=("jax", "flax"), trl=("torch", "transformers", "trl"), tunix=("tunix",))


# --------------------------------------------------------------------------------------------------


def in_subprocess(name: str, argv: list[str], timeout: float, a) -> dict:
    """Runs this script with ``--only name``; its last stdout line is the framework's JSON."""
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--only", name]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = (e.stderr or b"").decode(errors="replace")
        sys.stderr.write(err[-4000:])
        return from_log(name, err, timeout, a)
    err = proc.stderr.decode(errors="replace")
    sys.stderr.write(err[-8000:])
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode or not lines:
        return dict(status=f"unavailable: exit code {proc.returncode}: {err.strip()[-600:]}")
    return json.loads(lines[-1])


def from_log(name: str, log: str, timeout: float, a) -> dict:
    """A framework that timed out (e.g. while tearing down) after logging its steps: the result
    from its ``[name] step k: {...}`` lines, if it got past the first step; else unavailable."""
    steps = [
        ast.literal_eval(m.group(1))
        for m in re.finditer(rf"^\[{name}\] step \d+: (\{{.*\}})$", log, re.MULTILINE)
    ]
    status = f"timed out after {timeout:.0f} s (--timeout-s)"
    if len(steps) < 2:
        return dict(status=f"unavailable: {status}")
    out = summarize(steps, a)
    return dict(status=f"{status}; the {len(steps)} steps it logged are used", **out)


def add_ratios(data: dict) -> dict:
    fw = data["frameworks"]
    base = fw.get("lenrl", {}).get("step_s")
    for name, row in fw.items():
        if name != "lenrl" and base and "step_s" in row:
            row["step_s_over_lenrl"] = row["step_s"] / base
    return data


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma list")
    p.add_argument("--size", default="0.5b", choices=[k for k in SIZES if k != "smoke"])
    p.add_argument("--prompts", type=int, default=32, help="P")
    p.add_argument("--group", type=int, default=8, help="G")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--max-new", type=int, default=1024)
    p.add_argument("--micro-rows", type=int, default=8, help="samples per gradient micro-batch")
    p.add_argument("--ref-rows", type=int, default=8, help="lenrl reference rows a call; 0 = all")
    p.add_argument("--steps", type=int, default=2, help="timed steps after the first")
    p.add_argument("--remat", default="none", choices=["none", "full", "dots"], help="lenrl")
    p.add_argument("--attention", default="auto", choices=["auto", "xla", "cudnn"], help="lenrl")
    p.add_argument("--trl-grad-ckpt", default="on", choices=["on", "off"], help="TRL default on")
    p.add_argument("--timeout-s", type=float, default=560, help="per framework subprocess")
    p.add_argument("--tiny", action="store_true", help="tiny shapes that run on a CPU")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--only", default=None, choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--merge", nargs="+", default=None, help="combine result files, then exit")
    a = p.parse_args(argv)
    if a.merge:
        merged = None
        for path in a.merge:
            with open(path) as f:
                data = json.load(f)
            merged = merged or {**data, "frameworks": {}}
            merged["frameworks"].update(data.get("frameworks", {}))
        report = Report(a.out, **add_ratios(merged))
        return report.finish()
    if a.tiny:
        a.size, a.prompts, a.group, a.prompt_len, a.max_new = "smoke", 4, 4, 16, 32
        a.micro_rows, a.ref_rows, a.steps = 4, 4, min(a.steps, 2)
    if a.only:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        result = guarded(a.only, lambda: RUNNERS[a.only](a))
        result["versions"] = versions(*PACKAGES[a.only])
        print(json.dumps(result, default=float), flush=True)
        return result
    n = a.prompts * a.group
    if n % a.micro_rows or a.micro_rows % a.group or (a.ref_rows and n % a.ref_rows):
        raise SystemExit("--micro-rows must be a multiple of --group; both row counts divide P * G")
    report = Report(
        a.out,
        **device_info(),
        setup=dict(
            size=a.size,
            prompts=a.prompts,
            group=a.group,
            prompt_len=a.prompt_len,
            max_new_tokens=a.max_new,
            micro_rows=a.micro_rows,
            steps_timed=a.steps,
            temperature=1.0,
            beta=BETA,
            epsilon=EPS,
            optimizer=f"AdamW lr={LR}, global-norm clip {CLIP}, one step (mu = 1)",
            dtype="bfloat16 weights",
        ),
        frameworks={},
    )
    for name in filter(None, a.frameworks.split(",")):
        t0 = time.perf_counter()
        row = in_subprocess(name, _strip(argv), a.timeout_s, a)
        row["wall_s"] = time.perf_counter() - t0
        report.data["frameworks"][name] = row
        add_ratios(report.data)
        report.save()
    return report.finish()


def _strip(argv: list[str]) -> list[str]:
    """``argv`` without ``--out``/``--frameworks`` (and their values) for the subprocesses."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
            continue
        if x in ("--out", "--frameworks"):
            skip = True
            continue
        if x.startswith(("--out=", "--frameworks=")):
            continue
        out.append(x)
    return out


if __name__ == "__main__":
    main()
