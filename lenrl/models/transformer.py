"""A decoder-only transformer in Flax NNX covering Qwen2/Qwen2.5, Qwen3 and Llama-3.x.

Grouped-query attention with RoPE (optional Llama-3 frequency scaling), RMSNorm, SwiGLU MLP,
optional q/k/v bias (Qwen2) and q/k RMSNorm (Qwen3), tied or untied embeddings.

Two entry points share one attention rule, so they agree to rounding:

- ``model(tokens_BxT, attention_mask=mask_BxT, positions=None, segment_ids=None)`` -> logits
  ``[B, T, V]`` f32: the full-sequence forward. Positions default to ``cumsum(mask) - 1``, so left-
  and right-padded batches give the same logits on their real tokens. With ``segment_ids_BxT``
  (packed rows: several sequences per row, ids 1, 2, ... and 0 for padding) a query also needs the
  key's segment to be its own, so attention is block-diagonal causal, and positions default to
  each token's offset in its segment (RoPE restarts per segment).
- ``model.extend(tokens_BxT, positions_BxT, cache, write_index_B, token_mask_BxT)`` -> (hidden,
  cache): writes ``T`` new tokens into a preallocated `KVCache` at each row's own ``write_index``
  and attends over the whole cache. Prefill is ``extend`` with the prompt; decoding is ``extend``
  with one token. ``model.logits(hidden)`` projects to the vocabulary.

The attention rule: query at position ``p`` sees a key iff the key's position ``k`` satisfies
``0 <= k <= p`` (padding and empty cache slots carry position -1) and, with segment ids, both are
in the same segment. Parameters are stored in ``param_dtype`` and cast to ``dtype`` for compute;
normalisation statistics, softmax and logits are f32.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lenrl.models.config import ModelConfig

_MASKED = -1e30  # finite, so a query that sees no key gives uniform (not NaN) attention weights.


class KVCache(NamedTuple):
    """Per-layer keys and values of a batch of sequences.

    k, v: tuple over layers of ``[B, S, Hkv, D]`` in the compute dtype.
    pos:  ``[B, S]`` i32, the position of the token held by each slot; -1 marks an empty slot.
    """

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    pos: jax.Array

    @classmethod
    def init(cls, cfg: ModelConfig, batch: int, size: int, dtype=None) -> KVCache:
        dtype = dtype or cfg.dtype
        shape = (batch, size, cfg.num_kv_heads, cfg.head_dim)
        zeros = tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers))
        return cls(
            zeros,
            tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers)),
            jnp.full((batch, size), -1, jnp.int32),
        )

    def clear_rows(self, rows_B: jax.Array) -> KVCache:
        """Marks every slot of the rows where ``rows_B`` is True empty (keys/values kept)."""
        return self._replace(pos=jnp.where(rows_B[:, None], -1, self.pos))


def rope_inv_freq(cfg: ModelConfig) -> np.ndarray:
    """Inverse frequencies ``[D/2]`` (f64 numpy), with Llama-3 scaling when configured."""
    d = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    rs = cfg.rope_scaling
    if rs is None:
        return inv
    low_wavelen = rs.original_max_position_embeddings / rs.low_freq_factor
    high_wavelen = rs.original_max_position_embeddings / rs.high_freq_factor
    wavelen = 2 * np.pi / inv
    scaled = np.where(wavelen > low_wavelen, inv / rs.factor, inv)
    smooth = (rs.original_max_position_embeddings / wavelen - rs.low_freq_factor) / (
        rs.high_freq_factor - rs.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, smoothed, scaled)


def apply_rope(x_BxTxHxD: jax.Array, pos_BxT: jax.Array, inv_freq: np.ndarray) -> jax.Array:
    """Rotary embedding, half-split convention (as in transformers' ``rotate_half``)."""
    angles = pos_BxT.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)
    cos = jnp.cos(angles)[:, :, None, :]  # [B, T, 1, D/2]
    sin = jnp.sin(angles)[:, :, None, :]
    x = x_BxTxHxD.astype(jnp.float32)
    x1, x2 = jnp.split(x, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxHxD.dtype)


