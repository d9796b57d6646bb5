"""Experiment config files (``configs/*.py``) loaded by path, as ml_collections' flags do.

``configs/`` is not a package, so configs that build on another (``methods.py`` on
``default.py``) and programs that take a config path (benchmarks, notebooks) load it here.
"""

from __future__ import annotations

import importlib.util
import os
import types

import ml_collections


def load_module(path: str | os.PathLike) -> types.ModuleType:
    """The config file at ``path`` as a fresh module (its ``get_config`` not yet called)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist.")
    name = "lenrl_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """``get_config(arg)`` of a config file; ``"file.py:arg"`` works as on the command line."""
    if arg is None and ":" in os.path.basename(path):
        path, arg = path.rsplit(":", 1)
    return load_module(path).get_config(arg)


def unset_all(cd: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Every key of ``cd`` to None (unset), keeping the keys so that flags can still set them."""
    for key in list(cd.keys()):
        cd[key] = None
    return cd
