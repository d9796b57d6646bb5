"""Sampling methods: how the next token is chosen from the logits of one decode step.

Each method is a small frozen dataclass with two pure functions over a batch of rows:

- ``method(logits_BxV, keys_B) -> (tokens_B, logprobs_B)``: one token per row, drawn with that
  row's own key, and its log-probability under the *sampling* distribution (f32).
- ``method.log_prob(logits_BxV, tokens_B) -> logprobs_B``: the same log-probability for given
  tokens (``-inf`` outside the kept set), for tests and for recomputing it later.

The sampling distribution of `Sample` follows transformers' warper order: divide the logits by the
temperature, keep the ``top_k`` largest, then keep the smallest prefix (in decreasing probability)
whose probability mass reaches ``top_p`` ("nucleus sampling", Holtzman et al. 2019,
arXiv:1904.09751), renormalised. Greedy decoding is deterministic, so its log-probability is 0.

Cost note: ``top_k`` uses ``lax.top_k`` (cheap for small k). ``top_p`` without ``top_k`` sorts the
whole vocabulary every step; on large vocabularies prefer setting ``top_k`` too (e.g. 50-1000).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

_NEG_INF = -jnp.inf


@dataclasses.dataclass(frozen=True)
class Greedy:
    """Argmax decoding (ties go to the lowest token id, as in ``jnp.argmax``)."""

    def __call__(self, logits_BxV: jax.Array, keys_B: jax.Array) -> tuple[jax.Array, jax.Array]:
        del keys_B
        tokens_B = jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
        return tokens_B, jnp.zeros(tokens_B.shape, jnp.float32)

    def log_prob(self, logits_BxV: jax.Array, tokens_B: jax.Array) -> jax.Array:
        best = jnp.argmax(logits_BxV, axis=-1)
        return jnp.where(best == tokens_B, 0.0, _NEG_INF).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class Sample:
    """Ancestral sampling with temperature, then optional top-k and top-p truncation.

    Kept set ``K`` (with ``z = logits / temperature`` sorted in decreasing order ``z_(1) >= ...``):
    ``i <= top_k`` (if ``top_k > 0``) and ``sum_{j<i} softmax(z_K')_(j) < top_p`` where ``K'`` is
    the top-k set. Then ``p(token) = exp(z_token) / sum_{j in K} exp(z_j)`` for tokens in ``K``.
    """

    temperature: float = 1.0  # > 0; divides the logits
    top_k: int = 0  # keep the k most likely tokens; 0 = all
    top_p: float = 1.0  # keep the smallest prefix with this much mass; 1.0 = all

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(
                f"temperature={self.temperature} must be > 0 (use greedy=True for argmax)."
            )
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k} must be >= 0 (0 turns top-k off).")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1] (1.0 turns top-p off).")

    def candidates(self, logits_BxV: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """Scaled logits of the kept tokens (``-inf`` for dropped ones) and their token ids.

        Returns ``(z_BxK, ids_BxK)``; ``ids`` is None when no truncation applies (``K = V``, the
        columns are the token ids themselves). With truncation the columns are sorted by
        decreasing logit.
        """
        z = logits_BxV.astype(jnp.float32) / self.temperature
        vocab = z.shape[-1]
        k = self.top_k if 0 < self.top_k < vocab else 0
        if k == 0 and self.top_p >= 1.0:
            return z, None
        z, ids = jax.lax.top_k(z, k or vocab)  # sorted, decreasing
        if self.top_p < 1.0:
            probs = jax.nn.softmax(z, axis=-1)
            mass_before = jnp.cumsum(probs, axis=-1) - probs
            z = jnp.where(mass_before < self.top_p, z, _NEG_INF)
        return z, ids.astype(jnp.int32)

    def __call__(self, logits_BxV: jax.Array, keys_B: jax.Array) -> tuple[jax.Array, jax.Array]:
        z, ids = self.candidates(logits_BxV)
        col_B = jax.vmap(jax.random.categorical)(keys_B, z).astype(jnp.int32)
        logp_B = jnp.take_along_axis(jax.nn.log_softmax(z, axis=-1), col_B[:, None], -1)[:, 0]
        tokens_B = col_B if ids is None else jnp.take_along_axis(ids, col_B[:, None], -1)[:, 0]
        return tokens_B, logp_B

    def log_prob(self, logits_BxV: jax.Array, tokens_B: jax.Array) -> jax.Array:
        z, ids = self.candidates(logits_BxV)
        logp = jax.nn.log_softmax(z, axis=-1)
        if ids is None:
            return jnp.take_along_axis(logp, tokens_B[:, None], -1)[:, 0]
        hit = ids == tokens_B[:, None]
        return jnp.max(jnp.where(hit, logp, _NEG_INF), axis=-1)


Method = Greedy | Sample


def token_logprob(logits_BxV: jax.Array, tokens_B: jax.Array) -> jax.Array:
    """``log softmax(logits)[token]`` in f32: the policy log-probability at temperature 1."""
    logits = logits_BxV.astype(jnp.float32)
    picked = jnp.take_along_axis(logits, tokens_B[:, None], axis=-1)[:, 0]
    return picked - jax.nn.logsumexp(logits, axis=-1)
