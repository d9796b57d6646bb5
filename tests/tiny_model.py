"""The tiny decoder shape the model and update tests share (grouped-query attention, 2 layers)."""

from lenrl import models


def tiny_config(**overrides) -> models.ModelConfig:
    """``ModelConfig`` of a tiny decoder: hidden 32, 4 query / 2 KV heads of 8, MLP 48, 2 layers,
    vocabulary 61; ``overrides`` replace any field."""
    fields = dict(
        vocab_size=61,
        hidden_size=32,
        intermediate_size=48,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=8,
    )
    return models.ModelConfig(**{**fields, **overrides})
