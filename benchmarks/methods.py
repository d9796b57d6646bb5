r"""Every length method of configs/methods.py trained from ONE warm start, then compared (issue #8).

  python benchmarks/methods.py --smoke --out runs/methods_smoke      # ~1 minute on 2 CPU cores
  python benchmarks/methods.py --out runs/methods_small --parallel 2  # all methods x seeds 0,1,2
  python benchmarks/methods.py --scale gpu --out runs/methods_gpu --parallel 2  # one H100

Phase A: one supervised warm start (configs/default.py with rl.steps=0, seed 0) in
OUT/work/warm_start, exported as a Hugging Face directory (`export/`).
Phase B: per method and seed, a subprocess
  python -m lenrl.launch --config=configs/methods.py:NAME --workdir=OUT/work/NAME/seedS
      --config.seed=S --config.model.path=OUT/work/warm_start/export --config.sft.steps=0 ...
(the other `--config.*` flags are the scale's settings, computed below; each run's exact command
is in its JSON). The synthetic tokenizer is rebuilt by every run, identical to the exported one.
Runs go seed by seed (every method at seed 0 first). Runs whose `summary.json` exists are
skipped (the sweep resumes); an interrupted run resumes from its own checkpoints. `--deadline-s`
stops the runs still going after that many seconds and writes the report of those done (e.g. a
sweep spread over time-limited calls). After an L1 run its export is evaluated on the held-out
prompts with fixed targets written into the prompt ("requested target vs produced length").
Output in --out: runs/NAME_seedS.json (summary + method, seed, wall time, command, per-step
curves, L1 targets), results.json (mean and std over seeds), table.md, pareto.png,
l1_targets.png, schedules.png; the script prints a JSON digest.

Scales. `small`: configs/default.py as is (0.6M parameters; 50 RL steps; held-out set of 500,
budget 160): 2.5-7 minutes per run on 2 CPU cores after a ~3.5 minute warm start. `gpu`
(`GPU_BASE`, one H100): a ~104M-parameter model (bf16 compute) on a harder task (6-12
operations; greedy solutions of the warm start 167-330 tokens, mean 248), every token-valued knob
of the presets x3 (`TOKEN_KEYS`), L1's per-token weight /3, 1000 SFT steps, 50 RL steps. Measured
on one H100 with --parallel 6 (six runs sharing the GPU): warm start 8.8 minutes, 2.5-7 minutes
per run, the 19 methods in ~17 minutes. `--report-only` rebuilds the report from the runs/*.json
in --out (for instance runs made on several machines and copied there) and trains nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor

import methods_report as report  # benchmarks/methods_report.py, beside this script
import ml_collections
import numpy as np

from lenrl import config_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS_PY = os.path.join(ROOT, "configs", "methods.py")
DEFAULT_PY = os.path.join(ROOT, "configs", "default.py")
BASELINE = "none"
SMOKE_METHODS = ("none", "l1_exact")

# ~104M parameters (vocab 35), on the synthetic task with 6-12 operations: verbose solutions
# ~160 tokens on average (max ~330), minimal ones 30-54. Everything not token-valued.
GPU_BASE = {
    "model.hidden_size": 768,
    "model.intermediate_size": 3072,
    "model.num_layers": 12,
    "model.num_heads": 12,
    "model.num_kv_heads": 4,
    "model.head_dim": 64,
    "model.dtype": "bfloat16",
    "data.synthetic.min_ops": 6,
    "data.synthetic.max_ops": 12,
    "data.max_prompt_len": 32,  # longest prompt 30 tokens (L1/HBPO presets add 16)
    "data.num_train": 50000,
    "sft.steps": 1000,  # the SFT loss is flat from ~step 1000 (0.089 nats/token)
    "sft.batch_size": 64,
    "sft.learning_rate": 3e-4,
    "sft.warmup_steps": 100,
    "rl.steps": 50,
    "rl.learning_rate": 2e-5,
    "rl.num_minibatches": 4,
    "rl.num_microbatches": 2,  # 32 sequences per forward: fits --parallel 6 on one H100
    "eval.every": 25,
    "checkpoint.every": 10,
}
GPU_TOKENS = 3  # token-valued knobs x3: sampler 480, SFT width 384, DLER cap 192, ...
# Config keys counted in tokens (scaled by the scale's factor) or per token (divided by it).
TOKEN_KEYS = (
    *("budget.max_new_tokens", "eval.budget", "eval.sweep", "sft.max_len"),
    *(f"budget.hparams.{k}" for k in ("value", "b0", "b_min", "l_low", "l_high", "limits")),
    *(f"penalty.hparams.{k}" for k in ("l_min", "t_min", "t_max", "margin", "l_cache", "l_max")),
    *("penalty.hparams.subgroup_budgets", "rl.advantage_hparams.l_max"),
)
PER_TOKEN_KEYS = ("penalty.hparams.alpha",)
# Must agree over every run so that the numbers compare.
WARM_START_SEED = 0  # seed of the warm start, whose held-out problems every run evaluates on
SHARED_KEYS = (
    "data.kind",
    "data.num_eval",
    "data.eval_seed",
    "data.synthetic",
    "eval.budget",
    "eval.greedy",
)


# ---------------------------------------------------------------------------------------------
# Configs: base overrides -> configs/methods.py preset -> token scaling -> run settings.


def flatten(cd, prefix: str = "") -> dict:
    """``{"a.b.c": leaf}`` of a ConfigDict (tuples are leaves)."""
    out = {}
    for key, value in cd.items():
        if isinstance(value, ml_collections.ConfigDict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def set_key(cd, key: str, value) -> None:
    *path, last = key.split(".")
    for p in path:
        cd = cd[p]
    cd[last] = value


def smoke_base() -> dict:
    """configs/default.py:smoke's changes to configs/default.py."""
    small, smoke = (flatten(config_files.load(DEFAULT_PY, a)) for a in (None, "smoke"))
    return {k: v for k, v in smoke.items() if small.get(k) != v}


