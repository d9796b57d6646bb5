"""Tiny random Hugging Face checkpoints written with transformers + CPU torch (test-only).

``make(kind, path)`` saves a tiny Qwen2 / Qwen3 / Llama-3 model with ``save_pretrained`` and returns
the torch model, so tests compare lenrl against transformers on the same weights.
"""

from __future__ import annotations

import torch
import transformers

KINDS = ("qwen2", "qwen3", "llama")
VOCAB = 97


def config(kind: str, **overrides) -> transformers.PretrainedConfig:
    common = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    common.update(overrides)
    if kind == "qwen2":
        return transformers.Qwen2Config(**common, tie_word_embeddings=True, rope_theta=10000.0)
    if kind == "qwen3":
        return transformers.Qwen3Config(**common, head_dim=24, tie_word_embeddings=False)
    if kind == "llama":
        scaling = dict(
            rope_type="llama3",
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=32,
        )
        return transformers.LlamaConfig(
            **common, tie_word_embeddings=False, rope_scaling=scaling, rope_theta=500000.0
        )
    raise ValueError(kind)


def make(kind: str, path=None, seed: int = 0, std: float = 0.2, **overrides):
    """A tiny random ``AutoModelForCausalLM`` (f32, eval mode), saved to ``path`` if given."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config(kind, **overrides))
    model = model.float().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    if path is not None:
        model.save_pretrained(path)
    return model