def segment_positions(segment_ids_BxT: jax.Array) -> jax.Array:
    """Each token's offset in its segment, ``[B, T]`` i32: ``t - start(t)``, where ``start(t)`` is
    the index of the first token of the run of equal ids holding ``t`` (padding runs too)."""
    seg = jnp.asarray(segment_ids_BxT)
    t = jnp.arange(seg.shape[-1], dtype=jnp.int32)
    first = jnp.concatenate([jnp.ones_like(seg[:, :1], bool), seg[:, 1:] != seg[:, :-1]], axis=1)
    start = jax.lax.cummax(jnp.where(first, t, 0), axis=1)
    return t - start


def _init(rngs: nnx.Rngs, shape, param_dtype, fan_in: int) -> nnx.Param:
    std = fan_in**-0.5
    return nnx.Param(jax.random.normal(rngs.params(), shape, param_dtype) * std)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, param_dtype):
        self.scale = nnx.Param(jnp.ones((dim,), param_dtype))
        self.eps = eps

    def __call__(self, x):
        xf = x.astype(jnp.float32)
        y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)


def attention_impl(attention: str, q_BxTxHxD) -> str:
    """The kernel ``attention`` ("auto" | "xla" | "cudnn") resolves to for these queries.

    "auto" takes cuDNN's fused attention where it runs: on a GPU, for bf16/fp16 queries and a
    head size cuDNN supports (a multiple of 8, at most 128); else XLA's einsums. Measured on an
    H100 against XLA: the 0.5B update 0.243 s -> 0.100 s (benchmarks/train_step.py), greedy decode
    +13% tokens/s at 0.5B batch 256 and +6% at 1.5B batch 64 (benchmarks/sampler.py).
    """
    if attention != "auto":
        return attention
    d = q_BxTxHxD.shape[-1]
    ok = q_BxTxHxD.dtype in (jnp.bfloat16, jnp.float16) and d % 8 == 0 and d <= 128
    return "cudnn" if ok and jax.default_backend() == "gpu" else "xla"


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        e, d, hq, hkv, pd = (
            cfg.hidden_size,
            cfg.head_dim,
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.param_dtype,
        )
        self.cfg = cfg
        self.q_proj = _init(rngs, (e, hq, d), pd, e)
        self.k_proj = _init(rngs, (e, hkv, d), pd, e)
        self.v_proj = _init(rngs, (e, hkv, d), pd, e)
        self.o_proj = _init(rngs, (hq, d, e), pd, hq * d)
        if cfg.qkv_bias:
            self.q_bias = nnx.Param(jnp.zeros((hq, d), pd))
            self.k_bias = nnx.Param(jnp.zeros((hkv, d), pd))
            self.v_bias = nnx.Param(jnp.zeros((hkv, d), pd))
        if cfg.qk_norm:
            self.q_norm = RMSNorm(d, cfg.rms_norm_eps, pd)
            self.k_norm = RMSNorm(d, cfg.rms_norm_eps, pd)

    def _project(self, x, kernel, bias_name):
        y = jnp.einsum("bte,ehd->bthd", x, kernel[...].astype(x.dtype))
        if self.cfg.qkv_bias:
            y = y + getattr(self, bias_name)[...].astype(x.dtype)
        return y

    def qkv(self, x_BxTxE, pos_BxT):
        q = self._project(x_BxTxE, self.q_proj, "q_bias")
        k = self._project(x_BxTxE, self.k_proj, "k_bias")
        v = self._project(x_BxTxE, self.v_proj, "v_bias")
        if self.cfg.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        inv_freq = rope_inv_freq(self.cfg)  # static numpy, folded into the trace as a constant
        return apply_rope(q, pos_BxT, inv_freq), apply_rope(k, pos_BxT, inv_freq), v

    def attend(self, q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, q_pos_BxT, k_pos_BxS, seg_BxT=None):
        """Scaled dot-product attention with the position rule; returns ``[B, T, E]``.

        ``seg_BxT`` (full forward only, so ``S == T``): segment ids of the queries, which are also
        the keys; a query then sees only keys of its own segment.
        """
        b, t, hq, d = q_BxTxHxD.shape
        hkv = k_BxSxKxD.shape[2]
        mask_BxTxS = (k_pos_BxS[:, None, :] >= 0) & (k_pos_BxS[:, None, :] <= q_pos_BxT[:, :, None])
        if seg_BxT is not None:
            mask_BxTxS &= seg_BxT[:, :, None] == seg_BxT[:, None, :]
        if attention_impl(self.cfg.attention, q_BxTxHxD) == "cudnn":
            out = jax.nn.dot_product_attention(
                q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask=mask_BxTxS[:, None], implementation="cudnn"
            )
        else:
            q = q_BxTxHxD.reshape(b, t, hkv, hq // hkv, d)
            s = jnp.einsum("btkgd,bskd->bkgts", q, k_BxSxKxD, preferred_element_type=jnp.float32)
            s = jnp.where(mask_BxTxS[:, None, None], s * d**-0.5, _MASKED)
            p = jax.nn.softmax(s, axis=-1).astype(v_BxSxKxD.dtype)
            out = jnp.einsum("bkgts,bskd->btkgd", p, v_BxSxKxD).reshape(b, t, hq, d)
        return jnp.einsum("bthd,hde->bte", out, self.o_proj[...].astype(out.dtype))


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        e, f, pd = cfg.hidden_size, cfg.intermediate_size, cfg.param_dtype
        self.gate_proj = _init(rngs, (e, f), pd, e)
        self.up_proj = _init(rngs, (e, f), pd, e)
        self.down_proj = _init(rngs, (f, e), pd, f)

    def __call__(self, x_BxTxE):
        dt = x_BxTxE.dtype
        gate = x_BxTxE @ self.gate_proj[...].astype(dt)
        up = x_BxTxE @ self.up_proj[...].astype(dt)
        return (jax.nn.silu(gate) * up) @ self.down_proj[...].astype(dt)


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.input_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg.param_dtype)
        self.attn = Attention(cfg, rngs)
        self.post_attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg.param_dtype)
        self.mlp = MLP(cfg, rngs)

    def __call__(
        self, x_BxTxE, pos_BxT, k_pos_BxS, k_cache=None, v_cache=None, write_B=None, seg_BxT=None
    ):
        """One layer. Without a cache the keys are this call's own (``seg_BxT``: their segment
        ids, or None); with one, the new keys and values are written at ``write_B`` first.
        Returns ``(x, k_cache, v_cache)``."""
        q, k, v = self.attn.qkv(self.input_norm(x_BxTxE), pos_BxT)
        if k_cache is not None:
            k_cache, v_cache = _write(k_cache, k, write_B), _write(v_cache, v, write_B)
            k, v = k_cache, v_cache
        x = x_BxTxE + self.attn.attend(q, k, v, pos_BxT, k_pos_BxS, seg_BxT)
        x = x + self.mlp(self.post_attn_norm(x))
        return x, k_cache, v_cache


