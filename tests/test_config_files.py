"""Config files load by path, with ``file.py:arg`` as on the command line."""

import os

import pytest

from lenrl import config_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(ROOT, "configs", "default.py")


def test_load_with_and_without_arg():
    full, smoke = config_files.load(DEFAULT), config_files.load(DEFAULT + ":smoke")
    assert full.rl.steps > smoke.rl.steps == config_files.load(DEFAULT, "smoke").rl.steps
    assert config_files.load_module(DEFAULT).get_config().rl.steps == full.rl.steps


def test_missing_file_and_unset_all(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.py does not exist"):
        config_files.load(str(tmp_path / "nowhere.py"))
    loss = config_files.unset_all(config_files.load(DEFAULT).rl.loss)
    assert set(loss.to_dict().values()) == {None} and "beta" in loss
