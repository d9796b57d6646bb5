"""Sampler benchmark: lenrl vs transformers ``generate`` (and Tunix), printed as one JSON object.

Commands:
  python benchmarks/sampler.py                      # GPU: Qwen2.5-0.5B/1.5B shapes, batch 64, 256
  python benchmarks/sampler.py --sizes 0.5b --batches 64 --skip-torch
  python benchmarks/sampler.py --tiny               # tiny shapes, CPU, < 1 minute (= --smoke)
A whole default run (two sizes, torch included) can pass 10 minutes on one H100: run one size per
command (``--sizes 0.5b``, then ``--sizes 1.5b``). Each finished row is also printed to stderr.

Workloads (random bf16 weights, random prompt ids, stop tokens ignored, greedy):
  throughput: prompt 128, 512 new tokens for every row. lenrl tokens/s against transformers
    ``generate`` with a static and a dynamic cache, and lenrl's fraction of the memory-bandwidth
    bound: bytes read per decode step (all weights + the KV-cache window the step attends
    over, averaged over the measured steps) over the measured step time, against a
    device-to-device copy bandwidth measured in the same run. ``ideal_fraction`` counts only
    the live part of the cache instead.
    The step time is (t(512 new) - t(64 new)) / 448 with ONE compiled program (budgets are
    traced), so prefill and dispatch cancel out. Tunix's vanilla sampler (google-tunix, its
    Qwen2 model with the same random shapes and bf16 weights, greedy, no stop token) runs the
    same prompts and budget beside it (``tunix.lenrl_speedup``); if tunix is not installed or
    fails, its entry says why (``status``) and the run goes on. ``--skip-tunix`` leaves it out.
  skew: budgets drawn so most rows stop under 128 tokens and ~6% run to 2048: slot refill
    (``num_slots`` = batch/4, batch/2) against one static batch (``num_slots=None``).
Timing: a warm-up call (compile) is excluded; ``--repeats`` timed calls, each ended with
``block_until_ready`` (``torch.cuda.synchronize`` for torch); the median is reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import (
    SIZES,
    copy_bandwidth,
    guarded,
    hf_config,
    median_time,
    model_config,
    tunix_qwen2_config,
    versions,
)
from flax import nnx

from lenrl import models
from lenrl.sampling import PromptBatch, SamplingConfig, make_sampler

__all__ = ["SIZES", "main"]  # rl_steps.py imports SIZES from here


def random_prompts(rng, batch, prompt_len, vocab) -> PromptBatch:
    tokens = rng.randint(1, vocab, (batch, prompt_len)).astype(np.int32)
    return PromptBatch(tokens, np.full((batch,), prompt_len, np.int32))


def cache_bytes(cfg: models.ModelConfig, rows: int, slots: float) -> float:
    item = jnp.dtype(cfg.dtype).itemsize
    return rows * slots * cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim * item


def bench_lenrl(model, cfg, batch, prompt_len, new, short, repeats, copy_bw, rng):
    graphdef, state = nnx.split(model)
    sampler = make_sampler(
        graphdef, SamplingConfig(greedy=True, buckets=(prompt_len,), max_new_tokens=new)
    )
    prompts = random_prompts(rng, batch, prompt_len, cfg.vocab_size)
    key = jax.random.key(0)

    def run(budget):
        return jax.block_until_ready(sampler(state, prompts, np.full(batch, budget), key))

    t0 = time.perf_counter()
    run(new)
    compile_s = time.perf_counter() - t0
    t_full, out = median_time(lambda: run(new), repeats)
    t_short, _ = median_time(lambda: run(short), repeats)
    assert int(np.asarray(out.lengths).min()) == new, "stop tokens must be ignored"
    step_s = (t_full - t_short) / (new - short)
    weights = sum(x.nbytes for x in jax.tree.leaves(state))
    # A decode step reads the weights and its window of the cache (the whole cache when
    # decode_window is None): average the window width over the measured steps short..new.
    windows = sampler.cfg.windows(prompt_len)
    width = np.mean([min(w for w in windows if w > prompt_len + g) for g in range(short, new)])
    full = weights + cache_bytes(cfg, batch, width)
    live = weights + cache_bytes(cfg, batch, prompt_len + (short + new) / 2)  # live rows only
    return dict(
        tokens_per_s=batch * new / t_full,
        total_s=t_full,
        decode_step_ms=1e3 * step_s,
        compile_s=compile_s,
        compiled_programs=sampler.num_compiled(),
        bytes_per_step=full,
        cache_windows=list(windows),
        bw_fraction=full / step_s / copy_bw,
        ideal_fraction=live / step_s / copy_bw,
    )


def bench_torch(size, batch, prompt_len, new, repeats, cache_impl):
    try:
        import torch
        import transformers
    except ImportError as e:
        return dict(status=f"unavailable: {e}")
    s = SIZES[size]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf_cfg = hf_config(size)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.bfloat16)
    model = model.to(device).eval()
    ids = torch.randint(1, s["vocab_size"], (batch, prompt_len), device=device)
    att = torch.ones_like(ids)

    def run():
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=att,
                do_sample=False,
                max_new_tokens=new,
                pad_token_id=0,
                cache_implementation=cache_impl,
            )
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    t0 = time.perf_counter()
    out = run()
    warm = time.perf_counter() - t0
    assert out.shape[1] == prompt_len + new, out.shape
    t, _ = median_time(run, repeats)
    return dict(tokens_per_s=batch * new / t, total_s=t, warmup_s=warm, device=device)


def bench_tunix(size, batch, prompt_len, new, repeats):
    """Tunix's vanilla sampler (its Qwen2, same shape, bf16, greedy, no stop token).

    The timed call is Tunix's whole ``Sampler.__call__`` (tokenize, prefill, decode loop, copy to
    host, detokenize), as a Tunix user calls it; the prompts are space-separated ids.
    """
    from tunix.generate import sampler as tsampler
    from tunix.models.qwen2 import model as tqwen

    s = SIZES[size]
    tcfg = tunix_qwen2_config(size)
    transformer = tqwen.Qwen2(tcfg, rngs=nnx.Rngs(0))

    class IdTokenizer:  # prompts are space-separated ids
        def encode(self, text, **kw):
            return [int(t) for t in text.split()]

        def decode(self, ids, **kw):
            return " ".join(str(int(i)) for i in ids)

        def bos_id(self):
            return None

        def eos_id(self):
            return s["vocab_size"] - 1

        def pad_id(self):
            return 0

    cache = tsampler.CacheConfig(
        cache_size=prompt_len + new,
        num_layers=s["num_layers"],
        num_kv_heads=s["num_kv_heads"],
        head_dim=s["head_dim"],
    )
    smp = tsampler.Sampler(transformer, IdTokenizer(), cache)
    rng = np.random.RandomState(0)
    texts = [
        " ".join(map(str, rng.randint(1, s["vocab_size"] - 1, prompt_len))) for _ in range(batch)
    ]

    def run():
        return smp(
            texts,
            max_generation_steps=new,
            max_prompt_length=prompt_len,
            eos_tokens=[-1],  # no stop token, as for lenrl
            temperature=0.0,
        )

    t0 = time.perf_counter()
    out = run()
    warm = time.perf_counter() - t0
    lengths = {len(t) for t in out.tokens}
    if lengths != {new}:
        raise AssertionError(f"Tunix produced completion lengths {sorted(lengths)}, not {new}")
    t, _ = median_time(run, repeats)
    return dict(tokens_per_s=batch * new / t, total_s=t, warmup_s=warm)


def skewed_budgets(rng, batch, long_len, short_max, frac_long):
    n_long = max(1, int(round(frac_long * batch)))
    budgets = rng.randint(8, short_max + 1, batch)
    budgets[rng.choice(batch, n_long, replace=False)] = long_len
    return budgets.astype(np.int32)


def bench_skew(
    model, cfg, batch, prompt_len, long_len, short_max, frac_long, slot_fracs, repeats, rng
):
    graphdef, state = nnx.split(model)
    budgets = skewed_budgets(rng, batch, long_len, short_max, frac_long)
    prompts = random_prompts(rng, batch, prompt_len, cfg.vocab_size)
    key = jax.random.key(0)
    rows, ref = [], None
    for frac in [None, *slot_fracs]:
        slots = None if frac is None else max(1, int(batch * frac))
        sc = SamplingConfig(
            greedy=True, buckets=(prompt_len,), max_new_tokens=long_len, num_slots=slots
        )
        sampler = make_sampler(graphdef, sc)

        def run(sampler=sampler):
            return jax.block_until_ready(sampler(state, prompts, budgets, key))

        t0 = time.perf_counter()
        run()
        compile_s = time.perf_counter() - t0
        t, out = median_time(run, repeats)
        np.testing.assert_array_equal(np.asarray(out.lengths), budgets)
        tokens = np.asarray(out.tokens)
        ref = tokens if ref is None else ref
        rows.append(
            dict(
                num_slots=slots or batch,
                mode="static" if slots is None else "refill",
                slots=sc.slots(batch)._asdict(),
                total_s=t,
                tokens_per_s=float(budgets.sum()) / t,
                decode_steps=int(out.decode_steps),
                compile_s=compile_s,
                same_tokens_as_static=bool(np.array_equal(tokens, ref)),
                # bf16: another batch composition may flip near-ties of the argmax
                token_agreement_with_static=float((tokens == ref).mean()),
            )
        )
        print(json.dumps(dict(skew_row=rows[-1])), flush=True, file=sys.stderr)
    static = rows[0]["total_s"]
    for r in rows:
        r["speedup_vs_static"] = static / r["total_s"]
    return dict(
        batch=batch,
        prompt_len=prompt_len,
        budget_max=int(budgets.max()),
        budget_mean=float(budgets.mean()),
        n_long=int((budgets == long_len).sum()),
        frac_under_128=float((budgets < 128).mean()),
        runs=rows,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="0.5b,1.5b", help="comma list of 0.5b, 1.5b")
    p.add_argument("--batches", default="64,256", help="comma list of batch sizes")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--torch-repeats", type=int, default=2, help="timed generate calls (slow)")
    p.add_argument("--skip-torch", action="store_true", help="skip transformers generate")
    p.add_argument("--skip-skew", action="store_true", help="skip the skewed-length workload")
    p.add_argument("--skip-throughput", action="store_true", help="only the skewed-length workload")
    p.add_argument("--skew-batch", type=int, default=256)
    p.add_argument("--skew-slots", default="0.25,0.5", help="num_slots as fractions of batch")
    p.add_argument("--skip-tunix", action="store_true", help="skip Tunix's sampler")
    p.add_argument("--attention", default="auto", choices=["auto", "xla", "cudnn"], help="lenrl")
    p.add_argument("--tunix", action="store_true", help=argparse.SUPPRESS)  # old flag: default now
    p.add_argument("--smoke", "--tiny", action="store_true", help="tiny shapes that run on CPU")
    a = p.parse_args(argv)

    sizes = a.sizes.split(",")
    batches = [int(b) for b in a.batches.split(",")]
    prompt_len, new, short = a.prompt_len, a.new_tokens, 64
    skew = dict(batch=a.skew_batch, long_len=2048, short_max=127, frac_long=1 / 16)
    copy_mb = 1024
    if a.smoke:
        sizes, batches, prompt_len, new, short, copy_mb = ["smoke"], [4, 8], 16, 32, 8, 32
        skew = dict(batch=16, long_len=64, short_max=15, frac_long=1 / 8)
        a.repeats, a.torch_repeats = min(a.repeats, 2), 1
    slot_fracs = [float(f) for f in a.skew_slots.split(",") if f]
    rng = np.random.RandomState(0)
    copy_bw = copy_bandwidth(copy_mb << 20, a.repeats)
    result = dict(
        device=str(jax.devices()[0].device_kind),
        backend=jax.default_backend(),
        jax=jax.__version__,
        python=platform.python_version(),
        versions=versions("jax", "flax", "torch", "transformers", "tunix"),
        setup=dict(
            prompt_len=prompt_len,
            new_tokens=new,
            short_tokens=short,
            repeats=a.repeats,
            attention=a.attention,
            dtype="bfloat16",
            greedy=True,
            stop_tokens="ignored",
        ),
        copy_bandwidth_GBps=copy_bw / 1e9,
        throughput=[],
        skew=[],
    )
    for size in sizes:
        cfg = model_config(size, attention=a.attention)
        model = models.init_model(cfg)
        for batch in [] if a.skip_throughput else batches:
            row = dict(size=size, batch=batch, params=cfg.num_params())
            row["lenrl"] = bench_lenrl(
                model, cfg, batch, prompt_len, new, short, a.repeats, copy_bw, rng
            )
            if not a.skip_torch:
                for impl, name in (("static", "torch_static"), (None, "torch_dynamic")):
                    row[name] = bench_torch(size, batch, prompt_len, new, a.torch_repeats, impl)
                    if "tokens_per_s" in row[name]:
                        row[name]["lenrl_speedup"] = (
                            row["lenrl"]["tokens_per_s"] / row[name]["tokens_per_s"]
                        )
            if not a.skip_tunix:
                row["tunix"] = guarded(
                    "tunix", lambda s=size, b=batch: bench_tunix(s, b, prompt_len, new, a.repeats)
                )
                if "tokens_per_s" in row["tunix"]:
                    row["tunix"]["lenrl_speedup"] = (
                        row["lenrl"]["tokens_per_s"] / row["tunix"]["tokens_per_s"]
                    )
            result["throughput"].append(row)
            print(json.dumps(row), flush=True, file=sys.stderr)
        if not a.skip_skew:
            result["skew"].append(
                dict(
                    size=size,
                    **bench_skew(
                        model,
                        cfg,
                        skew["batch"],
                        prompt_len,
                        skew["long_len"],
                        skew["short_max"],
                        skew["frac_long"],
                        slot_fracs,
                        a.repeats,
                        rng,
                    ),
                )
            )
        del model
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
