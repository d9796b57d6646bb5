import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lenrl import penalties
from lenrl.penalties.truncation import truncation_reward

from ._helpers import SETTINGS, G, batches, make_batch, to_rollouts


def reference(batch, kappa):
    out = np.zeros(batch["correct"].shape)
    for i, g in np.ndindex(out.shape):
        if batch["valid"][i, g]:
            c = float(batch["correct"][i, g])
            out[i, g] = kappa * c if batch["truncated"][i, g] else c
    return out


@given(batch=batches(soft_correct=True), kappa=st.floats(0.0, 1.0))
@SETTINGS
def test_matches_reference(batch, kappa):
    method = penalties.get("truncation", num_samples=G, kappa=kappa)
    reward, _ = method.apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, reference(batch, kappa), rtol=1e-6, atol=1e-7)


def test_hand_example():
    # DLER, kappa = 0.1, L_max = 4000: a correct answer that stops earns 1; a correct one cut at
    # 4000 tokens earns 0.1 * 1 = 0.1; a wrong one earns 0 either way.
    batch = make_batch([[1.0, 1.0, 0.0]], [[1200, 4000, 4000]], budget=4000)
    reward, _ = penalties.get("truncation", num_samples=3).apply(to_rollouts(batch), (), 0)
    np.testing.assert_allclose(reward, [[1.0, 0.1, 0.0]], rtol=1e-6)


def test_kappa_schedule_traces_with_step():
    method = penalties.get("truncation", num_samples=1, kappa=lambda step: 0.1 * (step >= 10))
    batch = to_rollouts(make_batch([[1.0]], [[4000]], budget=4000))
    apply = jax.jit(method.apply)
    assert float(apply(batch, (), jnp.int32(3))[0][0, 0]) == 0.0
    np.testing.assert_allclose(apply(batch, (), jnp.int32(10))[0], [[0.1]], rtol=1e-6)


def test_vmap_truncation_reward():
    correct = jnp.ones((3, 2, 4))
    truncated = jnp.arange(24).reshape(3, 2, 4) % 3 == 0
    out = jax.vmap(truncation_reward, in_axes=(0, 0, None))(correct, truncated, 0.5)
    np.testing.assert_array_equal(out, np.where(truncated, 0.5, 1.0))
