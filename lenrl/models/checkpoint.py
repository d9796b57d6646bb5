"""Hugging Face checkpoint directories in and out, with parameters placed by their sharding.

`from_pretrained` builds the model abstractly (`nnx.eval_shape`), then creates every parameter
with `jax.make_array_from_callback`: each device's shard is read straight from the safetensors
file (`safe_open(...).get_slice`), so no full second copy of the model is held in host memory.
`save_pretrained` writes safetensors + config.json that transformers loads unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from safetensors import safe_open
from safetensors.numpy import save_file

from lenrl.models import params as P
from lenrl.models.config import ModelConfig, load_config, to_hf_config
from lenrl.models.transformer import Decoder
from lenrl.sharding import AxisRules

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# Tensors some checkpoints carry that lenrl derives instead.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def abstract_model(cfg: ModelConfig, seed: int = 0):
    """``(graphdef, abstract_state)`` of a `Decoder` without allocating any parameter."""
    return nnx.split(nnx.eval_shape(lambda: Decoder(cfg, rngs=nnx.Rngs(seed))))


def param_shardings(abs_state, mesh: Mesh | None, rules: AxisRules = AxisRules()):
    """A `NamedSharding` per parameter from its logical axes (`params.PARAMS`) and ``rules``."""
    mesh = mesh or _single_device_mesh()

    def one(path, leaf):
        spec, _ = P.lookup(P.path_str(path))
        return rules.sharding(mesh, spec.axes, leaf.shape)

    return jax.tree_util.tree_map_with_path(one, abs_state)


def _single_device_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1, 1), ("data", "fsdp", "tensor"))


# The order in which `Decoder.__init__` draws its random parameters from ``rngs.params()``:
# draw ``c`` uses the key ``fold_in(key(seed), c)`` (flax `RngStream`), so the parameter made by
# `init_model` is bitwise the one the module would make itself (tests check this).
_DRAW_ORDER_LAYER = (
    "attn.q_proj",
    "attn.k_proj",
    "attn.v_proj",
    "attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)


def _draw_index(name: str, num_layers: int) -> int:
    """Index ``c`` of the ``rngs.params()`` draw that makes the random parameter ``name``."""
    if name == "embed":
        return 0
    if name == "lm_head":
        return 1 + len(_DRAW_ORDER_LAYER) * num_layers
    _, layer = P.lookup(name)
    return 1 + len(_DRAW_ORDER_LAYER) * layer + _DRAW_ORDER_LAYER.index(name.split(".", 2)[2])


def _initializer(name: str, shape) -> tuple[str, float]:
    """``(kind, scale)``: ``("normal", s)`` draws ``N(0, 1) * s``, else ``"ones"`` / ``"zeros"``.

    As in `Decoder`: embedding ``s = 0.02``; projections ``s = fan_in ** -0.5`` (``fan_in`` = the
    input dims of ``x @ W``); norm scales ones; q/k/v biases zeros.
    """
    spec, _ = P.lookup(name)
    if name.endswith(".scale"):
        return "ones", 1.0
    if spec.layout is P.Layout.HEADS:
        return "zeros", 1.0
    if name == "embed":
        return "normal", 0.02
    fan_in = shape[0] * shape[1] if spec.layout is P.Layout.HEADS_OUT else shape[0]
    return "normal", fan_in**-0.5


@functools.cache
def _leaf_init(kind: str, scale: float, shape, dtype, sharding):
    """One small jitted initialiser per distinct leaf, created directly with its sharding.

    Cached: a model has a dozen distinct (shape, dtype, sharding) leaves however many layers it
    has, so a 0.5B or 1.5B model compiles a dozen tiny programs instead of one huge one.
    """

    def init(key):
        if kind == "normal":
            return jax.random.normal(key, shape, dtype) * scale
        return (jnp.ones if kind == "ones" else jnp.zeros)(shape, dtype)

    return jax.jit(init, out_shardings=sharding)


def init_model(
    cfg: ModelConfig, *, mesh: Mesh | None = None, rules: AxisRules = AxisRules(), seed: int = 0
) -> Decoder:
    """A randomly initialised `Decoder` whose parameters are created already sharded.

    Bitwise the parameters of ``Decoder(cfg, rngs=nnx.Rngs(seed))``, made leaf by leaf (one
    small jit per distinct shape, dtype and sharding) so that large models initialise fast.
    """
    graphdef, abs_state = abstract_model(cfg, seed)
    shardings = param_shardings(abs_state, mesh, rules)
    root = jax.random.key(seed)

    def make(path, leaf, sharding):
        name = P.path_str(path)
        kind, scale = _initializer(name, leaf.shape)
        key = (
            root
            if kind != "normal"
            else jax.random.fold_in(root, _draw_index(name, cfg.num_layers))
        )
        return _leaf_init(kind, float(scale), tuple(leaf.shape), leaf.dtype, sharding)(key)

    state = jax.tree_util.tree_map_with_path(make, abs_state, shardings)
    return nnx.merge(graphdef, state)


def _weight_map(path: str) -> dict[str, str]:
    """HF tensor name -> safetensors file path for a checkpoint directory."""
    index = os.path.join(path, INDEX_FILE)
    if os.path.isfile(index):
        with open(index) as f:
            wm = json.load(f)["weight_map"]
        return {name: os.path.join(path, file) for name, file in wm.items()}
    single = os.path.join(path, SINGLE_FILE)
    if not os.path.isfile(single):
        raise FileNotFoundError(
            f"{path} has neither {SINGLE_FILE} nor {INDEX_FILE}: lenrl loads Hugging Face "
            "safetensors checkpoints (save with `save_pretrained(..., safe_serialization=True)`)."
        )
    with safe_open(single, framework="numpy") as f:
        return {name: single for name in f.keys()}


@contextlib.contextmanager
def _open_all(files) -> Iterator[dict]:
    with contextlib.ExitStack() as stack:
        for file in files:
            if not os.path.isfile(file):
                raise FileNotFoundError(f"{file} is listed in {INDEX_FILE} but does not exist.")
        yield {f: stack.enter_context(safe_open(f, framework="numpy")) for f in set(files)}


def _range(s: slice, n: int) -> tuple[int, int]:
    start, stop, step = s.indices(n)
    assert step == 1, "shards are contiguous"
    return start, stop


def _read_shard(tensor, layout: P.Layout, shape, index) -> np.ndarray:
    """Reads the part of an HF tensor that fills ``index`` (a tuple of slices of lenrl's shape)."""
    idx = tuple(index) + (slice(None),) * (len(shape) - len(index))
    if layout is P.Layout.SAME:
        return tensor[idx]
    if layout is P.Layout.T:
        return tensor[tuple(reversed(idx))].T
    if layout is P.Layout.IN_HEADS:  # ours [E, H, D] <- hf [H*D, E]
        _, _, d = shape
        h0, h1 = _range(idx[1], shape[1])
        block = tensor[h0 * d : h1 * d, idx[0]]  # [(h1-h0)*D, e']
        return block.T.reshape(block.shape[1], h1 - h0, d)[:, :, idx[2]]
    if layout is P.Layout.HEADS_OUT:  # ours [H, D, E] <- hf [E, H*D]
        _, d, _ = shape
        h0, h1 = _range(idx[0], shape[0])
        block = tensor[idx[2], h0 * d : h1 * d]  # [e', (h1-h0)*D]
        return block.T.reshape(h1 - h0, d, block.shape[0])[:, idx[1], :]
    _, d = shape  # HEADS: ours [H, D] <- hf [H*D]
    h0, h1 = _range(idx[0], shape[0])
    return tensor[h0 * d : h1 * d].reshape(h1 - h0, d)[:, idx[1]]


def from_pretrained(
    path: str | os.PathLike,
    *,
    mesh: Mesh | None = None,
    rules: AxisRules = AxisRules(),
    param_dtype: str = "float32",
    dtype: str = "float32",
    **config_overrides,
) -> Decoder:
    """Builds a `Decoder` from a Hugging Face checkpoint directory.

    Args:
      path: directory with ``config.json`` and ``model.safetensors`` (or sharded files with
        ``model.safetensors.index.json``).
      mesh: a ``(data, fsdp, tensor)`` mesh; parameters are placed by ``rules``. Default: the
        first device.
      param_dtype, dtype: storage and compute dtypes (e.g. ``"float32"``, ``"bfloat16"``).
      **config_overrides: other `ModelConfig` fields (``remat``, ``attention``).
    Raises:
      FileNotFoundError: a missing ``config.json`` or weights file.
      ValueError: a tensor missing from or extra in the checkpoint, or a shape mismatch.
    """
    path = os.fspath(path)
    cfg = load_config(path, param_dtype=param_dtype, dtype=dtype, **config_overrides)
    weight_map = _weight_map(path)
    graphdef, abs_state = abstract_model(cfg)
    shardings = param_shardings(abs_state, mesh, rules)
    expected: set[str] = set()

    with _open_all(weight_map.values()) as handles:

        def load(path_keys, leaf, sharding):
            name = P.path_str(path_keys)
            spec, _ = P.lookup(name)
            hf = P.hf_name(name)
            expected.add(hf)
            if hf not in weight_map:
                raise ValueError(
                    f"tensor {hf!r} (lenrl parameter {name!r}) is missing from the checkpoint "
                    f"in {path}; is config.json right for these weights?"
                )
            file = weight_map[hf]
            tensor = handles[file].get_slice(hf)
            want = P.hf_shape(spec, leaf.shape)
            got = tuple(tensor.get_shape())
            if got != want:
                raise ValueError(
                    f"tensor {hf!r} in {file} has shape {got}, but config.json implies {want}."
                )

            def cb(index):
                return _read_shard(tensor, spec.layout, leaf.shape, index).astype(leaf.dtype)

            return jax.make_array_from_callback(leaf.shape, sharding, cb)

        state = jax.tree_util.tree_map_with_path(load, abs_state, shardings)

    extra = {
        n
        for n in set(weight_map) - expected
        if not n.endswith(_IGNORED_SUFFIXES)
        and not (cfg.tie_word_embeddings and n == "lm_head.weight")
    }
    if extra:
        raise ValueError(
            f"checkpoint in {path} has tensors lenrl does not use: {sorted(extra)[:8]}"
            f"{' ...' if len(extra) > 8 else ''}; is model_type {cfg.model_type!r} right?"
        )
    return nnx.merge(graphdef, state)


def _to_hf(layout: P.Layout, x: np.ndarray) -> np.ndarray:
    if layout is P.Layout.SAME:
        return x
    if layout is P.Layout.T:
        return x.T
    if layout is P.Layout.IN_HEADS:
        e, h, d = x.shape
        return x.reshape(e, h * d).T
    if layout is P.Layout.HEADS_OUT:
        h, d, e = x.shape
        return x.reshape(h * d, e).T
    return x.reshape(-1)


def save_pretrained(
    model: Decoder, path: str | os.PathLike, *, tokenizer=None, max_shard_bytes: int = 4 << 30
) -> None:
    """Writes ``model`` as a Hugging Face directory (safetensors + config.json).

    The directory is written next to ``path`` and renamed into place, so a crash never leaves a
    half-written checkpoint at ``path``. Parameters are saved in the model's ``param_dtype``.
    A remote ``path`` (``gs://...``, through `etils.epath`) is written locally first, then copied.
    With several processes every process must call this (parameters split over processes are
    gathered collectively); process 0 writes.
    """
    cfg: ModelConfig = model.cfg
    tensors: dict[str, np.ndarray] = {}
    for keys, leaf in jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]:
        name = P.path_str(keys)
        spec, _ = P.lookup(name)
        whole = _fully_replicated(leaf)  # a collective when the leaf spans processes
        if jax.process_index() == 0:
            host = np.asarray(jax.device_get(whole))
            tensors[P.hf_name(name)] = np.ascontiguousarray(_to_hf(spec.layout, host))
    if jax.process_index() != 0:
        return
    if "://" not in os.fspath(path):
        _write_dir(tensors, cfg, tokenizer, os.fspath(path), max_shard_bytes)
        return
    dest = epath.Path(path)
    with tempfile.TemporaryDirectory() as local:
        _write_dir(tensors, cfg, tokenizer, os.path.join(local, "export"), max_shard_bytes)
        if dest.exists():
            dest.rmtree()
        dest.mkdir(parents=True)
        for name in sorted(os.listdir(os.path.join(local, "export"))):
            with open(os.path.join(local, "export", name), "rb") as src:
                with (dest / name).open("wb") as dst:  # through dest's (remote) backend
                    shutil.copyfileobj(src, dst, 16 << 20)


