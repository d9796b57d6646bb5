"""Sampling methods: how the next token is chosen from the logits of one decode step.

Each method is a small frozen dataclass with pure functions over a batch of rows:

- ``method.step(logits_BxV, keys_B) -> Draw``: what one decode step needs, with as few passes
  over the ``[B, V]`` logits as the method allows: one token per row (drawn with that row's own
  key), its log-probability under the *sampling* distribution, and the policy normaliser
  ``logsumexp(logits)`` (f32), so that ``log p_policy(t) = logits[t] - lse`` costs one gather
  for whatever token the step finally emits (budget forcing may overwrite the drawn one).
- ``method(logits_BxV, keys_B) -> (tokens_B, logprobs_B)``: the first two fields of ``step``.
- ``method.log_prob(logits_BxV, tokens_B) -> logprobs_B``: the sampling log-probability of given
  tokens (``-inf`` outside the kept set), for tests and for recomputing it later.

The sampling distribution of `Sample` follows transformers' warper order: divide the logits by the
temperature, keep the ``top_k`` largest, then keep the smallest prefix (in decreasing probability)
whose probability mass reaches ``top_p`` ("nucleus sampling", Holtzman et al. 2019,
arXiv:1904.09751), renormalised. Greedy decoding is deterministic, so its log-probability is 0.

Passes over the logits per step (``V`` = 151,936 for Qwen, so each is ``B x 0.6 MB`` of f32):
greedy: argmax and one sum (the max is the argmax's logit); temperature only: one Gumbel-argmax,
one max and one (fused) pair of sums: no sort and no ``[B, V]`` log-softmax. ``top_k`` / ``top_p``
call ``lax.top_k``; on GPU XLA runs ``k <= 16`` with a dedicated kernel but larger ``k`` (and
``top_p`` alone, which needs the whole order) as a sort of the whole vocabulary every step:
prefer ``top_k <= 16`` or no truncation where the recipe allows.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

_NEG_INF = -jnp.inf


class Draw(NamedTuple):
    """One decode step's choice for ``B`` rows."""

    tokens: jax.Array  # [B] i32
    sampling_logp: jax.Array  # [B] f32, log-prob under the sampling distribution (0 for greedy)
    policy_lse: jax.Array  # [B] f32, logsumexp(logits) at temperature 1


def _shift(m_B: jax.Array) -> jax.Array:
    """The row max as the shift of a stable logsumexp (0 where it is not finite)."""
    m_B = jax.lax.stop_gradient(m_B)
    return jnp.where(jnp.isfinite(m_B), m_B, 0.0)


def _max(x_BxV: jax.Array) -> jax.Array:
    return _shift(jnp.max(x_BxV, axis=-1))


def _lse(x_BxV: jax.Array, m_B: jax.Array, scale: float = 1.0) -> jax.Array:
    """``logsumexp(scale * x) = scale * m + log sum exp(scale * (x - m))`` for ``scale > 0``."""
    return scale * m_B + jnp.log(jnp.sum(jnp.exp(scale * (x_BxV - m_B[:, None])), axis=-1))


def _pick(x_BxV: jax.Array, tokens_B: jax.Array) -> jax.Array:
    return jnp.take_along_axis(x_BxV, tokens_B[:, None], axis=-1)[:, 0]


