"""The sampler on a mesh of 8 fake CPU devices equals the single-device sampler.

pytest runs every test in one process whose JAX already has one CPU device, so the mesh run
happens in a subprocess that sets ``--xla_force_host_platform_device_count=8`` before importing
JAX.
"""

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent(
    """
    import dataclasses, json
    import jax, numpy as np
    from flax import nnx
    from lenrl import models
    from lenrl.models import abstract_model, param_shardings
    from lenrl.sampling import SamplingConfig, make_sampler, pad_prompts
    from lenrl.sharding import MeshConfig, make_mesh

    assert jax.device_count() == 8, jax.devices()
    cfg = models.ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=2,
                             num_heads=4, num_kv_heads=2, head_dim=8)
    model = models.init_model(cfg, seed=1)
    graphdef, state = nnx.split(model)
    rng = np.random.RandomState(0)
    prompts = [list(rng.randint(3, 64, rng.randint(1, 9))) for _ in range(8)]
    budgets = np.array([10, 3, 7, 10, 1, 10, 5, 8])
    base = SamplingConfig(greedy=True, buckets=(8,), max_new_tokens=10, stop_token_ids=(5,))
    configs = {
        "greedy_refill": dataclasses.replace(  # three cache windows: 12, 16, 18 slots
            base, num_slots=4, refill_rows=4, refill_min_free=2, decode_window=4
        ),
        "sample": dataclasses.replace(base, greedy=False, temperature=0.9, top_k=16, top_p=0.95),
    }
    key = jax.random.key(0)
    ref = {n: make_sampler(graphdef, c)(state, prompts, budgets, key) for n, c in configs.items()}
    result = {}
    for shape in [(2, 2, 2)]:  # data, fsdp and tensor all split
        mesh = make_mesh(MeshConfig(*shape))
        sharded = jax.device_put(state, param_shardings(abstract_model(cfg)[1], mesh))
        for name, c in configs.items():
            sampler = make_sampler(graphdef, c, mesh=mesh)
            out = sampler(sharded, prompts, budgets, key)
            # the compiled program keeps the cache sharded (cached: no second compile)
            batch = pad_prompts(prompts, c)
            hlo = sampler.jitted.lower(
                sharded, batch.tokens, batch.lengths, budgets.astype(np.int32),
                np.full(8, 10, np.int32), jax.random.key_data(key),
            ).compile().as_text()
            # cache [S, C=18, Hkv=2, D=8]: slots over data*fsdp (4), kv heads over tensor (2)
            s = c.slots(8).num_slots
            local, full = f"f32[{s // 4},18,1,8]" in hlo, f"f32[{s},18,2,8]" in hlo
            result[f"{shape}/{name}"] = dict(
                same_tokens=bool(np.array_equal(out.tokens, ref[name].tokens)),
                same_lengths=bool(np.array_equal(out.lengths, ref[name].lengths)),
                logp_diff=float(np.abs(np.asarray(out.logprobs) - ref[name].logprobs).max()),
                cache_local=local,
                cache_gathered=full,
                param_sharded=len(sharded["embed"].value.sharding.device_set) == 8,
            )
    print(json.dumps(result))
    """
)


def test_sampler_on_eight_fake_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result) == 2
    for name, r in result.items():
        assert r["same_tokens"] and r["same_lengths"], (name, r)
        assert r["logp_diff"] <= 1e-4, (name, r)
        assert r["param_sharded"], (name, r)
        assert r["cache_local"] and not r["cache_gathered"], (name, r)