def scale_of(args) -> tuple[dict, int]:
    """(base overrides, token factor) of the command line's scale."""
    base, tokens = (smoke_base(), 1) if args.smoke else ({}, 1)
    if args.scale == "gpu":
        base, tokens = dict(GPU_BASE), GPU_TOKENS
    if args.rl_steps is not None:
        base["rl.steps"] = args.rl_steps
    return base, tokens


def scale_tokens(c, factor: int) -> None:
    """Multiplies every `TOKEN_KEYS` value by ``factor`` (divides `PER_TOKEN_KEYS`)."""
    if factor == 1:
        return
    flat = flatten(c)
    for key in TOKEN_KEYS:
        v = flat.get(key)
        if v is not None:
            set_key(c, key, tuple(x * factor for x in v) if isinstance(v, tuple) else v * factor)
    for key in PER_TOKEN_KEYS:
        if flat.get(key) is not None:
            set_key(c, key, flat[key] / factor)


def build_config(name: str | None, base: dict, tokens: int):
    """The preset ``name`` of configs/methods.py (None: configs/default.py) built on
    configs/default.py with ``base`` applied, so that the presets' derived numbers (Kimi warm-up,
    ThinkPrune rounds, TLTS decay, SIRI period from rl.steps; prompt width) follow it."""
    default = config_files.load(DEFAULT_PY)
    for key, value in base.items():
        set_key(default, key, value)
    if name is None:
        c = default
    else:
        module = config_files.load_module(METHODS_PY)  # a fresh module: patched privately
        module._load_default = lambda: types.SimpleNamespace(
            get_config=lambda arg=None: copy.deepcopy(default)
        )
        c = module.get_config(name)
    scale_tokens(c, tokens)
    c.progress = False
    return c


