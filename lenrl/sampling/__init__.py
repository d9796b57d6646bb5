"""Sampling completions from a `lenrl.models.Decoder`: buckets, slot refill, budget forcing.

- `SamplingConfig` / `ThinkingConfig`: static settings (validated on construction).
- `make_sampler(model_or_graphdef, cfg, mesh=...)` -> `Sampler`; ``sampler(state, prompts,
  max_new_tokens_N, key)`` -> `SampleOutput` (tokens, mask, log-probs, forced, lengths, truncated).
- `pad_prompts`: ragged prompts -> one left-padded bucket (`PromptBatch`).
- `Greedy`, `Sample`: sampling methods (temperature, top-k, top-p).
"""

from lenrl.sampling.config import SamplingConfig, Slots, ThinkingConfig
from lenrl.sampling.decode import SampleOutput
from lenrl.sampling.methods import Greedy, Method, Sample, token_logprob
from lenrl.sampling.prompts import PromptBatch, check_budgets, pad_prompts
from lenrl.sampling.sampler import Sampler, make_sampler

__all__ = [
    "Greedy",
    "Method",
    "PromptBatch",
    "Sample",
    "SampleOutput",
    "Sampler",
    "SamplingConfig",
    "Slots",
    "ThinkingConfig",
    "check_budgets",
    "make_sampler",
    "pad_prompts",
    "token_logprob",
]