@dataclasses.dataclass(frozen=True)
class Greedy:
    """Argmax decoding (ties go to the lowest token id, as in ``jnp.argmax``)."""

    def step(self, logits_BxV: jax.Array, keys_B: jax.Array) -> Draw:
        del keys_B
        logits = logits_BxV.astype(jnp.float32)
        tokens_B = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        lse_B = _lse(logits, _shift(_pick(logits, tokens_B)))  # the max is the argmax's logit
        return Draw(tokens_B, jnp.zeros(tokens_B.shape, jnp.float32), lse_B)

    def __call__(self, logits_BxV: jax.Array, keys_B: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.step(logits_BxV, keys_B)[:2]

    def log_prob(self, logits_BxV: jax.Array, tokens_B: jax.Array) -> jax.Array:
        best = jnp.argmax(logits_BxV, axis=-1)
        return jnp.where(best == tokens_B, 0.0, _NEG_INF).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class Sample:
    """Ancestral sampling with temperature, then optional top-k and top-p truncation.

    Kept set ``K`` (with ``z = logits / temperature`` sorted in decreasing order ``z_(1) >= ...``):
    ``i <= top_k`` (if ``top_k > 0``) and ``sum_{j<i} softmax(z_K')_(j) < top_p`` where ``K'`` is
    the top-k set. Then ``p(token) = exp(z_token) / sum_{j in K} exp(z_j)`` for tokens in ``K``.
    Draws use the Gumbel-max trick (``jax.random.categorical``) with each row's own key.
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

    def truncates(self, vocab: int) -> bool:
        """Whether top-k or top-p drops tokens (else the kept set is the whole vocabulary)."""
        return 0 < self.top_k < vocab or self.top_p < 1.0

    def candidates(self, logits_BxV: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """Scaled logits of the kept tokens (``-inf`` for dropped ones) and their token ids.

        Returns ``(z_BxK, ids_BxK)``; ``ids`` is None when no truncation applies (``K = V``, the
        columns are the token ids themselves). With truncation the columns are sorted by
        decreasing logit.
        """
        z = logits_BxV.astype(jnp.float32) / self.temperature
        vocab = z.shape[-1]
        if not self.truncates(vocab):
            return z, None
        k = self.top_k if 0 < self.top_k < vocab else vocab
        z, ids = jax.lax.top_k(z, k)  # sorted, decreasing
        if self.top_p < 1.0:
            probs = jax.nn.softmax(z, axis=-1)
            mass_before = jnp.cumsum(probs, axis=-1) - probs
            z = jnp.where(mass_before < self.top_p, z, _NEG_INF)
        return z, ids.astype(jnp.int32)

    def step(self, logits_BxV: jax.Array, keys_B: jax.Array) -> Draw:
        logits = logits_BxV.astype(jnp.float32)
        m_B = _max(logits)
        policy_lse = _lse(logits, m_B)
        z, ids = self.candidates(logits)
        col_B = jax.vmap(jax.random.categorical)(keys_B, z).astype(jnp.int32)
        if ids is None:  # no truncation: no sort, no [B, V] log-softmax
            tokens_B = col_B
            if self.temperature == 1.0:
                sampling_lse = policy_lse
            else:  # max(z) = max(logits) / temperature: the same shift, one more fused sum
                sampling_lse = _lse(logits, m_B, 1.0 / self.temperature)
        else:
            tokens_B = _pick(ids, col_B)
            sampling_lse = jax.nn.logsumexp(z, axis=-1)  # over the kept candidates
        sampling_logp = _pick(z, col_B) - sampling_lse
        return Draw(tokens_B, sampling_logp, policy_lse)

    def __call__(self, logits_BxV: jax.Array, keys_B: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.step(logits_BxV, keys_B)[:2]

    def log_prob(self, logits_BxV: jax.Array, tokens_B: jax.Array) -> jax.Array:
        z, ids = self.candidates(logits_BxV)
        logp = jax.nn.log_softmax(z, axis=-1)
        if ids is None:
            return _pick(logp, tokens_B)
        hit = ids == tokens_B[:, None]
        return jnp.max(jnp.where(hit, logp, _NEG_INF), axis=-1)


Method = Greedy | Sample


def token_logprob(logits_BxV: jax.Array, tokens_B: jax.Array) -> jax.Array:
    """``log softmax(logits)[token]`` in f32: the policy log-probability at temperature 1."""
    logits = logits_BxV.astype(jnp.float32)
    return _pick(logits, tokens_B) - _lse(logits, _max(logits))
