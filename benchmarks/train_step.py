"""Training-step speed: one policy-gradient update in lenrl vs PyTorch transformers, as JSON.

Commands (from the repo root; one size per command keeps each under 10 minutes on one H100):
  python benchmarks/train_step.py --sizes 0.5b --out $OUT/train_step_0.5b.json
  python benchmarks/train_step.py --sizes 1.5b --out $OUT/train_step_1.5b.json
  python benchmarks/train_step.py --sizes 0.5b --variants dots:cudnn --skip-torch   # one variant
  python benchmarks/train_step.py --tiny       # tiny shapes on a CPU, well under a minute

Workload: Qwen2.5 shapes with random bf16 weights (bf16 compute, f32 log-probs and loss), ``B``
rows of ``T`` tokens (prompt ``Tp`` + completion ``Tc = T - Tp``, no padding), random tokens,
advantages, old and reference log-probs. One update = forward + backward + global-norm clip +
AdamW over the whole batch (``--microbatches`` splits it into gradient-accumulation steps), with
the GRPO loss (clipped ratio ``eps = 0.2``, ``k3`` KL with ``beta = 0.04``, per-sequence token
mean).

- lenrl: ``make_update(graphdef, make_optimizer(...), pg_loss(Tp, LossConfig.grpo()))``, jitted
  once with donated parameters and optimizer state (as the trainer does), for every ``--variants``
  pair ``remat:attention`` (remat none / full / dots, attention xla / cudnn), so one run shows the
  best setting. Each variant starts from the same parameters.
- torch: ``Qwen2ForCausalLM`` from the same config (sdpa attention, bf16 weights), the same batch
  and loss written in torch, ``logits_to_keep`` so only completion positions are projected (as
  TRL does), fused AdamW; eager and ``torch.compile`` of the loss (model forward included).

MFU = model FLOPs (``flops_formula`` in the output) / step time / the bf16 peak measured in the
same run by an ``n x n`` matmul (``peak_tflops``). Timing: the first call (compile) is excluded,
the median of ``--repeats`` calls is reported, each ended with ``block_until_ready`` (torch:
``torch.cuda.synchronize``). torch runs first and frees its memory before JAX starts; JAX does not
preallocate (``common`` sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false``), so both fit on one GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import (
    FLOPS_FORMULA,
    Report,
    device_info,
    guarded,
    hf_config,
    matmul_peak,
    median_time,
    model_config,
    on_mesh_of,
    train_flops,
    versions,
)
from flax import nnx

from lenrl import models
from lenrl.algorithms.losses import LossConfig
from lenrl.train.batch import UpdateBatch
from lenrl.train.update import make_optimizer, make_update, pg_loss

VARIANTS = "none:xla,full:xla,dots:xla,none:cudnn,full:cudnn,dots:cudnn"
LR = 1e-6
CLIP = 1.0
LOSS = LossConfig.grpo()  # eps 0.2, beta 0.04 k3, seq_mean_token_mean


def make_batch(rng, batch: int, seq_len: int, prompt_len: int, vocab: int) -> dict:
    """Numpy arrays of one update batch (the same values go to lenrl and torch)."""
    tc = seq_len - prompt_len
    logp = -math.log(vocab)  # random weights: every token has probability about 1 / V
    return dict(
        tokens=rng.randint(4, vocab, (batch, seq_len)).astype(np.int32),
        attn_mask=np.ones((batch, seq_len), bool),
        loss_mask=np.ones((batch, tc), bool),
        advantages=rng.randn(batch).astype(np.float32),
        logp_old=(logp + 0.01 * rng.randn(batch, tc)).astype(np.float32),
        logp_ref=(logp + 0.01 * rng.randn(batch, tc)).astype(np.float32),
    )


def _rate(row: dict, step_s: float, flops: float, peak: float, tokens: int) -> dict:
    row.update(
        step_s=step_s,
        tokens_per_s=tokens / step_s,
        model_tflops_per_s=flops / step_s / 1e12,
        mfu=flops / step_s / peak,
    )
    return row


# --------------------------------------------------------------------------------------------------
# lenrl


def lenrl_variant(graphdef, params0, batch: UpdateBatch, microbatches, repeats, flops, peak):
    """One jitted update of ``graphdef`` (a remat/attention variant) from a copy of ``params0``."""
    n, t = batch.tokens.shape
    optimizer = make_optimizer(LR, weight_decay=0.0, grad_clip=CLIP)
    params = jax.tree.map(jnp.copy, params0)
    opt_state = on_mesh_of(jax.jit(optimizer.init)(params), params)
    loss = pg_loss(t - batch.loss_mask.shape[1], LOSS)
    update = make_update(graphdef, optimizer, loss, batch_size=n, num_microbatches=microbatches)
    shardings = jax.tree.map(lambda x: x.sharding, (params, opt_state))
    jitted = jax.jit(update, out_shardings=(*shardings, None), donate_argnums=(0, 1))
    key, step = jax.random.key(0), jnp.int32(0)
    t0 = time.perf_counter()
    compiled = jitted.lower(params, opt_state, batch, key, step).compile()
    compile_s = time.perf_counter() - t0
    state = [params, opt_state]

    def run():
        p, o, m = compiled(state[0], state[1], batch, key, step)
        state[:] = jax.block_until_ready((p, o))
        return jax.device_get(m)

    t0 = time.perf_counter()
    run()  # warm-up (first execution, allocations)
    first_s = time.perf_counter() - t0
    step_s, metrics = median_time(run, repeats)
    if not all(np.isfinite(float(metrics[k])) for k in ("loss", "grad_norm")):
        raise FloatingPointError(f"non-finite loss or grad_norm: {metrics}")
    row = dict(compile_s=compile_s, first_step_s=first_s, loss=float(metrics["loss"]))
    row["grad_norm"] = float(metrics["grad_norm"])
    mem = compiled.memory_analysis()
    if mem is not None:
        row["temp_bytes"] = int(mem.temp_size_in_bytes)
        row["argument_bytes"] = int(mem.argument_size_in_bytes)
    del state[:]
    return _rate(row, step_s, flops, peak, n * t)


def bench_lenrl(size, variants, arrays, microbatches, repeats, flops, peak, on_row) -> list[dict]:
    """Every variant in turn; ``on_row(rows_so_far)`` after each (partial results survive)."""
    base = model_config(size)
    params0 = nnx.state(models.init_model(base))
    batch = UpdateBatch(
        **{k: jnp.asarray(v) for k, v in arrays.items()},
        truncated=jnp.zeros(len(arrays["tokens"]), bool),
        valid=jnp.ones(len(arrays["tokens"]), bool),
        correct=jnp.zeros(len(arrays["tokens"]), jnp.float32),
    )
    rows = []
    for remat, attention in variants:
        name = f"{remat}:{attention}"
        if attention == "cudnn" and jax.default_backend() != "gpu":
            rows.append(dict(variant=name, status="skipped: cudnn attention needs a GPU"))
            continue
        cfg = dataclasses.replace(base, remat=remat, attention=attention)
        graphdef, _ = models.abstract_model(cfg)
        row = guarded(
            f"lenrl {name}",
            lambda g=graphdef: lenrl_variant(g, params0, batch, microbatches, repeats, flops, peak),
        )
        rows.append(dict(variant=name, remat=remat, attention=attention, **row))
        on_row(rows)
        gc.collect()
    return rows


# --------------------------------------------------------------------------------------------------
# torch / transformers


def torch_update(size, arrays, prompt_len, microbatches, repeats, compiled, flops, peak) -> dict:
    import torch
    import transformers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(
        hf_config(size), dtype=torch.bfloat16, attn_implementation="sdpa"
    ).to(device)
    model.train()
    opt = torch.optim.AdamW(
        model.parameters(), lr=LR, weight_decay=0.0, fused=device == "cuda"
    )  # bf16 moments, like optax.adamw over bf16 params
    x = {k: torch.as_tensor(v, device=device) for k, v in arrays.items()}
    n, t = x["tokens"].shape
    tc = t - prompt_len

    def loss_fn(tokens, attn, mask, adv, old, ref):
        out = model(input_ids=tokens, attention_mask=attn, logits_to_keep=tc + 1, use_cache=False)
        logits = out.logits[:, :-1].float()  # [b, Tc, V], position Tp - 1 + i predicts token i
        targets = tokens[:, prompt_len:]
        logp = logits.gather(-1, targets[..., None])[..., 0] - torch.logsumexp(logits, -1)
        ratio = torch.exp(logp - old)
        a = adv[:, None]
        clipped = torch.clamp(ratio, 1 - LOSS.eps_low, 1 + LOSS.eps_high)
        pg = torch.maximum(-a * ratio, -a * clipped)
        d = ref - logp
        per_token = pg + LOSS.beta * (torch.exp(d) - d - 1)
        m = mask.float()
        return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()

    fn = torch.compile(loss_fn) if compiled else loss_fn
    rows = n // microbatches

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def step():
        total = 0.0
        for i in range(microbatches):
            s = slice(i * rows, (i + 1) * rows)
            loss = fn(
                x["tokens"][s],
                x["attn_mask"][s].long(),
                x["loss_mask"][s],
                x["advantages"][s],
                x["logp_old"][s],
                x["logp_ref"][s],
            )
            (loss / microbatches).backward()
            total += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        return float(total) / microbatches, float(grad_norm)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step()  # warm-up (compiles with torch.compile)
    first_s = time.perf_counter() - t0
    step()  # a second warm-up: torch.compile may specialise again after the first step
    step_s, (loss, grad_norm) = median_time(step, repeats)
    if not (np.isfinite(loss) and np.isfinite(grad_norm)):
        raise FloatingPointError(f"non-finite loss {loss} or grad_norm {grad_norm}")
    row = dict(device=device, first_step_s=first_s, loss=loss, grad_norm=grad_norm)
    if device == "cuda":
        row["peak_bytes"] = int(torch.cuda.max_memory_allocated())
    return _rate(row, step_s, flops, peak, n * t)


def free_torch() -> None:
    """Returns the memory of a finished torch run to the GPU (JAX runs next)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------------


