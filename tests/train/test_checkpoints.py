"""Checkpointer: round trip of a train-state pytree, keep policy, half-written steps ignored."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from lenrl import penalties
from lenrl.train.checkpoints import Checkpointer


def _state(seed):
    params = {"w": jax.random.normal(jax.random.key(seed), (4, 3)), "b": jnp.zeros(3)}
    hapo = penalties.get("hapo", num_samples=2).init(5)
    hapo = hapo._replace(h=hapo.h.at[1].set(7.0 + seed))
    return {
        "params": params,
        "opt_state": optax.adam(1e-3).init(params),
        "penalty": hapo,
        "step": jnp.int32(seed),
    }


def test_round_trip_and_data_state(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=2)
    state = _state(1)
    ckpt.save(3, state, {"next_index": 12})
    restored, data, step = ckpt.restore(_state(0))
    assert step == 3 and data == {"next_index": 12}
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(a, b)  # NaNs of HAPO's unseen prompts included
    assert type(restored["penalty"]) is type(state["penalty"])


def test_keeps_last_n_and_best(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=2, best_metric="acc")
    for step, acc in [(1, 0.9), (2, 0.1), (3, 0.2), (4, 0.3)]:
        ckpt.save(step, _state(step), {}, metrics={"acc": acc})
    assert ckpt.manager.all_steps() == [1, 3, 4]  # best (1) + last two


def test_half_written_checkpoint_is_never_picked_up(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=3)
    ckpt.save(1, _state(1), {})
    # What a run killed in the middle of saving step 2 leaves behind.
    (tmp_path / "2.orbax-checkpoint-tmp").mkdir()
    (tmp_path / "2.orbax-checkpoint-tmp" / "state").mkdir()
    again = Checkpointer(str(tmp_path), keep=3)
    assert again.latest_step() == 1
    _, _, step = again.restore(_state(0))
    assert step == 1


def test_data_state_is_stored_per_process_and_old_checkpoints_restore(tmp_path):
    Checkpointer(str(tmp_path / "new")).save(1, _state(1), {"next_index": 5})
    meta = json.loads((tmp_path / "new" / "1" / "data" / "metadata").read_text())
    assert meta == {"lenrl_per_process": [{"next_index": 5}]}  # one entry per process
    # A checkpoint from before per-process states: its data item is the state itself.
    old = ocp.CheckpointManager(tmp_path / "old", options=ocp.CheckpointManagerOptions(create=True))
    args = dict(state=ocp.args.StandardSave(_state(2)), data=ocp.args.JsonSave({"next_index": 9}))
    old.save(2, args=ocp.args.Composite(**args))
    old.wait_until_finished()
    _, data, step = Checkpointer(str(tmp_path / "old")).restore(_state(0))
    assert (step, data) == (2, {"next_index": 9})
