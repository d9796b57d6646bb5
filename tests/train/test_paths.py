"""Workdirs through `etils.epath`: a remote (``gs://``) workdir, here a fake bucket on local disk.

`etils.epath.testing.mock_epath` routes every ``gs://`` call of epath to the local file system
under ``tmp_path / "bucket"``: what the run writes must arrive there, and nothing may be written
by plain ``open`` / ``os`` calls (they would create a local ``gs:`` directory in the cwd).
"""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest
from etils import epath
from etils.epath import testing as epath_testing
from flax import nnx

from lenrl import models
from lenrl.train import setup, trainer
from lenrl.train.checkpoints import Checkpointer, as_path
from lenrl.train.metrics import MetricWriter, read_metrics


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """``gs://b/...`` -> ``tmp_path/bucket/b/...``; yields that local root. The cwd is an empty
    directory checked at the end."""
    root = tmp_path / "bucket"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def local(p):
        p = os.fspath(p)
        return str(root / p[len("gs://") :]) if p.startswith("gs://") else p

    def one(orig, path, *args, **kwargs):
        return orig(local(path), *args, **kwargs)

    def two(orig, path, dst, *args, **kwargs):
        return orig(local(path), local(dst), *args, **kwargs)

    def glob(orig, path):
        return [p.replace(str(root) + "/", "gs://") for p in orig(local(path))]

    fns = {n: one for n in ("open", "exists", "isdir", "listdir", "makedirs", "mkdir")}
    fns.update({n: one for n in ("remove", "rmtree", "stat")})
    fns.update(copy=two, rename=two, replace=two, glob=glob)
    with epath_testing.mock_epath(**fns):
        yield root
    assert os.listdir(cwd) == []  # nothing went around epath


def test_metrics_on_a_remote_workdir_survive_a_restart(bucket):
    w = MetricWriter("gs://b/run", tensorboard=False)
    w.write(1, {"reward": 1.0}, phase="rl")
    w.write(2, {"reward": 2.0, "vector": np.ones(3)}, phase="rl")
    w.close()
    w = MetricWriter("gs://b/run", tensorboard=False)  # a resumed run appends after them
    w.write(3, {"reward": 3.0}, phase="rl")
    assert [r["reward"] for r in read_metrics("gs://b/run", "rl")] == [1.0, 2.0, 3.0]
    lines = (bucket / "b" / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]


def test_json_export_and_tokenizer_on_a_remote_workdir(bucket):
    work = epath.Path("gs://b/run")
    work.mkdir(parents=True)
    trainer._save_json(work / "summary.json", {"after": {"accuracy": 0.5}})
    assert trainer._load_json(work / "summary.json") == {"after": {"accuracy": 0.5}}
    assert not (bucket / "b" / "run" / "summary.json.tmp").exists()

    cfg = models.ModelConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2,
        num_kv_heads=1, head_dim=8,
    )  # fmt: skip
    model = models.init_model(cfg, seed=2)
    models.save_pretrained(model, "gs://b/run/export")
    models.save_pretrained(model, "gs://b/run/export")  # overwrites
    back = models.from_pretrained(bucket / "b" / "run" / "export")
    for a, b in zip(
        jax.tree.leaves(nnx.state(model)), jax.tree.leaves(nnx.state(back)), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    config = ml_collections.ConfigDict({"model": {"tokenizer": "synthetic"}})
    tok = setup.build_tokenizer(config, "gs://b/run")
    assert (bucket / "b" / "run" / "tokenizer" / "tokenizer.json").exists()
    assert tok.decode(tok.encode("1 + 2 = 3", add_special_tokens=False)) == "1 + 2 = 3"


def test_checkpointer_takes_epath_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert as_path("ckpt") == epath.Path(tmp_path / "ckpt")
    assert os.fspath(as_path("gs://b/x/ckpt")) == "gs://b/x/ckpt"
    state = {"w": jax.numpy.arange(6.0).reshape(2, 3)}
    Checkpointer(epath.Path("ckpt")).save(4, state, {"next_index": 4})
    restored, data, step = Checkpointer(tmp_path / "ckpt").restore(state)
    assert step == 4 and data == {"next_index": 4}
    np.testing.assert_array_equal(restored["w"], state["w"])