def _write(cache_BxSxKxD, new_BxTxKxD, write_B):
    """Writes ``new`` into each row of the cache at that row's own slot offset."""
    new = new_BxTxKxD.astype(cache_BxSxKxD.dtype)
    return jax.vmap(lambda c, n, i: jax.lax.dynamic_update_slice_in_dim(c, n, i, axis=0))(
        cache_BxSxKxD, new, write_B
    )


_REMAT_POLICIES = {
    "full": None,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Decoder(nnx.Module):
    """The whole decoder; see the module docstring for its two entry points."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        e = cfg.hidden_size
        self.embed = nnx.Param(
            jax.random.normal(rngs.params(), (cfg.vocab_size, e), cfg.param_dtype) * 0.02
        )
        self.layers = nnx.List([Block(cfg, rngs) for _ in range(cfg.num_layers)])
        self.final_norm = RMSNorm(e, cfg.rms_norm_eps, cfg.param_dtype)
        if not cfg.tie_word_embeddings:
            self.lm_head = _init(rngs, (e, cfg.vocab_size), cfg.param_dtype, e)

    def _layer(self, i):
        block = self.layers[i]
        if self.cfg.remat == "none":
            return block
        return nnx.remat(block, policy=_REMAT_POLICIES[self.cfg.remat])

    def _embed(self, tokens_BxT):
        return jnp.take(self.embed[...], tokens_BxT, axis=0).astype(self.cfg.dtype)

    def logits(self, hidden_BxTxE: jax.Array) -> jax.Array:
        """Final-normed hidden states ``[..., E]`` -> logits ``[..., V]`` f32."""
        h = hidden_BxTxE.astype(self.cfg.dtype)
        if self.cfg.tie_word_embeddings:
            w_VxE = self.embed[...].astype(h.dtype)
            return jnp.einsum("...e,ve->...v", h, w_VxE, preferred_element_type=jnp.float32)
        w_ExV = self.lm_head[...].astype(h.dtype)
        return jnp.einsum("...e,ev->...v", h, w_ExV, preferred_element_type=jnp.float32)

    def hidden_states(self, tokens_BxT, attention_mask=None, positions=None, segment_ids=None):
        """Full-sequence forward to the final-normed hidden states ``[B, T, E]``.

        ``segment_ids`` ``[B, T]`` i32 (optional): packed rows, 0 on padding; real tokens are
        ``segment_ids > 0`` (and ``attention_mask`` when also given), attention stays within a
        segment and positions default to `segment_positions`.
        """
        if attention_mask is None:
            attention_mask = jnp.ones(tokens_BxT.shape, bool)
        mask = attention_mask.astype(bool)
        seg = None
        if segment_ids is not None:
            seg = jnp.asarray(segment_ids, jnp.int32)
            mask = mask & (seg > 0)
            if positions is None:
                positions = segment_positions(seg)
        if positions is None:
            positions = jnp.cumsum(mask, axis=-1, dtype=jnp.int32) - 1
        positions = jnp.maximum(positions.astype(jnp.int32), 0)
        k_pos = jnp.where(mask, positions, -1)
        x = self._embed(tokens_BxT)
        for i in range(self.cfg.num_layers):
            x, _, _ = self._layer(i)(x, positions, k_pos, seg_BxT=seg)
        return self.final_norm(x)

    def __call__(self, tokens_BxT, attention_mask=None, positions=None, segment_ids=None):
        """Logits ``[B, T, V]`` f32 for every position."""
        return self.logits(self.hidden_states(tokens_BxT, attention_mask, positions, segment_ids))

    def extend(self, tokens_BxT, positions_BxT, cache: KVCache, write_index_B, token_mask_BxT=None):
        """Appends ``T`` tokens per row to ``cache`` at ``write_index_B`` and runs them.

        Args:
          tokens_BxT: i32 token ids.
          positions_BxT: i32 positions of those tokens in their sequences.
          cache: the `KVCache`, ``S`` slots per row; slots ``write_index..write_index+T`` are
            overwritten (the caller keeps ``write_index + T <= S``).
          write_index_B: i32 first slot to write in each row.
          token_mask_BxT: bool, False for padding (written as empty slots). Default all True.
        Returns:
          ``(hidden [B, T, E], cache)``: final-normed hidden states and the updated cache.
        """
        if token_mask_BxT is None:
            token_mask_BxT = jnp.ones(tokens_BxT.shape, bool)
        positions_BxT = positions_BxT.astype(jnp.int32)
        new_pos = jnp.where(token_mask_BxT, positions_BxT, -1)
        pos_BxS = jax.vmap(lambda c, n, i: jax.lax.dynamic_update_slice_in_dim(c, n, i, 0))(
            cache.pos, new_pos, write_index_B.astype(jnp.int32)
        )
        x = self._embed(tokens_BxT)
        ks, vs = [], []
        for i in range(self.cfg.num_layers):
            x, k, v = self.layers[i](
                x, positions_BxT, pos_BxS, cache.k[i], cache.v[i], write_index_B.astype(jnp.int32)
            )
            ks.append(k)
            vs.append(v)
        return self.final_norm(x), KVCache(tuple(ks), tuple(vs), pos_BxS)
