"""Packed vs padded policy update on a skewed length distribution, printed as one JSON object.

Commands:
  python benchmarks/packing.py              # GPU: Qwen2.5-0.5B shape, random bf16 weights
  python benchmarks/packing.py --tiny       # CPU smoke run, tiny shapes, about a minute

Workload: ``P`` prompts x ``G`` samples (default 16 x 4), prompts of 128 random tokens, completion
lengths drawn like the sampler benchmark's skew (most under 128 tokens, 1/16 of them 2048). One
update = one epoch, one AdamW step, gradient accumulated over microbatches, of the clipped
policy-gradient loss with a k3 KL term (DAPO preset, beta 0.05), the trainer's defaults.

- padded: the `UpdateBatch` layout, every sample a row of ``128 + 2048`` (the rollout's width is
  the longest completion), ``--micro-groups`` groups (``G`` rows each) per microbatch.
- packed: the same samples first-fit-decreasing into rows of ``128 + 2048`` tokens, in the fewest
  bins (microbatches) whose rows stay within the padded microbatch's row count, so both hold at
  most as many rows (and logits) per microbatch.

Real tokens are the prompt + completion tokens of the samples; ``tokens_per_s`` is real tokens
over the update's time. Timing: a warm-up call (compile) is excluded, then the median of
``--repeats`` calls, each ended with ``block_until_ready``. The host-side packing time is
reported apart and included in ``packed_with_host_tokens_per_s``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import median_time, model_config  # beside this script
from flax import nnx
from sampler import skewed_budgets

from lenrl import models
from lenrl.algorithms.losses import LossConfig
from lenrl.train import packing
from lenrl.train.batch import UpdateBatch, pad_rows
from lenrl.train.update import make_optimizer, make_update, pg_loss


def workload(rng, a, vocab) -> UpdateBatch:
    """A host (numpy) `UpdateBatch` of ``P * G`` samples with skewed completion lengths."""
    n = a.prompts * a.group
    lengths = skewed_budgets(rng, n, a.long, a.short_max, a.frac_long)
    prompts = [rng.randint(1, vocab, a.prompt_len).tolist() for _ in range(n)]
    comps = [rng.randint(1, vocab, k).tolist() for k in lengths]
    width = int(lengths.max())
    tokens, attn = pad_rows(prompts, comps, a.prompt_len, width, pad_id=0)
    comp_mask = attn[:, a.prompt_len :]

    def logp():  # near a random model's log-probs, so ratios and the KL stay moderate
        return np.where(comp_mask, -np.log(vocab) + 0.1 * rng.randn(n, width), 0.0)

    return UpdateBatch(
        tokens=tokens,
        attn_mask=attn,
        loss_mask=comp_mask,
        advantages=rng.randn(n).astype(np.float32),
        logp_old=logp().astype(np.float32),
        logp_ref=logp().astype(np.float32),
        truncated=lengths == a.long,
        valid=np.ones(n, bool),
        correct=(rng.rand(n) < 0.5).astype(np.float32),
    )


def fewest_bins(batch: UpdateBatch, a, max_rows: int) -> tuple[int, packing.PackedBatch]:
    """The fewest bins (a divisor of ``P``) whose packed rows all stay within ``max_rows``."""
    row_len = batch.tokens.shape[1]
    for k in [d for d in range(1, a.prompts + 1) if a.prompts % d == 0]:
        packed = packing.pack_update_batch(
            batch, prompt_len=a.prompt_len, row_len=row_len, num_bins=k, group_size=a.group
        )
        if packed.tokens.shape[1] <= max_rows:
            return k, packed
    raise ValueError(f"no split of {a.prompts} groups fits {max_rows} rows per microbatch")


def timed_update(graphdef, params, loss_fn, batch, a, *, micro, packed):
    optimizer = make_optimizer(1e-6, weight_decay=0.0)
    opt_state = jax.jit(optimizer.init)(params)
    update = jax.jit(
        make_update(
            graphdef,
            optimizer,
            loss_fn,
            batch_size=a.prompts * a.group,
            group_size=a.group,
            num_microbatches=micro,
            packed=packed,
        )
    )
    batch = jax.tree.map(jnp.asarray, batch)
    key = jax.random.key(0)

    def run():
        return jax.block_until_ready(update(params, opt_state, batch, key, 0))

    t0 = time.perf_counter()
    run()
    compile_s = time.perf_counter() - t0
    seconds, _ = median_time(run, a.repeats)
    return seconds, compile_s


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny shapes on CPU (smoke run)")
    p.add_argument("--size", default="0.5b", help="a shape of benchmarks/sampler.py")
    p.add_argument("--prompts", type=int, default=16, help="P groups")
    p.add_argument("--group", type=int, default=4, help="G samples per group")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--long", type=int, default=2048, help="length of the long completions")
    p.add_argument("--short-max", type=int, default=127, help="short completions: 8 .. this")
    p.add_argument("--frac-long", type=float, default=1 / 16)
    p.add_argument("--micro-groups", type=int, default=1, help="groups per padded microbatch")
    p.add_argument("--attention", default=None, help="xla | cudnn (default: cudnn on GPU)")
    p.add_argument("--remat", default="full", help="none | full | dots")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.tiny:
        a.size, a.prompts, a.group, a.prompt_len = "smoke", 4, 2, 16
        a.long, a.short_max, a.frac_long, a.repeats, a.remat = 64, 15, 1 / 8, 2, "none"
    on_gpu = jax.default_backend() == "gpu"
    attention = a.attention or ("cudnn" if on_gpu else "xla")
    cfg = dataclasses.replace(model_config(a.size), attention=attention, remat=a.remat)
    graphdef, params = nnx.split(models.init_model(cfg, seed=a.seed))

    rng = np.random.RandomState(a.seed)
    batch = workload(rng, a, cfg.vocab_size)
    n, row_len = batch.tokens.shape
    real = int(batch.attn_mask.sum())
    micro_rows = a.group * a.micro_groups
    bins, packed = fewest_bins(batch, a, micro_rows)
    pack_s, _ = median_time(
        lambda: packing.pack_update_batch(
            batch, prompt_len=a.prompt_len, row_len=row_len, num_bins=bins, group_size=a.group
        ),
        max(a.repeats, 3),
    )
    loss_cfg = LossConfig.dapo(beta=0.05, kl_estimator="k3")
    t_pad, c_pad = timed_update(
        graphdef,
        params,
        pg_loss(a.prompt_len, loss_cfg),
        batch,
        a,
        micro=a.prompts // a.micro_groups,
        packed=False,
    )
    t_pack, c_pack = timed_update(
        graphdef,
        params,
        pg_loss(a.prompt_len, loss_cfg, packed=True),
        packed,
        a,
        micro=bins,
        packed=True,
    )
    padded_slots = n * row_len
    stats = packing.padding_stats(packed)
    result = dict(
        device=jax.devices()[0].device_kind,
        backend=jax.default_backend(),
        host=platform.node(),
        versions={"jax": jax.__version__},
        setup=dict(
            size=a.size,
            params=cfg.num_params(),
            dtype=cfg.dtype,
            attention=attention,
            remat=a.remat,
            prompts=a.prompts,
            group=a.group,
            prompt_len=a.prompt_len,
            long=a.long,
            short_max=a.short_max,
            frac_long=a.frac_long,
            repeats=a.repeats,
            loss="dapo, beta 0.05 k3",
        ),
        real_tokens=real,
        padded=dict(
            rows=n,
            row_len=row_len,
            microbatches=a.prompts // a.micro_groups,
            rows_per_microbatch=micro_rows,
            padding_fraction=1.0 - real / padded_slots,
            update_s=t_pad,
            compile_s=c_pad,
            tokens_per_s=real / t_pad,
        ),
        packed=dict(
            rows=int(bins * packed.tokens.shape[1]),
            row_len=row_len,
            microbatches=bins,
            rows_per_microbatch=int(packed.tokens.shape[1]),
            padding_fraction=stats["padding_fraction"],
            update_s=t_pack,
            compile_s=c_pack,
            tokens_per_s=real / t_pack,
            host_pack_s=pack_s,
            with_host_tokens_per_s=real / (t_pack + pack_s),
        ),
        padding_fraction_removed=1.0 - (stats["slots"] - real) / (padded_slots - real),
        speedup=t_pad / t_pack,
    )
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
