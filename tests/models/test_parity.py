"""lenrl's decoder against transformers on tiny random checkpoints of each supported family."""

import numpy as np
import pytest
import tiny_hf
import torch
import transformers

from lenrl import models

PAD_CASES = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # no padding
        [0, 0, 0, 1, 1, 1, 1, 1, 1, 1],  # left padded
        [1, 1, 1, 1, 1, 1, 1, 0, 0, 0],  # right padded
    ],
    bool,
)


def _batch(seed=0):
    ids = np.random.RandomState(seed).randint(3, tiny_hf.VOCAB, PAD_CASES.shape)
    return ids, PAD_CASES


def _torch_logits(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask.astype(np.int64)))
    return out.logits.float().numpy()


@pytest.fixture(scope="module", params=tiny_hf.KINDS)
def checkpoint(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    return request.param, tiny_hf.make(request.param, path), path


def test_logits_match_transformers(checkpoint):
    _, torch_model, path = checkpoint
    ids, mask = _batch()
    model = models.from_pretrained(path)
    ours = np.asarray(model(ids, attention_mask=mask))
    ref = _torch_logits(torch_model, ids, mask)
    assert ours.shape == ref.shape == (*ids.shape, tiny_hf.VOCAB)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours[mask], ref[mask], atol=1e-4, rtol=0)


def test_left_and_right_padding_agree(checkpoint):
    _, _, path = checkpoint
    model = models.from_pretrained(path)
    real = np.random.RandomState(1).randint(3, tiny_hf.VOCAB, 6)
    left = np.concatenate([np.zeros(4, int), real])[None]
    right = np.concatenate([real, np.zeros(4, int)])[None]
    mask_l, mask_r = left != 0, right != 0
    out_l = np.asarray(model(left, attention_mask=mask_l))[0, 4:]
    out_r = np.asarray(model(right, attention_mask=mask_r))[0, :6]
    np.testing.assert_allclose(out_l, out_r, atol=1e-5)


def test_export_reloads_in_transformers(checkpoint, tmp_path):
    kind, torch_model, path = checkpoint
    model = models.from_pretrained(path)
    models.save_pretrained(model, tmp_path / "export")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "export").float()
    assert reloaded.config.model_type == kind
    ids, mask = _batch(2)
    np.testing.assert_allclose(
        _torch_logits(reloaded.eval(), ids, mask)[mask],
        _torch_logits(torch_model, ids, mask)[mask],
        atol=1e-5,
    )
    # And lenrl reads its own export back bit for bit.
    again = models.from_pretrained(tmp_path / "export")
    np.testing.assert_array_equal(np.asarray(again(ids)), np.asarray(model(ids)))


def test_bf16_compute_over_f32_params(checkpoint):
    _, torch_model, path = checkpoint
    model = models.from_pretrained(path, param_dtype="float32", dtype="bfloat16")
    assert model.embed[...].dtype == np.float32
    ids, mask = _batch()
    ours = np.asarray(model(ids, attention_mask=mask))
    assert ours.dtype == np.float32
    ref = _torch_logits(torch_model, ids, mask)
    # bf16 has ~3 significant digits; the logits are O(1).
    assert np.abs(ours[mask] - ref[mask]).mean() < 0.05


def test_sharded_safetensors_index(tmp_path):
    torch_model = tiny_hf.make("qwen3")
    torch_model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    model = models.from_pretrained(tmp_path)
    ids, mask = _batch()
    np.testing.assert_allclose(
        np.asarray(model(ids, attention_mask=mask))[mask],
        _torch_logits(torch_model, ids, mask)[mask],
        atol=1e-4,
    )
    # Our own writer shards too, and the result loads in both libraries.
    models.save_pretrained(model, tmp_path / "out", max_shard_bytes=50_000)
    assert (tmp_path / "out" / "model.safetensors.index.json").exists()
    reloaded = models.from_pretrained(tmp_path / "out")
    np.testing.assert_array_equal(np.asarray(reloaded(ids)), np.asarray(model(ids)))
    transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out")
