"""The policy update: ``epochs`` passes over minibatches of one fixed-shape batch, as nested scans.

In the shape of purejaxrl's PPO update: every static size is fixed in Python by `make_update`, which
returns one pure function ``update(params, opt_state, batch, key, step) -> (params, opt_state,
metrics)``. Its body is ``scan(epochs) -> scan(minibatches) -> scan(microbatches)``: each epoch
shuffles whole groups (the G samples of a prompt stay together, which group-level objectives such
as DRPO need), each minibatch takes one optimizer step, and its gradient is accumulated over
microbatches. The trainer jits it once with explicit shardings and donated state.

Packed batches (``packed=True``, `lenrl.train.packing.PackedBatch`): the batch is ``K`` bins, one
per microbatch, each holding whole groups packed into rows; each epoch shuffles the bins, and the
loss functions built with ``packed=True`` give the values (and gradients) of the padded layout on
the same samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lenrl.algorithms.drpo import DRPOConfig, drpo_loss
from lenrl.algorithms.losses import (
    LossConfig,
    kl_k1,
    kl_k3,
    per_sample_mean,
    per_sample_sum,
    policy_loss,
)
from lenrl.train.batch import UpdateBatch
from lenrl.train.logprobs import completion_logprobs, packed_logprobs
from lenrl.train.packing import PackedBatch

Batch = UpdateBatch | PackedBatch
LossFn = Callable[[nnx.Module, Batch, jax.Array], tuple[jax.Array, dict]]


def _masked_mean(x, mask):
    mask = mask.astype(jnp.float32)
    return jnp.sum(x * mask) / jnp.maximum(mask.sum(), 1.0)


def _logprobs(model, batch: Batch, prompt_len: int, packed: bool):
    """``(logp, entropy, mask)``: per-token values and the loss tokens of valid samples, ``[N, Tc]``
    padded or ``[B, R]`` packed."""
    if packed:
        logp, entropy = packed_logprobs(model, batch.tokens, batch.segment_ids, batch.positions)
        return logp, entropy, batch.loss_mask & batch.valid[batch.sample_ids]
    logp, entropy = completion_logprobs(model, batch.tokens, batch.attn_mask, prompt_len)
    return logp, entropy, batch.loss_mask & batch.valid[:, None]


def sft_loss(prompt_len: int, *, packed: bool = False) -> LossFn:
    """Token-mean cross-entropy on the completion tokens (supervised warm start)."""

    def loss(model, batch: Batch, step):
        logp, entropy, mask = _logprobs(model, batch, prompt_len, packed)
        nll = -_masked_mean(logp, mask)
        return nll, {"nll": nll, "entropy": _masked_mean(entropy, mask)}

    return loss


def pg_loss(
    prompt_len: int, config: LossConfig, beta: Callable | None = None, *, packed: bool = False
) -> LossFn:
    """The clipped policy-gradient loss with KL to the reference (spec section 5).

    ``beta`` optionally schedules the KL coefficient (``step -> value``).
    """

    def loss(model, batch: Batch, step):
        logp, entropy, mask = _logprobs(model, batch, prompt_len, packed)
        value, metrics = policy_loss(
            logp,
            batch.logp_old,
            batch.advantages,
            batch.loss_mask,
            config,
            logp_ref=batch.logp_ref if (config.beta > 0 or beta is not None) else None,
            truncated=batch.truncated,
            valid=batch.valid,
            beta=None if beta is None else beta(step),
            sample_ids=batch.sample_ids if packed else None,
        )
        metrics["entropy"] = _masked_mean(entropy, mask)
        return value, metrics

    return loss


_DRPO_KL = {"k1": kl_k1, "k3": kl_k3}


def drpo_objective(
    prompt_len: int, group_size: int, config: DRPOConfig, l_max: int, *, packed: bool = False
) -> LossFn:
    """The DRPO / DisCO objective (spec section 3, ``drpo``) over whole groups.

    Packed: the objective depends on the tokens only through each sample's score (its token-mean
    log-prob, from segment sums) and the trust region's token-mean KL. `drpo_loss` gets the scores
    as one-token sequences and no KL term; the KL penalty, ``(beta / 2) * max(KL - delta, 0)^2``
    with ``KL`` the token mean of ``k(logp_old, logp)``, is added here on the packed tokens.
    """
    if packed:
        return _packed_drpo(group_size, config, l_max)

    def loss(model, batch: UpdateBatch, step):
        logp, entropy = completion_logprobs(model, batch.tokens, batch.attn_mask, prompt_len)

        def groups(x):
            return x.reshape(-1, group_size, *x.shape[1:])

        value, metrics = drpo_loss(
            groups(logp),
            groups(batch.loss_mask),
            groups(batch.correct),
            groups(batch.valid),
            config,
            logp_old=groups(batch.logp_old),
            length=groups(batch.loss_mask.sum(-1)),
            l_max=l_max,
        )
        metrics["entropy"] = _masked_mean(entropy, batch.loss_mask & batch.valid[:, None])
        return value, metrics

    return loss


def _packed_drpo(group_size: int, config: DRPOConfig, l_max: int) -> LossFn:
    def loss(model, batch: PackedBatch, step):
        logp, entropy, m = _logprobs(model, batch, 0, packed=True)
        s = batch.valid.shape[0]
        ids = batch.sample_ids
        score = per_sample_mean(logp, m, ids, s)  # [S]
        has = per_sample_sum(m.astype(jnp.float32), ids, s) > 0
        length = per_sample_sum(batch.loss_mask.astype(jnp.int32), ids, s)

        def groups(x):
            return x.reshape(-1, group_size, *x.shape[1:])

        value, metrics = drpo_loss(
            groups(score)[..., None],
            groups(has)[..., None],
            groups(batch.correct),
            groups(batch.valid),
            dataclasses.replace(config, beta=0.0),
            length=groups(length),
            l_max=l_max,
        )
        if config.beta > 0.0:
            old = jnp.where(m, batch.logp_old, 0.0)
            kl_t = _DRPO_KL[config.kl_estimator](old, jnp.where(m, logp, 0.0))
            kl = _masked_mean(kl_t, m)
            penalty = 0.5 * config.beta * jnp.square(jnp.maximum(kl - config.delta, 0.0))
            value = value + penalty
            kl, penalty = jax.lax.stop_gradient(kl), jax.lax.stop_gradient(penalty)
            metrics.update(
                kl=kl, kl_penalty=penalty, kl_exceeds=(kl > config.delta).astype(jnp.float32)
            )
        metrics["entropy"] = _masked_mean(entropy, m)
        return value, metrics

    return loss


def make_update(
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    loss_fn: LossFn,
    *,
    batch_size: int,
    group_size: int = 1,
    epochs: int = 1,
    num_minibatches: int = 1,
    num_microbatches: int = 1,
    packed: bool = False,
):
    """Builds ``update(params, opt_state, batch, key, step) -> (params, opt_state, metrics)``.

    Args:
      graphdef: the model's `nnx.GraphDef`; ``params`` is its `nnx.State` of parameters.
      optimizer: an optax transformation over ``params``.
      loss_fn: ``(model, minibatch, step) -> (loss, metrics)``.
      batch_size: ``N`` samples per batch (static), ``N = P * group_size``.
      group_size: ``G``; shuffling moves whole groups.
      epochs: passes over the batch (GRPO's mu).
      num_minibatches: optimizer steps per epoch; must divide the number of groups.
      num_microbatches: gradient-accumulation steps per minibatch; must divide its groups.
      packed: ``batch`` is a `PackedBatch` of ``K = num_minibatches * num_microbatches`` bins
        (``[K, B, R]`` / ``[K, S]``), one per microbatch; each epoch permutes the bins.
    Returns:
      The update function, pure and unjitted. ``metrics`` are means over all minibatches plus
      ``grad_norm``.
    """
    if batch_size % group_size:
        raise ValueError(f"batch_size={batch_size} is not a multiple of group_size={group_size}.")
    groups = batch_size // group_size
    if groups % (num_minibatches * num_microbatches):
        raise ValueError(
            f"{groups} groups cannot be split into num_minibatches={num_minibatches} x "
            f"num_microbatches={num_microbatches}; make their product divide the prompts per step."
        )

    def loss_of(params, mb, step):
        return loss_fn(nnx.merge(graphdef, params), mb, step)

    grad_fn = jax.value_and_grad(loss_of, has_aux=True)

    def minibatch_step(carry, mb, step):
        params, opt_state = carry

        def micro(acc, x):
            (loss, metrics), grads = grad_fn(params, x, step)
            acc = jax.tree.map(jnp.add, acc, grads)
            return acc, (loss, metrics)

        zeros = jax.tree.map(jnp.zeros_like, params)
        grads, (losses, metrics) = jax.lax.scan(micro, zeros, mb)
        grads = jax.tree.map(lambda g: g / num_microbatches, grads)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics["loss"] = losses.mean()
        metrics["grad_norm"] = optax.global_norm(grads)
        return (params, opt_state), metrics

    def shuffle_packed(batch: PackedBatch, k):
        bins, s = batch.valid.shape
        if bins != num_minibatches * num_microbatches or s % group_size:
            raise ValueError(
                f"a packed batch of {bins} bins of {s} samples does not fit num_minibatches="
                f"{num_minibatches} x num_microbatches={num_microbatches} bins of whole groups of "
                f"{group_size}; pack with num_bins={num_minibatches * num_microbatches}."
            )
        order = jax.random.permutation(k, bins)
        return jax.tree.map(
            lambda x: x[order].reshape(num_minibatches, num_microbatches, *x.shape[1:]), batch
        )

    def shuffle_padded(batch: UpdateBatch, k):
        order = jax.random.permutation(k, groups)
        rows = (order[:, None] * group_size + jnp.arange(group_size)).reshape(-1)
        return jax.tree.map(
            lambda x: x[rows].reshape(num_minibatches, num_microbatches, -1, *x.shape[1:]), batch
        )

    def update(params, opt_state, batch: Batch, key, step):
        def epoch(carry, k):
            shaped = shuffle_packed(batch, k) if packed else shuffle_padded(batch, k)
            return jax.lax.scan(lambda c, mb: minibatch_step(c, mb, step), carry, shaped)

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(key, epochs)
        )
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    return update


def make_optimizer(
    learning_rate: float | Callable,
    *,
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
) -> optax.GradientTransformation:
    """AdamW with global-norm clipping; weight decay only on matrices (not norms or biases)."""
    parts = [optax.clip_by_global_norm(grad_clip)] if grad_clip else []

    def decay_mask(params):
        return jax.tree.map(lambda p: p.ndim >= 2, params)

    parts.append(
        optax.adamw(learning_rate, b1=b1, b2=b2, weight_decay=weight_decay, mask=decay_mask)
    )
    return optax.chain(*parts)


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int, end_fraction: float = 0.1):
    """Linear warm-up to ``peak`` then cosine decay to ``end_fraction * peak``."""
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, max(warmup_steps, 1), max(total_steps, warmup_steps + 1), peak * end_fraction
    )