def _write_dir(tensors: dict, cfg: ModelConfig, tokenizer, path: str, max_shard_bytes: int):
    """The local directory ``path``, written beside it and renamed into place."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        _write_safetensors(tensors, tmp, max_shard_bytes)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(to_hf_config(cfg), f, indent=2)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fully_replicated(x: jax.Array) -> jax.Array:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        mesh = x.sharding.mesh
        return jax.jit(lambda a: a, out_shardings=NamedSharding(mesh, PartitionSpec()))(x)
    return x


def _write_safetensors(tensors: dict[str, np.ndarray], out: str, max_bytes: int) -> None:
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, t in tensors.items():
        if shards[-1] and size + t.nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += t.nbytes
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], os.path.join(out, SINGLE_FILE), metadata=meta)
        return
    weight_map = {}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(out, file), metadata=meta)
        weight_map.update({name: file for name in shard})
    total = sum(t.nbytes for t in tensors.values())
    with open(os.path.join(out, INDEX_FILE), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def load_tokenizer(path: str | os.PathLike):
    """transformers' ``AutoTokenizer`` from the checkpoint directory (with its chat template)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = os.fspath(path)
    cfg_file = os.path.join(path, "tokenizer_config.json")
    if os.path.isfile(cfg_file):
        with open(cfg_file) as f:
            cls = json.load(f).get("tokenizer_class")
        # A generic tokenizer.json (e.g. lenrl's synthetic one) must not be re-typed by the
        # model_type of config.json, which AutoTokenizer would otherwise follow.
        if cls in ("PreTrainedTokenizerFast", "TokenizersBackend"):
            return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)