def run_config(name: str, seed: int, base: dict, tokens: int, export: str):
    """The config of one Phase B run: the preset from the warm start's export, no SFT."""
    c = build_config(name, base, tokens)
    c.seed = seed
    c.data.eval_seed = WARM_START_SEED  # every run: the warm start's held-out problems
    c.model.path = export
    c.sft.steps = 0
    c.checkpoint.export = name in report.L1_METHODS  # the target evaluation loads it
    return c


def _flag_value(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, tuple | list):
        return repr(tuple(v))
    return repr(v) if isinstance(v, float) else str(v)


def launch_command(name: str, workdir: str, config) -> list[str]:
    """``python -m lenrl.launch`` with the flags that turn configs/methods.py:NAME into
    ``config`` (every key whose value differs)."""
    plain, flat = flatten(config_files.load(METHODS_PY, name)), flatten(config)
    if set(plain) != set(flat):
        raise ValueError(f"{name}: keys differ from the preset: {set(plain) ^ set(flat)}")
    flags = [f"--config.seed={config.seed}"] + [
        f"--config.{k}={_flag_value(v)}" for k, v in flat.items() if k != "seed" and plain[k] != v
    ]
    cmd = [sys.executable, "-m", "lenrl.launch", f"--config=configs/methods.py:{name}"]
    return [*cmd, f"--workdir={workdir}", *flags]


def check_comparable(configs: dict) -> None:
    """Every run evaluates on the same held-out set with the same budget and trains as long."""
    for key in (*SHARED_KEYS, "rl.steps", "model.path", "sft.steps"):
        values = {}
        for name, c in configs.items():
            v = flatten(c).get(key, None)
            if v is None:  # a sub-dict: compare its leaves
                v = sorted((k, repr(x)) for k, x in flatten(c).items() if k.startswith(key + "."))
            values.setdefault(repr(v), []).append(name)
        if len(values) > 1:
            raise AssertionError(f"config.{key} differs between runs: {values}")


# ---------------------------------------------------------------------------------------------
# Workers (subprocesses of this script: the driver never initialises JAX, which on a GPU would
# hold the memory the runs need).


def warm_start_worker(config, workdir: str) -> None:
    """Phase A: the trainer's supervised phase, then a held-out eval and a HF export."""
    from flax import nnx

    from lenrl import models
    from lenrl.train.run import Run
    from lenrl.train.trainer import run_sft

    t0 = time.time()
    run = Run(config, workdir)
    try:
        run_sft(run)
        metrics, _ = run.evaluate(run.params, "sft", config.sft.steps)
        model = nnx.merge(run.graphdef, run.params)
        models.save_pretrained(model, os.path.join(workdir, "export"), tokenizer=run.tokenizer)
    finally:
        run.writer.close()
    record = {"metrics": metrics, "wall_s": time.time() - t0, "sft_steps": config.sft.steps}
    with open(os.path.join(workdir, "warm_start.json"), "w") as f:
        json.dump(record, f, indent=2)


def l1_targets(t_min: int, t_max: int, n: int) -> list[int]:
    return sorted({int(round(t)) for t in np.linspace(t_min, t_max, n)})


