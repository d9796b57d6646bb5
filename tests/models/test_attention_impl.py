"""``ModelConfig.attention="auto"``: which attention kernel a forward resolves to."""

import jax
import jax.numpy as jnp
import pytest

from lenrl import models
from lenrl.models.transformer import attention_impl


def _q(t=4, d=64, dtype=jnp.bfloat16):
    return jax.ShapeDtypeStruct((2, t, 4, d), dtype)


def test_auto_is_xla_off_gpu():
    assert jax.default_backend() != "gpu"
    assert attention_impl("auto", _q()) == "xla"


@pytest.mark.parametrize(
    "q, want",
    [
        (_q(), "cudnn"),  # prefill / training forward in bf16
        (_q(dtype=jnp.float16), "cudnn"),
        (_q(t=1), "cudnn"),  # one decode query against the cache
        (_q(dtype=jnp.float32), "xla"),  # cuDNN's fused attention is bf16/fp16 only
        (_q(d=256), "xla"),  # head sizes above 128
        (_q(d=60), "xla"),  # not a multiple of 8
    ],
)
def test_auto_on_gpu(monkeypatch, q, want):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert attention_impl("auto", q) == want


@pytest.mark.parametrize("explicit", ["xla", "cudnn"])
def test_explicit_choice_is_kept(explicit):
    assert attention_impl(explicit, _q(t=1, dtype=jnp.float32)) == explicit


def test_auto_is_the_default_and_unknown_names_are_refused():
    base = dict(vocab_size=32, hidden_size=16, intermediate_size=32, num_layers=1)
    base.update(num_heads=2, num_kv_heads=1, head_dim=8)
    assert models.ModelConfig(**base).attention == "auto"
    with pytest.raises(ValueError, match="attention='flash'.*'auto', 'xla' or 'cudnn'"):
        models.ModelConfig(**base, attention="flash")
