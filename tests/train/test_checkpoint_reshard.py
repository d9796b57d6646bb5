"""A checkpoint written on one mesh restores onto another mesh shape (8 fake CPU devices)."""

import multidevice

SCRIPT = """
import json, tempfile
import jax, numpy as np, optax
from flax import nnx
from lenrl import models
from lenrl.sharding import MeshConfig, make_mesh
from lenrl.train.checkpoints import Checkpointer

cfg = models.ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=2,
                         num_heads=4, num_kv_heads=2, head_dim=8)
write_mesh = make_mesh(MeshConfig(1, 8, 1))
read_mesh = make_mesh(MeshConfig(2, 2, 2))
_, params = nnx.split(models.init_model(cfg, mesh=write_mesh, seed=3))
opt = optax.adam(1e-3)
state = {"params": params, "opt_state": jax.jit(opt.init)(params)}
d = tempfile.mkdtemp()
Checkpointer(d).save(5, state, {"next_index": 7})

# The target: the same pytree laid out on the other mesh (different shardings).
_, target = nnx.split(models.init_model(cfg, mesh=read_mesh, seed=0))
target = {"params": target, "opt_state": jax.jit(opt.init)(target)}
restored, data, step = Checkpointer(d).restore(target)
same = all(np.array_equal(np.asarray(a), np.asarray(b))
           for a, b in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(restored["params"])))
specs = sorted({str(x.sharding.spec) for x in jax.tree.leaves(restored["params"])})
want = sorted({str(x.sharding.spec) for x in jax.tree.leaves(target["params"])})
mesh = dict(jax.tree.leaves(restored["params"])[0].sharding.mesh.shape)
print(json.dumps(dict(same=same, step=step, data=data, specs=specs, want=want, mesh=mesh)))
"""


def test_checkpoint_restores_onto_another_mesh():
    out = multidevice.run(SCRIPT, devices=8)
    assert out["same"] and out["step"] == 5 and out["data"] == {"next_index": 7}
    assert out["specs"] == out["want"]  # laid out as the target asked, not as written
    assert out["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
