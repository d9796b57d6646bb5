"""Decoder-only transformers (Qwen2/Qwen2.5, Qwen3, Llama-3.x) in Flax NNX and their checkpoints."""

from lenrl.models.checkpoint import (
    abstract_model,
    from_pretrained,
    init_model,
    load_tokenizer,
    param_shardings,
    save_pretrained,
)
from lenrl.models.config import (
    SUPPORTED_MODEL_TYPES,
    ModelConfig,
    RopeScaling,
    from_hf_config,
    load_config,
    to_hf_config,
)
from lenrl.models.transformer import Decoder, KVCache

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "Decoder",
    "KVCache",
    "ModelConfig",
    "RopeScaling",
    "abstract_model",
    "from_hf_config",
    "from_pretrained",
    "init_model",
    "load_config",
    "load_tokenizer",
    "param_shardings",
    "save_pretrained",
    "to_hf_config",
]