def parse_variants(spec: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, spec.split(",")):
        remat, _, attention = item.partition(":")
        if remat not in ("none", "full", "dots") or attention not in ("xla", "cudnn"):
            raise SystemExit(f"--variants item {item!r}: use remat:attention, e.g. dots:cudnn")
        out.append((remat, attention))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="0.5b,1.5b", help="comma list of 0.5b, 1.5b")
    p.add_argument("--batch", type=int, default=8, help="rows per update (B)")
    p.add_argument("--seq-len", type=int, default=1024, help="T = prompt + completion")
    p.add_argument("--prompt-len", type=int, default=128, help="Tp")
    p.add_argument("--microbatches", type=int, default=1, help="gradient-accumulation steps")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--variants", default=VARIANTS, help="comma list of remat:attention")
    p.add_argument("--skip-torch", action="store_true", help="lenrl only")
    p.add_argument("--skip-torch-compile", action="store_true", help="torch eager only")
    p.add_argument("--matmul-n", type=int, default=8192, help="size of the peak-FLOP/s matmul")
    p.add_argument("--tiny", action="store_true", help="tiny shapes that run on a CPU")
    p.add_argument("--out", default=None, help="also write the JSON here (after every row)")
    a = p.parse_args(argv)
    sizes = a.sizes.split(",")
    if a.tiny:
        sizes, a.batch, a.seq_len, a.prompt_len = ["smoke"], 4, 64, 16
        a.repeats, a.matmul_n = min(a.repeats, 2), 256
    if a.batch % a.microbatches:
        raise SystemExit(f"--microbatches={a.microbatches} must divide --batch={a.batch}")
    variants = parse_variants(a.variants)
    peak = matmul_peak(a.matmul_n)
    report = Report(
        a.out,
        **device_info(),
        versions=versions("jax", "flax", "optax", "torch", "transformers"),
        setup=dict(
            batch=a.batch,
            seq_len=a.seq_len,
            prompt_len=a.prompt_len,
            completion_len=a.seq_len - a.prompt_len,
            microbatches=a.microbatches,
            repeats=a.repeats,
            dtype="bfloat16 weights and compute, f32 log-probs and loss",
            loss=dataclasses.asdict(LOSS),
            optimizer=f"AdamW lr={LR}, no weight decay, global-norm clip {CLIP}",
        ),
        flops_formula=FLOPS_FORMULA,
        peak_tflops=peak / 1e12,
        peak_note=f"bf16 {a.matmul_n}^3 matmul, f32 accumulation, measured in this run",
    )
    rng = np.random.RandomState(0)
    sizes_rows = {}
    for size in sizes:
        cfg = model_config(size)
        flops = train_flops(cfg, a.batch, a.seq_len, a.seq_len - a.prompt_len)
        arrays = make_batch(rng, a.batch, a.seq_len, a.prompt_len, cfg.vocab_size)
        sizes_rows[size] = (cfg, flops, arrays)
    torch_rows = {size: {} for size in sizes}
    if not a.skip_torch:  # all torch first, then free its memory for JAX
        for size, (_, flops, arrays) in sizes_rows.items():
            for compiled in (False, True) if not a.skip_torch_compile else (False,):
                name = "torch_compile" if compiled else "torch_eager"
                torch_rows[size][name] = guarded(
                    f"{name} {size}",
                    lambda s=size, c=compiled, f=flops, arr=arrays: torch_update(
                        s, arr, a.prompt_len, a.microbatches, a.repeats, c, f, peak
                    ),
                )
                free_torch()
                report.data["in_progress"] = dict(torch=torch_rows)
                report.save()

    def on_row(size, rows):
        report.data["in_progress"] = dict(size=size, torch=torch_rows[size], lenrl=rows)
        report.save()

    for size, (cfg, flops, arrays) in sizes_rows.items():
        lenrl_rows = bench_lenrl(
            size,
            variants,
            arrays,
            a.microbatches,
            a.repeats,
            flops,
            peak,
            on_row=lambda rows, s=size: on_row(s, rows),
        )
        timed = [r for r in lenrl_rows if "step_s" in r]
        best = min(timed, key=lambda r: r["step_s"]) if timed else None
        row = dict(
            size=size,
            params=cfg.num_params(),
            model_tflops_per_step=flops / 1e12,
            lenrl=lenrl_rows,
            lenrl_best=None if best is None else best["variant"],
            **torch_rows[size],
        )
        for t in torch_rows[size].values():
            if best is not None and "step_s" in t:
                t["lenrl_best_speedup"] = t["step_s"] / best["step_s"]
        report.data.pop("in_progress", None)
        report.row("sizes", row)
    return report.finish()


if __name__ == "__main__":
    main()
