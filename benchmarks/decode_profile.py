"""Decode-step profile of the lenrl sampler, printed as one JSON object.

Commands:
  python benchmarks/decode_profile.py               # GPU: Qwen2.5-0.5B shape, batch 64 and 256
  python benchmarks/decode_profile.py --tiny        # tiny shapes on CPU, about a minute

Three measurements (random bf16 weights, greedy, stop tokens ignored, prompt 128, 512 new):
  sampler: the whole jitted sampler with ``decode_window=None`` (every step reads the whole
    ``T + L`` cache) and with the windowed default; tokens/s of the full budget and the mean
    decode step ``(t(512 new) - t(64 new)) / 448`` (one compiled program, traced budgets), as in
    benchmarks/sampler.py, so the numbers compare with its ``decode_step_ms``.
  step_vs_width: one `decode_step` (all rows live) on caches of each window width, run
    ``n`` times in a ``while_loop``; ms per step from ``(t(n2) - t(n1)) / (n2 - n1)``, and the bytes
    a step must read (weights + keys/values of the whole width) over that time, as GB/s and as a
    fraction of a device copy bandwidth measured in the same run.
  methods: the sampling-method step alone (`Greedy` / `Sample` ``.step``: token, sampling
    log-prob and policy logsumexp) on ``[B, V]`` f32 logits, ``V`` = 151,936, in the same
    ``while_loop`` timing; ``max_pass`` is one bare reduction over the logits for scale, and
    ``legacy_*`` the same step composed as before the fused ``step`` (for the saving).
Timing: one warm-up call (compile) excluded, the median of ``--repeats`` calls, each ended with
``block_until_ready``.
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
from common import SIZES, copy_bandwidth, median_time, model_config  # benchmarks/common.py
from flax import nnx

from lenrl import models
from lenrl.sampling import Greedy, PromptBatch, Sample, SamplingConfig, make_sampler
from lenrl.sampling.decode import Queue, decode_step, init_state

METHODS = {
    "greedy": Greedy(),
    "temperature_1": Sample(),
    "temperature_0.6": Sample(temperature=0.6),
    "top_k_16": Sample(top_k=16),
    "top_k_50": Sample(top_k=50),
    "top_p_0.95": Sample(top_p=0.95),
    "temperature_0.6_top_p_0.95": Sample(temperature=0.6, top_p=0.95),
}


def legacy_step(temperature: float | None):
    """The step as composed before the fused `step` (for comparison): the method, then
    ``token_logprob`` with its own logsumexp; sampling log-probs via a ``[B, V]`` log-softmax."""

    def step(logits, keys):
        if temperature is None:
            tokens = jnp.argmax(logits, axis=-1)
            samp = jnp.zeros(tokens.shape, jnp.float32)
        else:
            z = logits / temperature
            tokens = jax.vmap(jax.random.categorical)(keys, z)
            samp = jnp.take_along_axis(jax.nn.log_softmax(z, -1), tokens[:, None], -1)[:, 0]
        picked = jnp.take_along_axis(logits, tokens[:, None], -1)[:, 0]
        return tokens, samp, picked - jax.nn.logsumexp(logits, axis=-1)  # policy log-prob

    return step


LEGACY = {"legacy_greedy": None, "legacy_temperature_0.6": 0.6}


def per_iteration(fn, n1: int, n2: int, repeats: int) -> float:
    """Seconds per loop iteration of ``fn(n)`` (a jitted loop of traced length ``n``)."""
    jax.block_until_ready(fn(n1))  # compile
    t1, _ = median_time(lambda: jax.block_until_ready(fn(n1)), repeats)
    t2, _ = median_time(lambda: jax.block_until_ready(fn(n2)), repeats)
    return max(t2 - t1, 0.0) / (n2 - n1)


def kv_bytes(cfg: models.ModelConfig, rows: int, width: int) -> int:
    item = jnp.dtype(cfg.dtype).itemsize
    return rows * width * cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim * item


def bench_sampler(model, batch, prompt_len, new, short, window, repeats, rng):
    graphdef, state = nnx.split(model)
    cfg = SamplingConfig(
        greedy=True, buckets=(prompt_len,), max_new_tokens=new, decode_window=window
    )
    sampler = make_sampler(graphdef, cfg)
    tokens = rng.randint(1, model.cfg.vocab_size, (batch, prompt_len)).astype(np.int32)
    prompts = PromptBatch(tokens, np.full((batch,), prompt_len, np.int32))
    key = jax.random.key(0)

    def run(budget):
        return jax.block_until_ready(sampler(state, prompts, np.full(batch, budget), key))

    t0 = time.perf_counter()
    out = run(new)
    compile_s = time.perf_counter() - t0
    assert int(np.asarray(out.lengths).min()) == new, "stop tokens must be ignored"
    t_full, _ = median_time(lambda: run(new), repeats)
    t_short, _ = median_time(lambda: run(short), repeats)
    return dict(
        decode_window=window,
        windows=list(cfg.windows(prompt_len)),
        tokens_per_s=batch * new / t_full,
        total_s=t_full,
        decode_step_ms=1e3 * (t_full - t_short) / (new - short),
        compile_s=compile_s,
        compiled_programs=sampler.num_compiled(),
    )


def bench_step(model, batch, prompt_len, new, width, n1, n2, repeats, copy_bw):
    """One decode step over a ``[batch, width]`` cache, every row live."""
    graphdef, state = nnx.split(model)
    cfg = SamplingConfig(greedy=True, buckets=(prompt_len,), max_new_tokens=new)
    slots = cfg.slots(batch)
    zeros = jnp.zeros((batch,), jnp.int32)
    q = Queue(
        jnp.ones((batch, prompt_len), jnp.int32), zeros + prompt_len, zeros + new, zeros, zeros
    )

    def shard(x, axes):
        return x

    @jax.jit
    def loop(params, n):
        m = nnx.merge(graphdef, params)
        s = init_state(m.cfg, cfg, slots, q, shard, width)
        s = s.replace(
            live=jnp.ones((batch,), bool),
            prompt=jnp.arange(batch, dtype=jnp.int32),
            limit=zeros + new,
            cache=s.cache._replace(pos=jnp.zeros_like(s.cache.pos)),  # every slot attended
        )
        key = jax.random.key(0)
        s = jax.lax.fori_loop(0, n, lambda i, s: decode_step(m, s, key, cfg, shard), s)
        return s.out.tokens.sum()

    step_s = per_iteration(lambda n: loop(state, n), n1, n2, repeats)
    weights = sum(x.nbytes for x in jax.tree.leaves(state))
    nbytes = weights + kv_bytes(model.cfg, batch, width)
    return dict(
        width=width,
        step_ms=1e3 * step_s,
        bytes_per_step=nbytes,
        GBps=nbytes / step_s / 1e9 if step_s else None,
        bw_fraction=nbytes / step_s / copy_bw if step_s else None,
    )


def bench_method(name, batch, vocab, n1, n2, repeats):
    if name in LEGACY:
        step = legacy_step(LEGACY[name])
    elif name in METHODS:
        step = METHODS[name].step
    else:
        step = None  # max_pass
    logits = jax.random.normal(jax.random.key(1), (batch, vocab), jnp.float32) * 3
    keys = jax.random.split(jax.random.key(2), batch)

    @jax.jit
    def loop(logits, keys, n):
        def body(i, acc):
            x = logits + i.astype(jnp.float32) * 1e-6  # a new input per iteration (no hoisting)
            if step is None:
                return acc + jnp.max(x, axis=-1).sum()
            tokens, samp, lse = step(x, jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, i))
            return acc + tokens.sum() + samp.sum() + lse.sum()

        return jax.lax.fori_loop(0, n, body, jnp.zeros((), jnp.float32))

    step_s = per_iteration(lambda n: loop(logits, keys, n), n1, n2, repeats)
    return dict(method=name, batch=batch, vocab=vocab, ms=1e3 * step_s)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="0.5b", help="a benchmarks/sampler.py size")
    p.add_argument("--batches", default="64,256", help="comma list of batch sizes")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=512)
    p.add_argument("--window", type=int, default=SamplingConfig.decode_window)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", default="", help="comma list of sampler, step_vs_width, methods")
    p.add_argument("--tiny", action="store_true", help="tiny shapes that run on CPU")
    a = p.parse_args(argv)

    size, batches = a.size, [int(b) for b in a.batches.split(",")]
    prompt_len, new, short, window = a.prompt_len, a.new_tokens, 64, a.window
    vocab, n1, n2, copy_mb = SIZES[size]["vocab_size"], 8, 72, 1024
    if a.tiny:
        size, batches, prompt_len, new, short, window = "smoke", [4, 8], 16, 32, 8, 8
        vocab, n1, n2, copy_mb, a.repeats = 4096, 2, 6, 32, min(a.repeats, 2)
    skip = set(a.skip.split(",")) - {""}
    cfg = model_config(size)
    model = models.init_model(cfg)
    copy_bw = copy_bandwidth(copy_mb << 20, a.repeats)
    windows = SamplingConfig(max_new_tokens=new, decode_window=window).windows(prompt_len)
    result = dict(
        device=str(jax.devices()[0].device_kind),
        backend=jax.default_backend(),
        jax=jax.__version__,
        python=platform.python_version(),
        setup=dict(
            size=size,
            params=cfg.num_params(),
            prompt_len=prompt_len,
            new_tokens=new,
            short_tokens=short,
            decode_window=window,
            windows=list(windows),
            repeats=a.repeats,
            dtype="bfloat16",
        ),
        copy_bandwidth_GBps=copy_bw / 1e9,
        sampler=[],
        step_vs_width=[],
        methods=[],
    )
    rng = np.random.RandomState(0)
    for batch in batches:
        if "sampler" not in skip:
            rows = [
                bench_sampler(model, batch, prompt_len, new, short, w, a.repeats, rng)
                for w in (None, window)
            ]
            for r in rows:
                r["speedup_vs_whole_cache"] = rows[0]["total_s"] / r["total_s"]
                result["sampler"].append(dict(batch=batch, **r))
                print(json.dumps(result["sampler"][-1]), file=sys.stderr, flush=True)
        if "step_vs_width" not in skip:
            for width in windows:
                row = bench_step(model, batch, prompt_len, new, width, n1, n2, a.repeats, copy_bw)
                result["step_vs_width"].append(dict(batch=batch, **row))
                print(json.dumps(result["step_vs_width"][-1]), file=sys.stderr, flush=True)
        if "methods" not in skip:
            for name in ["max_pass", *LEGACY, *METHODS]:
                row = bench_method(name, batch, vocab, n1, n2, a.repeats)
                result["methods"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
