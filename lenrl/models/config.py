"""Decoder configuration, read from and written to a Hugging Face ``config.json``.

One dataclass covers the three families lenrl supports; they differ only in a few switches:

| family       | q/k/v bias | q/k RMSNorm | rope scaling | head_dim            |
|--------------|------------|-------------|--------------|---------------------|
| qwen2        | yes        | no          | none         | hidden / heads      |
| qwen3        | no         | yes         | none         | explicit in config  |
| llama (3.x)  | no         | no          | "llama3"     | hidden / heads      |
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

SUPPORTED_MODEL_TYPES = ("qwen2", "qwen3", "llama")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Llama-3.x frequency scaling (``rope_scaling.rope_type == "llama3"``)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static shape and numerics of a decoder-only transformer.

    ``param_dtype`` is the storage dtype of the weights; ``dtype`` the compute dtype of activations
    and matmuls (bf16 compute over f32 params is the usual training setting). Logits are always f32.
    """

    model_type: str = "qwen2"
    vocab_size: int = 256
    hidden_size: int = 64  # E
    intermediate_size: int = 128  # F
    num_layers: int = 2
    num_heads: int = 4  # Hq
    num_kv_heads: int = 2  # Hkv, divides Hq
    head_dim: int = 16  # D
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    rms_norm_eps: float = 1e-6
    qkv_bias: bool = True  # qwen2
    qk_norm: bool = False  # qwen3
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 4096
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    # Not part of the checkpoint: how lenrl runs it.
    param_dtype: str = "float32"
    dtype: str = "float32"
    remat: str = "none"  # "none" | "full" | "dots" (rematerialisation policy of each layer)
    # "auto" (cuDNN fused attention on a GPU in bf16/fp16, else XLA) | "xla" (einsum + softmax)
    # | "cudnn" (jax.nn.dot_product_attention, GPU only)
    attention: str = "auto"

    def __post_init__(self):
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"model_type {self.model_type!r} is not supported; lenrl supports "
                f"{', '.join(SUPPORTED_MODEL_TYPES)} (Qwen2/Qwen2.5, Qwen3, Llama-3.x)."
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} must be a multiple of num_kv_heads="
                f"{self.num_kv_heads} (grouped-query attention)."
            )
        if self.remat not in ("none", "full", "dots"):
            raise ValueError(f"remat={self.remat!r}: use 'none', 'full' or 'dots'.")
        if self.attention not in ("auto", "xla", "cudnn"):
            raise ValueError(f"attention={self.attention!r}: use 'auto', 'xla' or 'cudnn'.")

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        if self.eos_token_id is None:
            return ()
        if isinstance(self.eos_token_id, int):
            return (self.eos_token_id,)
        return tuple(self.eos_token_id)

    def num_params(self) -> int:
        """Number of parameters (embedding counted once when tied)."""
        e, f, d = self.hidden_size, self.intermediate_size, self.head_dim
        hq, hkv = self.num_heads, self.num_kv_heads
        attn = e * d * (hq + 2 * hkv) + hq * d * e
        if self.qkv_bias:
            attn += d * (hq + 2 * hkv)
        if self.qk_norm:
            attn += 2 * d
        layer = attn + 3 * e * f + 2 * e
        head = 0 if self.tie_word_embeddings else self.vocab_size * e
        return self.vocab_size * e + self.num_layers * layer + e + head


def from_hf_config(hf: dict[str, Any], **overrides) -> ModelConfig:
    """Builds a `ModelConfig` from a parsed Hugging Face ``config.json`` dict."""
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"model_type {model_type!r} is not supported; lenrl supports "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (Qwen2/Qwen2.5, Qwen3, Llama-3.x)."
        )
    heads = hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or hf["hidden_size"] // heads
    scaling = None
    rs = hf.get("rope_scaling") or None
    rope_theta = hf.get("rope_theta")
    if rs is None and isinstance(hf.get("rope_parameters"), dict):  # transformers >= 5 layout
        rs = hf["rope_parameters"]
        rope_theta = rope_theta or rs.get("rope_theta")
    if rs is not None:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "llama3":
            scaling = RopeScaling(
                factor=float(rs["factor"]),
                low_freq_factor=float(rs["low_freq_factor"]),
                high_freq_factor=float(rs["high_freq_factor"]),
                original_max_position_embeddings=int(rs["original_max_position_embeddings"]),
            )
        elif kind not in (None, "default"):
            raise ValueError(
                f"config.json rope_scaling type {kind!r} is not supported; lenrl supports "
                "'default' and 'llama3'."
            )
    eos = hf.get("eos_token_id")
    if isinstance(eos, list):
        eos = tuple(eos)
    fields = dict(
        model_type=model_type,
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        intermediate_size=hf["intermediate_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=heads,
        num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=head_dim,
        rope_theta=float(rope_theta or 10000.0),
        rope_scaling=scaling,
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        qkv_bias=model_type == "qwen2" or bool(hf.get("attention_bias", False)),
        qk_norm=model_type == "qwen3",
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        max_position_embeddings=hf.get("max_position_embeddings", 4096),
        bos_token_id=hf.get("bos_token_id"),
        eos_token_id=eos,
    )
    fields.update(overrides)
    return ModelConfig(**fields)


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """The ``config.json`` dict transformers needs to load the exported weights unchanged."""
    arch = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "llama": "LlamaForCausalLM"}
    out: dict[str, Any] = dict(
        architectures=[arch[cfg.model_type]],
        model_type=cfg.model_type,
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        hidden_act="silu",
        rope_theta=cfg.rope_theta,
        rms_norm_eps=cfg.rms_norm_eps,
        tie_word_embeddings=cfg.tie_word_embeddings,
        max_position_embeddings=cfg.max_position_embeddings,
        torch_dtype=cfg.param_dtype,
    )
    if cfg.model_type == "llama":
        out["attention_bias"] = cfg.qkv_bias
        out["mlp_bias"] = False
    if cfg.rope_scaling is not None:
        out["rope_scaling"] = dict(rope_type="llama3", **dataclasses.asdict(cfg.rope_scaling))
    if cfg.bos_token_id is not None:
        out["bos_token_id"] = cfg.bos_token_id
    if cfg.eos_token_id is not None:
        eos = cfg.eos_token_id
        out["eos_token_id"] = list(eos) if isinstance(eos, tuple) else eos
    return out


def load_config(path: str | os.PathLike, **overrides) -> ModelConfig:
    """Reads ``<path>/config.json``; errors name the missing file."""
    file = os.path.join(path, "config.json")
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"{file} not found: point the model path at a Hugging Face checkpoint directory "
            "(it must hold config.json and model.safetensors or model.safetensors.index.json)."
        )
    with open(file) as f:
        hf = json.load(f)
    try:
        return from_hf_config(hf, **overrides)
    except (ValueError, KeyError) as e:
        raise ValueError(f"{file}: {e}") from e
