"""The supervised warm start: cross-entropy on worked solutions, padded or packed, fixed-size or
length-bucketed batches; resumable (its own orbax checkpoints under ``workdir/checkpoints/sft``).

Every process draws its own rows of each batch (`lenrl.train.multihost.Rows`); the jitted update
sees global arrays.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from lenrl.data.bucketing import make_bucketed_iterator
from lenrl.train import setup
from lenrl.train.batch import pad_rows, supervised_batch
from lenrl.train.checkpoints import Checkpointer
from lenrl.train.multihost import Rows, agree_max, to_host
from lenrl.train.packing import add_rows, max_rows, pack
from lenrl.train.rollout import prompt_ids
from lenrl.train.run import UPDATE_KEY, Run
from lenrl.train.update import make_optimizer, make_update, sft_loss, warmup_cosine


def run_sft(run: Run) -> None:
    """Phase 1: cross-entropy on worked solutions (the verbose chains of thought).

    A step takes ``sft.batch_size`` examples or, with ``sft.bucketing``, one length bucket's batch
    of at most ``sft.token_budget`` padded tokens (`lenrl.data.bucketing`), padded to the bucket's
    static size so that each bucket compiles once. With ``sft.packing`` each process packs its own
    examples into rows (`lenrl.train.packing`). In every layout the loss is the token mean over
    all completion tokens of the global batch.
    """
    cfg = run.config.sft
    if cfg.steps <= 0:
        return
    tp = run.config.data.max_prompt_len
    packed, bucketed = cfg.get("packing", False), cfg.get("bucketing", False)
    if bucketed and max(cfg.bucket_boundaries) < tp + cfg.max_len:
        raise ValueError(
            f"config.sft.bucket_boundaries={tuple(cfg.bucket_boundaries)}: the largest bucket must "
            f"hold max_prompt_len + sft.max_len = {tp + cfg.max_len} tokens."
        )
    ckpt = Checkpointer(run.workdir / "checkpoints" / "sft", keep=run.config.checkpoint.keep)
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
    updates = _sft_updates(run, optimizer, sft_loss(tp, packed=packed), state, packed)
    batch_axis = run.mesh.shape["data"] * run.mesh.shape["fsdp"]
    if bucketed:  # batch sizes are multiples of batch_axis: the same for any process count
        shards = run.rows(batch_axis)
        it = _bucketed_iterator(run, shards, batch_axis, data_state)
    else:
        shards = run.rows(cfg.batch_size)
        it = run.iterator(shards, 1, data_state, seed_offset=0)
    params, opt_state = state["params"], state["opt_state"]
    bar = run.progress(cfg.steps, step, "warm start")
    while step < cfg.steps:
        batch = next(it)
        if bucketed:
            prompts, comps = batch["prompt_ids"], batch["completion_ids"]
            size, bound = int(batch["bucket_size"]), int(batch["bucket_len"])
        else:
            examples = zip(batch["prompt"], batch["solution"], strict=True)
            pairs = [_sft_tokens(run, question, solution) for question, solution in examples]
            prompts, comps = [p for p, _ in pairs], [c for _, c in pairs]
            size, bound = shards.hi - shards.lo, None
        if packed:
            ub, n = _packed_sft_batch(run, shards, prompts, comps, size, bound), cfg.batch_size
        else:
            ub, n = _padded_sft_batch(run, shards, prompts, comps, size, bound)
        params, opt_state, m = updates(n)(
            params, opt_state, ub, run.step_key(UPDATE_KEY, step), step
        )
        step += 1
        bar.update(1)
        if step % run.config.log_every == 0 or step == cfg.steps:
            m = to_host(m)
            if bucketed:  # every process holds an equal share of the batch
                m.update(examples=len(prompts) * shards.count, bucket_len=bound)
            bar.set_postfix(nll=f"{float(m['nll']):.3f}")
            run.writer.write(step, m, phase="sft")
        if step % run.config.checkpoint.every == 0 or step == cfg.steps:
            ckpt.save(step, {"params": params, "opt_state": opt_state}, it.get_state())
    bar.close()
    ckpt.close()
    run.params = params


def _sft_updates(run: Run, optimizer, loss_fn, state, packed: bool):
    """``n -> update``: one jitted update per batch size ``n`` (a padded batch's rows; packed
    batches ignore ``n``), built on first use."""
    like = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        (state["params"], state["opt_state"]),
    )
    cache = {}

    def get(n: int):
        if n not in cache:
            update = make_update(run.graphdef, optimizer, loss_fn, batch_size=n, packed=packed)
            cache[n] = run.jit_update(update, *like)
        return cache[n]

    return get


def _sft_tokens(run: Run, question: str, solution: str) -> tuple[list[int], list[int]]:
    """``(prompt ids, completion ids)`` of one worked example; the completion is cut to
    ``sft.max_len - 1`` tokens and ends with EOS."""
    tok = run.tokenizer
    comp = tok.encode(solution, add_special_tokens=False)[: run.config.sft.max_len - 1]
    return prompt_ids(tok, question), comp + [tok.eos_token_id]


def _bucketed_iterator(run: Run, shards: Rows, multiple: int, state: dict | None):
    """This process's share of length-bucketed batches (length: prompt + completion tokens),
    with ``prompt_ids`` / ``completion_ids`` per example; global batch sizes are multiples of
    ``multiple``."""
    cfg = run.config.sft

    def tokenize(record: dict) -> dict:
        p, c = _sft_tokens(run, record["prompt"], record["solution"])
        return {**record, "prompt_ids": p, "completion_ids": c}

    it = make_bucketed_iterator(
        setup.build_source(run.config, "train"),
        length_fn=lambda r: len(r["prompt_ids"]) + len(r["completion_ids"]),
        boundaries=tuple(cfg.bucket_boundaries),
        token_budget=cfg.token_budget,
        seed=run.config.seed,
        window=cfg.get("bucket_window", 1024),
        map_fn=tokenize,
        shard_index=shards.index,
        shard_count=shards.count,
        multiple_of=multiple,
    )
    if state:
        it.set_state(state)
    return it


def _padded_sft_batch(run: Run, shards: Rows, prompts, comps, size: int, bound: int | None):
    """``(batch, n)``: this process's examples as rows of an ``n``-row global `UpdateBatch`.

    Fixed ``batch_size``: completions padded to the longest of any process (rounded up to 16).
    Bucketed: ``size`` rows per process (empty rows after the examples) and completions padded to
    the bucket's bound, so the shape depends on the bucket alone.
    """
    cfg = run.config.sft
    tp = run.config.data.max_prompt_len
    if bound is None:
        longest = agree_max(max(map(len, comps)))  # over every process's rows
        width = min(cfg.max_len, -(-longest // 16) * 16)  # bucketed: few compiles
        rows = shards
    else:
        width = min(cfg.max_len, bound)
        rows = run.rows(size * shards.count)
        empty = size - len(prompts)
        prompts, comps = list(prompts) + [[]] * empty, list(comps) + [[]] * empty
    tokens, mask = pad_rows(prompts, comps, tp, width, run.tokenizer.pad_token_id)
    return run.put_rows(supervised_batch(tokens, mask, tp), rows), rows.size


def _packed_sft_batch(run: Run, shards: Rows, prompts, comps, size: int, bound: int | None):
    """This process's examples packed into its rows of one global `PackedBatch` (one bin).

    Every process packs its own ``size`` samples (invalid padding samples after the examples);
    sample ids are offset to the process's block of the global samples. Fixed ``batch_size``:
    rows of ``max_prompt_len + sft.max_len`` tokens, as many as the fullest process needs (every
    process pads to that count with empty rows). Bucketed: rows of the largest bucket, as many as
    first-fit decreasing can need for the bucket (`max_rows`): one shape per bucket.
    """
    cfg = run.config.sft
    pad_id = run.tokenizer.pad_token_id
    n = len(prompts)
    valid = np.arange(size) < n
    prompts, comps = list(prompts) + [[]] * (size - n), list(comps) + [[]] * (size - n)
    batch_axis = run.mesh.shape["data"] * run.mesh.shape["fsdp"]
    if bound is None:
        row_len = run.config.data.max_prompt_len + cfg.max_len
        pb = pack(prompts, comps, row_len=row_len, valid=valid, pad_id=pad_id)
        multiple = math.lcm(batch_axis, 4) // shards.count  # few distinct counts: few compiles
        pb = add_rows(pb, -(-agree_max(pb.tokens.shape[1]) // multiple) * multiple, pad_id)
    else:
        row_len = max(cfg.bucket_boundaries)
        multiple = batch_axis // shards.count
        num_rows = -(-max_rows(size, bound, row_len) // multiple) * multiple
        pb = pack(prompts, comps, row_len=row_len, num_rows=num_rows, valid=valid, pad_id=pad_id)
    pb = pb._replace(sample_ids=pb.sample_ids + shards.index * size)
    return run.put_packed_rows(pb, shards)
