"""The update: log-probs, SFT and PG losses, accumulation and the epoch/minibatch scans."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from tiny_model import tiny_config

from lenrl import models
from lenrl.algorithms.losses import LossConfig
from lenrl.train import batch as B
from lenrl.train import update as U
from lenrl.train.logprobs import completion_logprobs

CFG = tiny_config(vocab_size=37)
TP, TC = 5, 6


def _rows(n, seed=0):
    rng = np.random.RandomState(seed)
    prompts = [list(rng.randint(3, 37, rng.randint(1, TP + 1))) for _ in range(n)]
    comps = [list(rng.randint(3, 37, rng.randint(1, TC + 1))) for _ in range(n)]
    return B.pad_rows(prompts, comps, TP, TC, pad_id=0), prompts, comps


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_completion_logprobs_against_numpy():
    model = models.init_model(CFG, seed=0)
    (tokens, mask), prompts, comps = _rows(4)
    logp, ent = completion_logprobs(model, tokens, mask, TP)
    for i, (p, c) in enumerate(zip(prompts, comps, strict=True)):
        seq = np.array(p + c)[None]
        lp = _log_softmax(np.asarray(model(seq), np.float64))[0]
        ref = [lp[len(p) - 1 + t, c[t]] for t in range(len(c))]
        np.testing.assert_allclose(np.asarray(logp)[i, : len(c)], ref, atol=1e-5)
        ref_ent = [-(np.exp(lp[len(p) - 1 + t]) * lp[len(p) - 1 + t]).sum() for t in range(len(c))]
        np.testing.assert_allclose(np.asarray(ent)[i, : len(c)], ref_ent, atol=1e-4)


def test_pad_rows_errors_name_the_prompt_and_key():
    with pytest.raises(ValueError, match="prompt 1 has 4 tokens.*config.data.max_prompt_len"):
        B.pad_rows([[1], [1, 2, 3, 4]], [[1], [1]], 3, 2, 0)


def _setup(loss_fn, n=8, micro=1, minibatches=1, epochs=1, group=2, opt=None):
    model = models.init_model(CFG, seed=1)
    graphdef, params = nnx.split(model)
    opt = opt or optax.sgd(1e-2)
    update = U.make_update(
        graphdef,
        opt,
        loss_fn,
        batch_size=n,
        group_size=group,
        epochs=epochs,
        num_minibatches=minibatches,
        num_microbatches=micro,
    )
    return jax.jit(update), params, opt.init(params), graphdef


def test_sft_loss_decreases():
    (tokens, mask), _, _ = _rows(8)
    batch = B.supervised_batch(tokens, mask, TP)
    update, params, opt_state, _ = _setup(U.sft_loss(TP), minibatches=2, opt=optax.adam(1e-2))
    losses = []
    for i in range(15):
        params, opt_state, m = update(params, opt_state, batch, jax.random.key(i), i)
        losses.append(float(m["nll"]))
    assert losses[-1] < 0.7 * losses[0]


def test_microbatch_accumulation_equals_one_big_batch():
    """With seq-mean aggregation and equal microbatches, accumulated grads equal the full-batch
    gradient, so one SGD step gives the same parameters."""
    (tokens, mask), _, _ = _rows(8, seed=3)
    rng = np.random.RandomState(0)
    batch = B.supervised_batch(tokens, mask, TP)._replace(
        advantages=jnp.asarray(rng.randn(8), jnp.float32),
        logp_old=jnp.asarray(-rng.rand(8, TC) * 3, jnp.float32),
    )
    cfg = LossConfig.grpo(beta=0.0)
    out = []
    for micro in (1, 2, 4):
        update, params, opt_state, _ = _setup(U.pg_loss(TP, cfg), micro=micro)
        params, _, _ = update(params, opt_state, batch, jax.random.key(0), 0)
        out.append(jax.tree.leaves(params))
    for other in out[1:]:
        for a, b in zip(out[0], other, strict=True):
            np.testing.assert_allclose(a, b, atol=2e-6)


def test_first_epoch_ratio_is_one_when_old_is_current():
    (tokens, mask), _, _ = _rows(8, seed=4)
    model = models.init_model(CFG, seed=1)
    logp_old, _ = completion_logprobs(model, tokens, mask, TP)
    batch = B.supervised_batch(tokens, mask, TP)._replace(
        advantages=jnp.linspace(-1, 1, 8), logp_old=logp_old
    )
    update, params, opt_state, _ = _setup(U.pg_loss(TP, LossConfig.dapo()), epochs=1)
    _, _, m = update(params, opt_state, batch, jax.random.key(0), 0)
    np.testing.assert_allclose(m["ratio_mean"], 1.0, atol=1e-5)
    assert float(m["clip_frac"]) == 0.0


def test_group_shuffle_keeps_groups_together():
    """The DRPO objective sees whole groups whatever the permutation: its value on a batch whose
    groups are reordered is unchanged."""
    from lenrl.algorithms.drpo import DRPOConfig

    (tokens, mask), _, _ = _rows(8, seed=5)
    batch = B.supervised_batch(tokens, mask, TP)._replace(
        correct=jnp.array([1, 0, 1, 0, 0, 1, 1, 0], jnp.float32)
    )
    model = models.init_model(CFG, seed=1)
    logp_old, _ = completion_logprobs(model, tokens, mask, TP)
    batch = batch._replace(logp_old=logp_old)
    loss_fn = U.drpo_objective(TP, 2, dataclasses.replace(DRPOConfig(), beta=0.0), l_max=TC)
    v0, _ = loss_fn(model, batch, 0)
    perm = np.array([6, 7, 0, 1, 4, 5, 2, 3])
    v1, _ = loss_fn(model, jax.tree.map(lambda x: x[perm], batch), 0)
    np.testing.assert_allclose(v0, v1, rtol=1e-6)
    update, params, opt_state, _ = _setup(loss_fn, minibatches=2, epochs=2)
    params, _, m = update(params, opt_state, batch, jax.random.key(0), 0)
    assert np.isfinite(float(m["loss"]))


def test_bad_split_is_a_clear_error():
    with pytest.raises(ValueError, match="num_minibatches=3"):
        U.make_update(None, optax.sgd(1.0), None, batch_size=8, group_size=2, num_minibatches=3)
