"""Helpers shared by the benchmark scripts: model shapes, timing, measured peaks, FLOPs, JSON.

Every benchmark is a script that prints one JSON object; the helpers here keep their shapes,
timing rule and device measurements identical:

- ``SIZES`` / `model_config` / `hf_config`: Qwen2.5-0.5B and 1.5B decoder shapes (random weights)
  and a tiny one (``"smoke"``) that runs on a CPU, as lenrl and transformers configs.
- `median_time`: median wall time of a call that ends synchronised; the warm-up (compile) call is
  the caller's and is never counted.
- `copy_bandwidth` / `matmul_peak`: device-to-device copy bytes/s and bf16 matmul FLOP/s measured
  in the same process, the denominators of bandwidth fractions and MFU.
- `train_flops`: model FLOPs of one training step (the MFU numerator), formula in `FLOPS_FORMULA`.
- `word_tokenizer`: a word-level tokenizer of any vocabulary size built in memory (nothing is
  downloaded), served through transformers so TRL, Tunix and lenrl can all use it.
- `guarded`: runs an optional part (torch, TRL, Tunix) and turns any failure into a
  ``{"status": "unavailable: ..."}`` entry instead of ending the run.
- `Report`: the result dict, printed at the end and rewritten to ``--out`` after every row, so a
  run cut short by a time limit still leaves its finished rows.
"""

from __future__ import annotations

import os

# torch and JAX share one GPU in these scripts: JAX must not take 75% of its memory up front. Read
# when JAX creates its GPU client (first device use), so setting it at import time is enough.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from lenrl import models  # noqa: E402

# Decoder bodies of the real checkpoints (Qwen2.5 config.json), random weights in the benchmarks.
SIZES = {
    "0.5b": dict(
        hidden_size=896,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        head_dim=64,
        intermediate_size=4864,
        vocab_size=151936,
    ),
    "1.5b": dict(
        hidden_size=1536,
        num_layers=28,
        num_heads=12,
        num_kv_heads=2,
        head_dim=128,
        intermediate_size=8960,
        vocab_size=151936,
    ),
    "smoke": dict(  # --tiny / --smoke: runs on a CPU in seconds
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        intermediate_size=128,
        vocab_size=512,
    ),
}

ROPE_THETA = 1_000_000.0

FLOPS_FORMULA = (
    "6 * N_dense * B * T + 6 * E * V * B * Tc + 12 * L * Hq * D * T^2 * B, with N_dense = "
    "L * (E * D * (Hq + 2 * Hkv) + Hq * D * E + 3 * E * F) the layer matmul weights, the "
    "vocabulary projection applied to the Tc completion positions only (lenrl's loss and TRL's "
    "logits_to_keep both do that) and attention scores counted over all T x T pairs (PaLM, "
    "arXiv:2204.02311, appendix B); forward + backward = 3 x forward; embeddings lookups, norms, "
    "softmax and the optimizer are not counted"
)


def model_config(size: str, **overrides) -> models.ModelConfig:
    """lenrl's config of a benchmark shape: bf16 weights and compute, tied embeddings."""
    fields = dict(
        model_type="qwen2",
        tie_word_embeddings=True,
        rope_theta=ROPE_THETA,
        max_position_embeddings=32768,
        param_dtype="bfloat16",
        dtype="bfloat16",
        **SIZES[size],
    )
    fields.update(overrides)
    return models.ModelConfig(**fields)


