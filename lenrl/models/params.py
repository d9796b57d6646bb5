"""What each parameter of the `Decoder` is: its logical axes and its Hugging Face tensor.

One table, keyed by the parameter's path with the layer index replaced by ``*``. Each entry gives
the logical dimension names (mapped to mesh axes by `lenrl.sharding.AxisRules`), the name of the
Hugging Face tensor, and the layout change between the two (`Layout`).
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

import jax


class Layout(enum.Enum):
    """How lenrl's array relates to the Hugging Face (PyTorch ``nn.Linear``) tensor."""

    SAME = "same"  # identical shape
    T = "transpose"  # ours [in, out] = hf [out, in].T
    IN_HEADS = "in_heads"  # ours [E, H, D] = hf [H*D, E].T reshaped (q/k/v projections)
    HEADS_OUT = "heads_out"  # ours [H, D, E] = hf [E, H*D].T reshaped (o projection)
    HEADS = "heads"  # ours [H, D] = hf [H*D] reshaped (q/k/v bias)


class ParamSpec(NamedTuple):
    axes: tuple[str, ...]
    hf_name: str  # with "{i}" for the layer index
    layout: Layout


_L = "model.layers.{i}."
PARAMS: dict[str, ParamSpec] = {
    "embed": ParamSpec(("vocab", "embed"), "model.embed_tokens.weight", Layout.SAME),
    "final_norm.scale": ParamSpec(("norm",), "model.norm.weight", Layout.SAME),
    "lm_head": ParamSpec(("embed", "vocab"), "lm_head.weight", Layout.T),
    "layers.*.input_norm.scale": ParamSpec(("norm",), _L + "input_layernorm.weight", Layout.SAME),
    "layers.*.post_attn_norm.scale": ParamSpec(
        ("norm",), _L + "post_attention_layernorm.weight", Layout.SAME
    ),
    "layers.*.attn.q_proj": ParamSpec(
        ("embed", "heads", "head_dim"), _L + "self_attn.q_proj.weight", Layout.IN_HEADS
    ),
    "layers.*.attn.k_proj": ParamSpec(
        ("embed", "kv_heads", "head_dim"), _L + "self_attn.k_proj.weight", Layout.IN_HEADS
    ),
    "layers.*.attn.v_proj": ParamSpec(
        ("embed", "kv_heads", "head_dim"), _L + "self_attn.v_proj.weight", Layout.IN_HEADS
    ),
    "layers.*.attn.o_proj": ParamSpec(
        ("heads", "head_dim", "embed"), _L + "self_attn.o_proj.weight", Layout.HEADS_OUT
    ),
    "layers.*.attn.q_bias": ParamSpec(
        ("heads", "head_dim"), _L + "self_attn.q_proj.bias", Layout.HEADS
    ),
    "layers.*.attn.k_bias": ParamSpec(
        ("kv_heads", "head_dim"), _L + "self_attn.k_proj.bias", Layout.HEADS
    ),
    "layers.*.attn.v_bias": ParamSpec(
        ("kv_heads", "head_dim"), _L + "self_attn.v_proj.bias", Layout.HEADS
    ),
    "layers.*.attn.q_norm.scale": ParamSpec(("norm",), _L + "self_attn.q_norm.weight", Layout.SAME),
    "layers.*.attn.k_norm.scale": ParamSpec(("norm",), _L + "self_attn.k_norm.weight", Layout.SAME),
    "layers.*.mlp.gate_proj": ParamSpec(("embed", "mlp"), _L + "mlp.gate_proj.weight", Layout.T),
    "layers.*.mlp.up_proj": ParamSpec(("embed", "mlp"), _L + "mlp.up_proj.weight", Layout.T),
    "layers.*.mlp.down_proj": ParamSpec(("mlp", "embed"), _L + "mlp.down_proj.weight", Layout.T),
}


def path_str(path) -> str:
    """A state leaf's key path as ``"layers.3.attn.q_proj"`` (the trailing ``.value`` dropped)."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.GetAttrKey) and k.name != "value":
            parts.append(k.name)
    return ".".join(parts)


def lookup(path: str) -> tuple[ParamSpec, int | None]:
    """The table entry and layer index of a parameter path."""
    m = re.fullmatch(r"layers\.(\d+)\.(.*)", path)
    key, layer = (f"layers.*.{m.group(2)}", int(m.group(1))) if m else (path, None)
    if key not in PARAMS:
        raise KeyError(f"parameter {path!r} has no entry in lenrl.models.params.PARAMS.")
    return PARAMS[key], layer


def hf_name(path: str) -> str:
    spec, layer = lookup(path)
    return spec.hf_name.format(i=layer)


def hf_shape(spec: ParamSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The Hugging Face tensor shape that corresponds to lenrl's ``shape``."""
    if spec.layout is Layout.SAME:
        return tuple(shape)
    if spec.layout is Layout.T:
        return tuple(reversed(shape))
    if spec.layout is Layout.IN_HEADS:
        e, h, d = shape
        return (h * d, e)
    if spec.layout is Layout.HEADS_OUT:
        h, d, e = shape
        return (e, h * d)
    h, d = shape  # HEADS
    return (h * d,)