def l1_eval_worker(config, workdir: str, num_targets: int) -> None:
    """Held-out length and accuracy of an L1 run's export with each fixed target in the prompt
    (the instruction the rollouts wrote: `lenrl.train.rollout.TARGET_TEMPLATES`)."""
    import jax
    from flax import nnx

    from lenrl import models
    from lenrl.evaluation import evaluate
    from lenrl.sampling.sampler import make_sampler
    from lenrl.train import setup
    from lenrl.train.rollout import TARGET_TEMPLATES

    export = os.path.join(workdir, "export")
    tokenizer = models.load_tokenizer(export)
    mesh = setup.build_mesh(config)
    model = models.from_pretrained(export, mesh=mesh, dtype=config.model.dtype)
    graphdef, params = nnx.split(model)
    source = setup.build_source(config, "eval")
    examples = [source[i] for i in range(min(config.data.num_eval, len(source)))]
    sampler = make_sampler(
        graphdef,
        setup.sampling_config(config, tokenizer, greedy=True, num_prompts=len(examples)),
        mesh=mesh,
        model_cfg=model.cfg,
    )
    template = TARGET_TEMPLATES[config.penalty.name]
    hp = config.penalty.hparams
    rows = []
    for t in l1_targets(hp.t_min, hp.t_max, num_targets):
        prompted = [{**ex, "prompt": f"{ex['prompt']} {template.format(n=t)}"} for ex in examples]
        m, records = evaluate(
            sampler,
            params,
            tokenizer,
            prompted,
            budget=config.eval.budget,
            verifier=config.data.verifier,
            key=jax.random.key(config.seed),
        )
        length = np.array([r["length"] for r in records], np.float64)
        rows.append(
            dict(
                target=t,
                accuracy=m["accuracy"],
                length_mean=m["length_mean"],
                length_std=float(length.std()),
                abs_gap_mean=float(np.abs(length - t).mean()),
                within_target=float((length <= t).mean()),
                truncation_rate=m["truncation_rate"],
            )
        )
    with open(os.path.join(workdir, "l1_targets.json"), "w") as f:
        json.dump(rows, f, indent=2)


# ---------------------------------------------------------------------------------------------
# Driver.


def _env(args) -> dict:
    env = dict(os.environ)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(args.out, "jax_cache"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
    if args.parallel > 1:  # runs that share one GPU: split its memory
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / args.parallel:.2f}")
    return env


STOPPED = -1000  # `_call`'s return code for a command stopped at --deadline-s


def _call(cmd: list[str], log: str, args) -> int:
    """Runs ``cmd`` (output to ``log``); at ``args.deadline`` (a ``time.time()``, or None) it is
    terminated and `STOPPED` returned: the trainer resumes it from its checkpoints next time."""
    with open(log, "a") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(args), stdout=f, stderr=f)
        try:
            left = None if args.deadline is None else max(args.deadline - time.time(), 0.0)
            return proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            f.write("stopped at the deadline (--deadline-s)\n")
            return STOPPED


def _past_deadline(args) -> bool:
    return args.deadline is not None and time.time() >= args.deadline


def _worker_cmd(args, kind: str, name: str = "", seed: int = 0) -> list[str]:
    cmd = [sys.executable, os.path.abspath(__file__), f"--worker={kind}", f"--out={args.out}"]
    cmd += [f"--scale={args.scale}", f"--l1-targets={args.l1_targets}"]
    cmd += [f"--worker-method={name}", f"--worker-seed={seed}"]
    cmd += ["--smoke"] * args.smoke + [f"--rl-steps={args.rl_steps}"] * (args.rl_steps is not None)
    return cmd


def _curves(workdir: str) -> dict:
    from lenrl.train.metrics import read_metrics

    rows = sorted(read_metrics(workdir, "rl"), key=lambda r: r["step"])
    train = [r for r in rows if "reward" in r]
    ev = [r for r in rows if "eval/accuracy" in r]
    curves = {"step": [r["step"] for r in train]}
    for k in ("length_mean", "accuracy", "reward", "truncation_rate", "base_budget"):
        curves[k] = [r.get(k, float("nan")) for r in train]
    curves["eval_step"] = [r["step"] for r in ev]
    curves["eval_accuracy"] = [r["eval/accuracy"] for r in ev]
    curves["eval_length_mean"] = [r["eval/length_mean"] for r in ev]
    return curves