def hf_config(size: str, **overrides):
    """The same shape as a transformers ``Qwen2Config``."""
    import transformers

    s = SIZES[size]
    fields = dict(
        vocab_size=s["vocab_size"],
        hidden_size=s["hidden_size"],
        intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["num_layers"],
        num_attention_heads=s["num_heads"],
        num_key_value_heads=s["num_kv_heads"],
        tie_word_embeddings=True,
        rope_theta=ROPE_THETA,
        max_position_embeddings=32768,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    fields.update(overrides)
    return transformers.Qwen2Config(**fields)


def tunix_qwen2_config(size: str):
    """Tunix's Qwen2 ``ModelConfig`` for a shape of `SIZES` (bf16, tied embeddings); needs tunix."""
    from tunix.models.qwen2 import model as tqwen

    s = SIZES[size]
    return tqwen.ModelConfig(
        num_layers=s["num_layers"],
        vocab_size=s["vocab_size"],
        embed_dim=s["hidden_size"],
        hidden_dim=s["intermediate_size"],
        num_heads=s["num_heads"],
        head_dim=s["head_dim"],
        num_kv_heads=s["num_kv_heads"],
        rope_theta=1_000_000,
        norm_eps=1e-6,
        use_tied_embedding=True,
        dtype=jnp.bfloat16,
        param_dtype=jnp.bfloat16,
    )


def median_time(fn: Callable, repeats: int) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` calls (each call must end synchronised)."""
    times, out = [], None
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def copy_bandwidth(nbytes: int, repeats: int) -> float:
    """Bytes/s of a device-to-device elementwise copy (read n bytes + write n bytes)."""
    x = jnp.ones((nbytes // 4,), jnp.float32)
    f = jax.jit(lambda x: x * 2)
    jax.block_until_ready(f(x))
    t, _ = median_time(lambda: jax.block_until_ready(f(x)), max(repeats, 5))
    return 2 * x.nbytes / t


def matmul_peak(n: int, repeats: int = 10) -> float:
    """FLOP/s of an ``n x n @ n x n`` bf16 matmul with f32 accumulation (``2 n^3`` FLOPs)."""
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.bfloat16)
    b = jax.random.normal(kb, (n, n), jnp.bfloat16)
    f = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    jax.block_until_ready(f(a, b))
    t, _ = median_time(lambda: jax.block_until_ready(f(a, b)), repeats)
    return 2 * n**3 / t


def train_flops(cfg: models.ModelConfig, batch: int, seq_len: int, completion_len: int) -> float:
    """Model FLOPs of one forward + backward over ``batch`` rows of ``seq_len`` tokens
    (``FLOPS_FORMULA``)."""
    e, f, d = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    hq, hkv, layers, v = cfg.num_heads, cfg.num_kv_heads, cfg.num_layers, cfg.vocab_size
    dense = layers * (e * d * (hq + 2 * hkv) + hq * d * e + 3 * e * f)
    tokens = batch * seq_len
    return float(
        6 * dense * tokens
        + 6 * e * v * batch * completion_len
        + 12 * layers * hq * d * seq_len**2 * batch
    )


def on_mesh_of(tree, params):
    """``tree`` with every leaf not on the mesh of ``params`` (e.g. optimizer step counters) put
    there replicated, as the trainer's ``Run.on_mesh`` does: a jitted step then sees the same
    input shardings on every call and compiles once."""
    mesh = jax.tree.leaves(params)[0].sharding.mesh
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def one(x):
        sh = getattr(x, "sharding", None)
        if isinstance(sh, jax.sharding.NamedSharding) and sh.mesh == mesh:
            return x
        return jax.device_put(x, replicated)

    return jax.tree.map(one, tree)


def word_tokenizer(vocab_size: int):
    """A ``PreTrainedTokenizerFast`` with ``vocab_size`` whitespace-separated words, built offline.

    Ids: ``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2, ``<eos>`` 3, then words ``w4 ... w{V-1}``; one word
    is one token, so a prompt of ``n`` words is ``n`` tokens in every framework. The chat template
    writes the messages' contents only (no special tokens), so templated and plain prompts agree.
    """
    from tokenizers import AddedToken, Tokenizer, pre_tokenizers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    vocab = {t: i for i, t in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), vocab_size)})
    tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}",
        padding_side="left",
        model_max_length=1 << 20,
    )


def guarded(name: str, fn: Callable[[], dict]) -> dict:
    """``fn()``, or ``{"status": "unavailable: <error>"}`` if it raises (the run goes on)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - optional parts report, they never end the run
        tb = traceback.format_exc(limit=-3)
        print(f"[{name}] failed:\n{tb}", file=sys.stderr, flush=True)
        msg = f"{type(e).__name__}: {e}"
        return dict(status=f"unavailable: {msg[:600]}")


def versions(*modules: str) -> dict:
    """``{module: version}`` for the importable ones (missing ones are left out)."""
    import importlib

    out = {}
    for m in modules:
        try:
            out[m] = getattr(importlib.import_module(m), "__version__", "?")
        except Exception:  # noqa: BLE001
            continue
    return out


def device_info() -> dict:
    d = jax.devices()[0]
    return dict(
        device=str(d.device_kind),
        backend=jax.default_backend(),
        num_devices=jax.device_count(),
        python=platform.python_version(),
    )


class Report:
    """The JSON result: printed by `finish`; rewritten to ``path`` (if any) after every `save`."""

    def __init__(self, path: str | None, **fields):
        self.path = path
        self.data = dict(fields)

    def save(self) -> None:
        if not self.path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, default=float)
        os.replace(tmp, self.path)

    def row(self, key: str, row: dict) -> None:
        """Appends ``row`` to the list ``data[key]``, echoes it to stderr and saves."""
        self.data.setdefault(key, []).append(row)
        print(json.dumps(row, default=float), file=sys.stderr, flush=True)
        self.save()

    def finish(self) -> dict:
        self.save()
        print(json.dumps(self.data, indent=1, default=float), flush=True)
        return self.data
