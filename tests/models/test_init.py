"""`init_model`: leaf-by-leaf random init is the module's own constructor, bitwise, on any mesh."""

import dataclasses

import jax
import multidevice
import numpy as np
import pytest
from flax import nnx
from tiny_model import tiny_config

from lenrl import models
from lenrl.models import checkpoint
from lenrl.models.transformer import Decoder

BASE = tiny_config(vocab_size=64, num_layers=3)


@pytest.mark.parametrize(
    "overrides,seed",
    [
        (dict(model_type="qwen2", qkv_bias=True), 0),
        (dict(model_type="qwen3", qk_norm=True, tie_word_embeddings=False), 7),
        (dict(param_dtype="bfloat16", dtype="bfloat16", qkv_bias=True), 3),
    ],
)
def test_same_parameters_as_the_module_constructor(overrides, seed):
    cfg = dataclasses.replace(BASE, **overrides)
    got = nnx.state(models.init_model(cfg, seed=seed))
    # The reference: the module's own initialisers (what init_model ran in one jit before).
    want = jax.jit(lambda: nnx.state(Decoder(cfg, rngs=nnx.Rngs(seed))))()
    got_leaves = jax.tree_util.tree_leaves_with_path(got)
    want_leaves = jax.tree_util.tree_leaves_with_path(want)
    assert [p for p, _ in got_leaves] == [p for p, _ in want_leaves]
    for (path, a), (_, b) in zip(got_leaves, want_leaves, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(path))


def test_distribution_of_a_projection():
    # Independent of the constructor: q_proj [E, H, D] ~ N(0, 1 / E), norms are ones.
    cfg = dataclasses.replace(BASE, hidden_size=256, head_dim=32)
    model = models.init_model(cfg, seed=1)
    q = np.asarray(model.layers[0].attn.q_proj[...], np.float64)
    assert abs(q.mean()) < 0.01 and q.std() == pytest.approx(256**-0.5, rel=0.03)
    np.testing.assert_array_equal(np.asarray(model.final_norm.scale[...]), 1.0)
    assert not np.array_equal(q, np.asarray(model.layers[1].attn.q_proj[...]))


def test_compiled_programs_do_not_grow_with_depth():
    checkpoint._leaf_init.cache_clear()
    models.init_model(dataclasses.replace(BASE, num_layers=2, qkv_bias=True))
    programs = checkpoint._leaf_init.cache_info().currsize
    models.init_model(dataclasses.replace(BASE, num_layers=6, qkv_bias=True), seed=1)
    assert checkpoint._leaf_init.cache_info().currsize == programs <= 12


SCRIPT = """
import json
import jax, numpy as np
from flax import nnx
from lenrl import models
from lenrl.models import params as P
from lenrl.sharding import AxisRules, MeshConfig, make_mesh

cfg = models.ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2,
                         num_heads=4, num_kv_heads=2, head_dim=8, qkv_bias=True)
one = nnx.state(models.init_model(cfg, mesh=make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])))
mesh = make_mesh(MeshConfig(2, 2, 2))
many = nnx.state(models.init_model(cfg, mesh=mesh))
same, bad, split = True, [], 0
for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(many), jax.tree.leaves(one)):
    same &= bool(np.array_equal(np.asarray(a), np.asarray(b)))
    spec, _ = P.lookup(P.path_str(path))
    if not a.sharding.is_equivalent_to(AxisRules().sharding(mesh, spec.axes, a.shape), a.ndim):
        bad.append(P.path_str(path))
    split += len({str(s.index) for s in a.addressable_shards}) > 1
print(json.dumps(dict(same=same, bad=bad, split=split)))
"""


def test_sharded_init_equals_single_device():
    out = multidevice.run(SCRIPT, devices=8)
    assert out["same"] and out["bad"] == [] and out["split"] > 0