def run_one(args, name: str, seed: int, config) -> str:
    """Trains (unless done) and evaluates one run; writes its JSON. Returns its status."""
    workdir = os.path.join(args.out, "work", name, f"seed{seed}")
    os.makedirs(workdir, exist_ok=True)
    cmd = launch_command(name, workdir, config)
    flags, done = (
        cmd[cmd.index(f"--workdir={workdir}") + 1 :],
        os.path.join(workdir, "summary.json"),
    )
    meta_path, meta = os.path.join(workdir, "command.json"), {"flags": flags, "command": cmd}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = {**meta, **json.load(f)}
        if meta["flags"] != flags:
            raise SystemExit(f"{workdir} holds a run with other settings; use another --out.")
    status = "skipped"
    if not os.path.exists(done):
        if _past_deadline(args):
            return "not started (--deadline-s)"
        t0 = time.time()
        rc = _call(cmd, os.path.join(workdir, "launch.log"), args)
        meta["wall_s"] = meta.get("wall_s_before", 0.0) + time.time() - t0  # over resumptions
        if rc == STOPPED:
            meta["wall_s_before"] = meta["wall_s"]
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=2)
        if rc == STOPPED:
            return "stopped at --deadline-s (resumes from its checkpoints)"
        if rc != 0:
            return f"failed (exit {rc}, see {workdir}/launch.log)"
        status = "trained"
    l1_path = os.path.join(workdir, "l1_targets.json")
    if name in report.L1_METHODS and not os.path.exists(l1_path):
        rc = _call(_worker_cmd(args, "l1_eval", name, seed), os.path.join(workdir, "l1.log"), args)
        if rc != 0:
            status += f"; L1 target eval failed (see {workdir}/l1.log)"
    if not args.keep_checkpoints:
        shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)
    with open(done) as f:
        record = json.load(f)
    record.update(method=name, seed=seed, wall_s=meta.get("wall_s"), command=meta["command"])
    record["curves"] = _curves(workdir)
    if os.path.exists(l1_path):
        with open(l1_path) as f:
            record["l1_targets"] = json.load(f)
    with open(os.path.join(args.out, "runs", f"{name}_seed{seed}.json"), "w") as f:
        json.dump(record, f, indent=2)
    return status


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="", help="comma list of preset names, or 'all'")
    ap.add_argument("--seeds", default="", help="comma list (default 0,1,2; --smoke: 0)")
    ap.add_argument("--rl-steps", type=int, default=None, help="RL steps (default: the scale's)")
    ap.add_argument("--parallel", type=int, default=1, help="concurrent runs")
    ap.add_argument("--out", default="runs/methods", help="output directory")
    ap.add_argument("--smoke", action="store_true", help="configs/default.py:smoke sizes")
    ap.add_argument("--scale", choices=("small", "gpu"), default="small")
    ap.add_argument("--l1-targets", type=int, default=5, help="targets of the L1 evaluation")
    ap.add_argument("--keep-checkpoints", action="store_true", help="keep finished runs' ckpts")
    ap.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="after this many seconds stop the runs (they resume next time) and write the report",
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: rebuild the report from the runs/*.json already in --out",
    )
    ap.add_argument("--worker", choices=("warm_start", "l1_eval"), help=argparse.SUPPRESS)
    ap.add_argument("--worker-method", default="", help=argparse.SUPPRESS)
    ap.add_argument("--worker-seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.smoke and args.scale != "small":
        ap.error("--smoke is a small-scale setting; drop --scale gpu")
    args.out = os.path.abspath(args.out)
    args.deadline = None if args.deadline_s is None else time.time() + args.deadline_s
    presets = config_files.load_module(METHODS_PY)
    if args.methods in ("", "all"):
        names = SMOKE_METHODS if args.smoke and not args.methods else tuple(presets.PRESETS)
    else:
        names = tuple(presets.ALIASES.get(m, m) for m in args.methods.split(","))
    bad = sorted(set(names) - set(presets.PRESETS))
    if bad:
        ap.error(f"unknown methods {bad}; valid: {sorted(presets.PRESETS)} or 'all'")
    args.names = list(dict.fromkeys(names))
    args.seed_list = [int(s) for s in (args.seeds or ("0" if args.smoke else "0,1,2")).split(",")]
    return args


def main(argv=None):
    args = parse_args(argv)
    base, tokens = scale_of(args)
    warm_dir = os.path.join(args.out, "work", "warm_start")
    export = os.path.join(warm_dir, "export")
    if args.worker == "warm_start":
        c = build_config(None, base, tokens)
        c.rl.steps = 0
        c.seed = c.data.eval_seed = WARM_START_SEED
        return warm_start_worker(c, warm_dir)
    if args.worker == "l1_eval":
        c = run_config(args.worker_method, args.worker_seed, base, tokens, export)
        workdir = os.path.join(args.out, "work", args.worker_method, f"seed{args.worker_seed}")
        return l1_eval_worker(c, workdir, args.l1_targets)

    t0 = time.time()
    jobs = [(m, s) for s in args.seed_list for m in args.names]  # seed-major: all methods early
    configs = {(m, s): run_config(m, s, base, tokens, export) for m, s in jobs}
    check_comparable({f"{m}/seed{s}": c for (m, s), c in configs.items()})
    os.makedirs(os.path.join(args.out, "runs"), exist_ok=True)
    os.makedirs(warm_dir, exist_ok=True)
    warm_json = os.path.join(warm_dir, "warm_start.json")
    if args.report_only and not os.path.exists(warm_json):
        raise SystemExit(f"--report-only: {warm_json} is missing; run the sweep first.")
    if not os.path.exists(warm_json):
        print("phase A: warm start ...", file=sys.stderr, flush=True)
        rc = _call(_worker_cmd(args, "warm_start"), os.path.join(warm_dir, "log.txt"), args)
        if rc == STOPPED:
            raise SystemExit("the warm start was stopped at --deadline-s; run again to resume it")
        if rc != 0:
            raise SystemExit(f"the warm start failed (exit {rc}): see {warm_dir}/log.txt")
    with open(warm_json) as f:
        warm = json.load(f)

    def job(ms):
        status = run_one(args, *ms, configs[ms])
        print(f"{ms[0]} seed {ms[1]}: {status}", file=sys.stderr, flush=True)
        return status

    if args.report_only:  # e.g. runs/*.json gathered from sweeps on several machines
        statuses = {}
    else:
        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            statuses = dict(zip(jobs, pool.map(job, jobs), strict=True))
    runs = [
        r for r in report.load_runs(os.path.join(args.out, "runs")) if r["method"] in args.names
    ]
    runs = [r for r in runs if r["seed"] in args.seed_list]
    results = report.write_report(runs, args.out, BASELINE, args.names) if runs else {}
    same = runs  # every run evaluates on the warm start's held-out set (data.eval_seed)
    gap = {
        k: max((abs(r["before"][k] - warm["metrics"][k]) for r in same), default=None)
        for k in ("accuracy", "length_mean")
    }
    settings = {
        "scale": "smoke" if args.smoke else args.scale,
        "rl_steps": next(iter(configs.values())).rl.steps if configs else None,
        "seeds": args.seed_list,
        "num_eval": warm_config_value(configs, "data.num_eval"),
        "eval_budget": warm_config_value(configs, "eval.budget"),
        "warm_start": warm,
        "before_vs_warm_start_max_abs_diff": gap,  # seed-0 runs start from the warm start
    }
    results["settings"] = settings
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    failed = {f"{m}/seed{s}": st for (m, s), st in statuses.items() if "failed" in st}
    digest = {
        "out": args.out,
        "settings": {k: v for k, v in settings.items() if k != "warm_start"},
        "warm_start": {k: warm["metrics"][k] for k in report.METRICS},
        "methods": {
            m: {k: [round(e[k]["mean"], 4), round(e[k]["std"], 4)] for k in report.METRICS}
            for m, e in results.get("methods", {}).items()
        },
        "statuses": {f"{m}/seed{s}": st for (m, s), st in statuses.items()},
        "failed": failed,
        "wall_s": time.time() - t0,
    }
    print(json.dumps(digest))
    return 1 if failed else 0


def warm_config_value(configs: dict, key: str):
    return flatten(next(iter(configs.values())))[key] if configs else None


if __name__ == "__main__":
    sys.exit(main())
