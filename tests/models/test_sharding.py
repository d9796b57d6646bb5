"""Logits on meshes of 8 fake CPU devices equal single-device logits; params follow their rules."""

import multidevice
import pytest

from lenrl.sharding import AxisRules, MeshConfig

SCRIPT = """
import json, sys, tempfile
import jax, jax.numpy as jnp, numpy as np
sys.path.insert(0, "tests")
import tiny_hf
from lenrl import models
from lenrl.sharding import AxisRules, MeshConfig, make_mesh
from jax.sharding import NamedSharding, PartitionSpec as PS

path = tempfile.mkdtemp()
tiny_hf.make("{kind}", path, vocab_size=128)
ids = np.random.RandomState(0).randint(3, 128, (8, 12))
mask = np.ones(ids.shape, bool); mask[1, :4] = False; mask[5, 9:] = False
single = models.from_pretrained(path, mesh=make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1]))
ref = np.asarray(single(ids, attention_mask=mask))
out = {{}}
for shape in [(8, 1, 1), (1, 8, 1), (2, 2, 2), (1, 1, 2)]:
    n = shape[0] * shape[1] * shape[2]
    mesh = make_mesh(MeshConfig(*shape), jax.devices()[:n])
    model = models.from_pretrained(path, mesh=mesh)
    rules = AxisRules()
    # every parameter carries the sharding its logical axes ask for
    from flax import nnx
    from lenrl.models import params as P
    bad = []
    for keys, leaf in jax.tree_util.tree_flatten_with_path(nnx.state(model))[0]:
        spec, _ = P.lookup(P.path_str(keys))
        want = rules.sharding(mesh, spec.axes, leaf.shape)
        if not leaf.sharding.is_equivalent_to(want, leaf.ndim):
            bad.append(P.path_str(keys))
    batch = NamedSharding(mesh, rules.spec(("batch", "length"), ids.shape, mesh))
    fwd = jax.jit(lambda m, t, k: m(t, attention_mask=k))
    got = np.asarray(fwd(model, jax.device_put(ids, batch), jax.device_put(mask, batch)))
    q = model.layers[0].attn.q_proj[...]
    out[str(shape)] = dict(
        diff=float(np.abs(got - ref)[mask].max()), bad=bad,
        q_spec=str(q.sharding.spec), q_shards=len({{str(s.index) for s in q.addressable_shards}}),
    )
print(json.dumps(out))
"""


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_logits_equal_across_meshes(kind):
    out = multidevice.run(SCRIPT.format(kind=kind), devices=8)
    for shape, r in out.items():
        assert r["bad"] == [], (shape, r)
        assert r["diff"] <= 1e-4, (shape, r)
    # (2,2,2): q_proj [E=64, H=4, D] is split over fsdp (embed) and tensor (heads): 4 shards.
    assert out["(2, 2, 2)"]["q_shards"] == 4
    assert out["(1, 8, 1)"]["q_shards"] == 8
    assert out["(8, 1, 1)"]["q_shards"] == 1


def test_rules_map_and_validate():
    rules = AxisRules()
    assert tuple(rules.spec(("embed", "heads", "head_dim"))) == ("fsdp", "tensor", None)
    assert tuple(rules.spec(("batch", "length"))) == (("data", "fsdp"), None)
    with pytest.raises(ValueError, match="both map to mesh axis 'tensor'"):
        rules.spec(("heads", "mlp"))
    with pytest.raises(ValueError, match="unknown mesh axis 'model'"):
        AxisRules((("embed", "model"),))
    with pytest.raises(ValueError, match="more than once"):
        AxisRules((("embed", "fsdp"), ("embed", None)))


def test_mesh_config_resolves_and_errors():
    assert MeshConfig(2, -1, 2).resolve(8) == (2, 2, 2)
    assert MeshConfig().resolve(4) == (1, 4, 1)
    with pytest.raises(ValueError, match="not a multiple"):
        MeshConfig(3, -1, 1).resolve(8)
    with pytest.raises(ValueError, match="needs 4 devices but 8"):
        MeshConfig(2, 2, 1).resolve(8)
    with pytest.raises(ValueError, match="at most one"):
        MeshConfig(-1, -1, 1)
