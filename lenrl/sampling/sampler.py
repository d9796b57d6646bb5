"""`make_sampler`: the one jitted sampling entry point, and its host-side wrapper.

Usage::

    graphdef, state = nnx.split(model)
    sampler = make_sampler(graphdef, SamplingConfig(...), mesh=mesh)
    out = sampler(state, prompts, max_new_tokens_N, key)      # prompts: list of lists of ids

``sampler.jitted(state, tokens_NxT, lengths_N, budgets_N, think_budgets_N, key)`` is the jitted
function itself (for a trainer that pads prompts itself, e.g. inside its own jit). It compiles
once per (N, bucket T) pair and parameter sharding; budgets, thinking budgets, prompts and the
key are traced values, so changing them never recompiles.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from lenrl.models import ModelConfig
from lenrl.sampling.config import SamplingConfig
from lenrl.sampling.decode import Queue, SampleOutput, generate
from lenrl.sampling.prompts import PromptBatch, check_budgets, pad_prompts
from lenrl.sharding import AxisRules, constrain


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A compiled sampler bound to one model graph and `SamplingConfig`."""

    jitted: Callable[..., SampleOutput]  # (state, tokens_NxT, lengths_N, budgets_N, think_N, key)
    cfg: SamplingConfig
    model_cfg: ModelConfig

    def __call__(
        self,
        state,
        prompts: Sequence[Sequence[int]] | PromptBatch,
        max_new_tokens,
        key: jax.Array,
        thinking_budget=None,
    ) -> SampleOutput:
        """Samples one completion per prompt.

        Args:
          state: the model's `nnx.State` (``nnx.split(model)[1]``), already sharded.
          prompts: ragged token-id lists (padded here into a bucket) or a `PromptBatch`.
          max_new_tokens: ``[N]`` int budgets (or one int), each <= ``cfg.max_new_tokens``.
          key: a PRNG key (raw ``uint32[2]`` or typed).
          thinking_budget: ``[N]`` ints (or one int); with ``cfg.thinking``, a sequence still
            thinking after this many tokens is forced to close its thinking. None = never.
        Returns:
          `SampleOutput`, rows in the order of ``prompts``.
        Raises:
          ValueError: a prompt longer than the largest bucket, a budget larger than the cache,
            a token id outside the vocabulary (messages name the prompt and the config key).
        """
        batch = pad_prompts(prompts, self.cfg, self.model_cfg.vocab_size)
        n, t = batch.tokens.shape
        budgets = check_budgets("max_new_tokens", max_new_tokens, n, self.cfg, t)
        if thinking_budget is None:
            thinking_budget = self.cfg.max_new_tokens
        think = check_budgets("thinking_budget", thinking_budget, n, self.cfg, t)
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)  # one compile for typed and raw keys
        return self.jitted(state, batch.tokens, batch.lengths, budgets, think, key)

    def num_compiled(self) -> int:
        """How many programs the jitted entry point has compiled so far."""
        return self.jitted._cache_size()


def make_sampler(
    model,
    cfg: SamplingConfig,
    *,
    mesh: Mesh | None = None,
    rules: AxisRules = AxisRules(),
    model_cfg: ModelConfig | None = None,
) -> Sampler:
    """Builds the jitted sampler for ``model`` (a `Decoder` or its `nnx.GraphDef`).

    With a ``mesh`` the KV cache is constrained to ``("batch", "cache_length", "kv_heads",
    "head_dim")`` under ``rules`` (batch over data/fsdp, kv heads over tensor by default) and the
    decode slots to ``("batch",)``; parameters keep the sharding of the ``state`` passed in.
    """
    if isinstance(model, nnx.GraphDef):
        graphdef = model
        model_cfg = model_cfg or _config_of(graphdef)
    else:
        graphdef = nnx.split(model)[0]
        model_cfg = model_cfg or model.cfg
    _check_ids(cfg, model_cfg.vocab_size)
    shard = functools.partial(_constrain, mesh=mesh, rules=rules)

    def sample(state, tokens_NxT, lengths_N, budgets_N, think_budgets_N, key) -> SampleOutput:
        model = nnx.merge(graphdef, state)
        n = tokens_NxT.shape[0]
        budgets_N = jnp.clip(budgets_N.astype(jnp.int32), 0, cfg.max_new_tokens)
        if cfg.queue_order == "budget_desc":
            order = jnp.argsort(-budgets_N, stable=True).astype(jnp.int32)
        else:
            order = jnp.arange(n, dtype=jnp.int32)
        q = Queue(
            tokens=tokens_NxT.astype(jnp.int32),
            lengths=lengths_N.astype(jnp.int32),
            budgets=budgets_N,
            think_budgets=think_budgets_N.astype(jnp.int32),
            order=order,
        )
        return generate(model, q, key, cfg, cfg.slots(n), shard)

    return Sampler(jitted=jax.jit(sample), cfg=cfg, model_cfg=model_cfg)


def _constrain(x, logical_axes, *, mesh, rules):
    return constrain(x, mesh, rules, logical_axes)


def _config_of(graphdef) -> ModelConfig:
    for name, attr in getattr(graphdef, "attributes", ()):
        value = getattr(attr, "value", None)
        if name == "cfg" and isinstance(value, ModelConfig):
            return value
    raise ValueError("cannot read the ModelConfig from this graphdef; pass model_cfg=model.cfg.")


def _check_ids(cfg: SamplingConfig, vocab: int) -> None:
    named = [("stop_token_ids", cfg.stop_token_ids), ("pad_id", (cfg.pad_id,))]
    if cfg.thinking is not None:
        named += [
            ("thinking.end_token_ids", cfg.thinking.end_token_ids),
            ("thinking.forced_token_ids", cfg.thinking.forced_token_ids),
        ]
    for name, ids in named:
        bad = [i for i in ids if i >= vocab]
        if bad:
            raise ValueError(
                f"SamplingConfig.{name} has ids {bad} outside the model vocabulary [0, {vocab})."
            )
