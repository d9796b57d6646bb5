"""Bad checkpoints and configs fail with errors that name the file, tensor or field."""

import json

import numpy as np
import pytest
import tiny_hf
from safetensors.numpy import load_file, save_file

from lenrl import models


@pytest.fixture
def ckpt(tmp_path):
    tiny_hf.make("qwen2", tmp_path)
    return tmp_path


def _edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def _edit_weights(path, fn):
    tensors = load_file(path / "model.safetensors")
    fn(tensors)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


def test_missing_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        models.from_pretrained(tmp_path)


def test_missing_weights(ckpt):
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor"):
        models.from_pretrained(ckpt)


def test_missing_shard_file(tmp_path):
    tiny_hf.make("qwen3").save_pretrained(tmp_path, max_shard_size="20KB")
    next(tmp_path.glob("model-00002-*.safetensors")).unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-.*does not exist"):
        models.from_pretrained(tmp_path)


def test_unsupported_model_type(ckpt):
    _edit_config(ckpt, model_type="gpt2")
    with pytest.raises(ValueError, match="'gpt2' is not supported.*qwen2, qwen3, llama"):
        models.from_pretrained(ckpt)


def test_missing_tensor(ckpt):
    _edit_weights(ckpt, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(ValueError, match=r"'model.layers.1.mlp.up_proj.weight'.*missing"):
        models.from_pretrained(ckpt)


def test_extra_tensor(ckpt):
    _edit_weights(ckpt, lambda t: t.update(extra_head=np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="does not use: \\['extra_head'\\]"):
        models.from_pretrained(ckpt)


def test_shape_mismatch_names_tensor_and_file(ckpt):
    _edit_config(ckpt, intermediate_size=80)
    with pytest.raises(
        ValueError,
        match=r"mlp\.\w+_proj\.weight' in .*model.safetensors has shape \(\d+, \d+\), "
        r"but config.json implies",
    ):
        models.from_pretrained(ckpt)


def test_unsupported_rope_scaling(ckpt):
    _edit_config(ckpt, rope_scaling={"rope_type": "yarn", "factor": 4.0})
    with pytest.raises(ValueError, match="'yarn' is not supported"):
        models.from_pretrained(ckpt)


def test_bad_config_fields():
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        models.ModelConfig(num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="remat='some'"):
        models.ModelConfig(remat="some")


def test_config_round_trip():
    cfg = models.ModelConfig(
        model_type="llama",
        qkv_bias=False,
        eos_token_id=(5, 6),
        rope_scaling=models.RopeScaling(factor=4.0),
    )
    again = models.from_hf_config(models.to_hf_config(cfg))
    assert again == cfg
    assert cfg.eos_token_ids == (5, 6)


def test_num_params_matches_arrays():
    import jax

    for cfg in [
        models.ModelConfig(),
        models.ModelConfig(
            model_type="qwen3", qkv_bias=False, qk_norm=True, tie_word_embeddings=False
        ),
    ]:
        _, state = models.abstract_model(cfg)
        assert sum(np.prod(x.shape) for x in jax.tree.leaves(state)) == cfg.num_params()
