"""Prompt sources: random-access ``grain.MapDataset``s of records.

Every source yields the same record::

    {"prompt": str,      # the question, without chat template (tokenisation happens later)
     "answer": str,      # gold answer as stored (e.g. GSM8K "... #### 72"); verifiers parse it
     "difficulty": int,  # difficulty level; 0 when the source has none
     "index": int}       # stable position of the example in the source (per-prompt state key)

The synthetic source adds ``"solution"``, the verbose completion used by the supervised warm start;
the file sources add it too when given ``solution_field`` (the column with a worked solution).

File sources read the question/answer/difficulty columns named by the config (``question_field``,
``answer_field``, optional ``difficulty_field``). A difficulty may be an integer or a string that
holds one (MATH's ``"Level 3"`` -> 3); a value with no integer (``"Level ?"``) gives 0. ``path``
may be a file, a directory (every file of the format inside, sorted) or a glob; ``index`` counts
rows over the files in that order. JSONL, Parquet and saved Hugging Face datasets are read into
memory when the source is built (prompt sets are small); TFDS sources read lazily by index.

``get_source(kind, **kwargs)`` builds one from config; ``SOURCES`` lists the kinds.
"""

from __future__ import annotations

import functools
import glob
import inspect
import json
import os
import pathlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain

from lenrl.data.synthetic import DEFAULT_CONFIG, SyntheticConfig, synthetic_record

RECORD_KEYS = ("prompt", "answer", "difficulty", "index")


# --------------------------------------------------------------------------------------------
# Synthetic task.


def _synthetic_at(index: int, *, seed: int, split: str, config: SyntheticConfig) -> dict:
    return synthetic_record(seed, int(index), split, config)


def synthetic_source(
    *,
    num_examples: int,
    split: str = "train",
    seed: int = 0,
    config: SyntheticConfig = DEFAULT_CONFIG,
) -> grain.MapDataset:
    """``num_examples`` synthetic records of ``split`` ("train" | "eval"), computed on access."""
    if num_examples <= 0:
        raise ValueError(f"num_examples must be > 0, got {num_examples}")
    record_at = functools.partial(_synthetic_at, seed=seed, split=split, config=config)
    record_at(0)  # fail here, not inside the pipeline, on a bad split or seed
    return grain.MapDataset.range(num_examples).map(record_at)


# --------------------------------------------------------------------------------------------
# Field mapping shared by the file sources.


def _difficulty(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        match = re.search(r"-?\d+", value)
        return int(match.group()) if match else 0
    return int(value)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _check_fields(available: Sequence[str], fields: Mapping[str, str | None], where: str) -> None:
    """Raises naming ``where``, the config key and the columns there are, if a field is missing."""
    for config_key, name in fields.items():
        if name is not None and name not in available:
            raise ValueError(
                f"{where}: no field {name!r} (set by {config_key}); available fields: "
                f"{sorted(available)}. Set {config_key} in the data config to one of them."
            )


def _to_record(row: Mapping[str, Any], index: int, fields: Mapping[str, str | None]) -> dict:
    difficulty_field = fields["difficulty_field"]
    record = {
        "prompt": _text(row[fields["question_field"]]),
        "answer": _text(row[fields["answer_field"]]),
        "difficulty": _difficulty(row[difficulty_field]) if difficulty_field else 0,
        "index": index,
    }
    if fields.get("solution_field"):
        record["solution"] = _text(row[fields["solution_field"]])
    return record


def _indexed_record(index: int, row: Mapping[str, Any], *, fields: Mapping[str, str | None]):
    return _to_record(row, int(index), fields)


def _fields(
    question_field: str,
    answer_field: str,
    difficulty_field: str | None,
    solution_field: str | None = None,
) -> dict:
    return {
        "question_field": question_field,
        "answer_field": answer_field,
        "difficulty_field": difficulty_field,
        "solution_field": solution_field or None,
    }


def _expand(path: str | os.PathLike, suffixes: tuple[str, ...], kind: str) -> list[pathlib.Path]:
    """A file, the matching files of a directory, or a glob -> sorted existing files."""
    p = pathlib.Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(suffixes))
    elif any(c in str(path) for c in "*?["):
        files = sorted(pathlib.Path(f) for f in glob.glob(str(path)) if os.path.isfile(f))
    else:
        files = [p] if p.is_file() else []
    if not files:
        raise FileNotFoundError(
            f"{kind} source: no {'/'.join(suffixes)} file at {str(path)!r} (absolute: "
            f"{p.absolute()}). Set path in the data config to an existing file, a directory "
            f"holding such files, or a glob."
        )
    return files


# --------------------------------------------------------------------------------------------
# In-memory file sources.


def _read_jsonl(file: pathlib.Path) -> list[tuple[str, dict]]:
    """``[("file:line", row), ...]`` for the non-blank lines of ``file``."""
    rows = []
    with file.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{file}:{line_number}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{file}:{line_number}: expected a JSON object per line")
            rows.append((f"{file}:{line_number}", row))
    return rows


def jsonl_source(
    path: str | os.PathLike,
    *,
    question_field: str = "question",
    answer_field: str = "answer",
    difficulty_field: str | None = None,
    solution_field: str | None = None,
) -> grain.MapDataset:
    """Records from JSON-lines file(s), one object per line (blank lines skipped).

    ``solution_field`` (optional, here and in every file source) names a column with a worked
    solution, copied into the record as ``"solution"`` for the supervised warm start.
    """
    fields = _fields(question_field, answer_field, difficulty_field, solution_field)
    records = []
    for file in _expand(path, (".jsonl", ".json"), "jsonl"):
        for where, row in _read_jsonl(file):
            _check_fields(list(row), fields, where)
            records.append(_to_record(row, len(records), fields))
    if not records:
        raise ValueError(f"jsonl source {str(path)!r} holds no records")
    return grain.MapDataset.source(records)


def parquet_source(
    path: str | os.PathLike,
    *,
    question_field: str = "question",
    answer_field: str = "answer",
    difficulty_field: str | None = None,
    solution_field: str | None = None,
) -> grain.MapDataset:
    """Records from Parquet file(s), read with pyarrow (only the mapped columns)."""
    import pyarrow.parquet as pq

    fields = _fields(question_field, answer_field, difficulty_field, solution_field)
    columns = [name for name in fields.values() if name is not None]
    records = []
    for file in _expand(path, (".parquet",), "parquet"):
        _check_fields(pq.read_schema(file).names, fields, str(file))
        for row in pq.read_table(file, columns=list(dict.fromkeys(columns))).to_pylist():
            records.append(_to_record(row, len(records), fields))
    if not records:
        raise ValueError(f"parquet source {str(path)!r} holds no records")
    return grain.MapDataset.source(records)


def hf_disk_source(
    path: str | os.PathLike,
    *,
    split: str | None = None,
    question_field: str = "question",
    answer_field: str = "answer",
    difficulty_field: str | None = None,
    solution_field: str | None = None,
) -> grain.MapDataset:
    """Records from a dataset saved with ``datasets.Dataset.save_to_disk`` (``split`` picks one
    split of a saved ``DatasetDict``). Needs the optional ``datasets`` package."""
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "hf_disk source needs the Hugging Face `datasets` package, which is not installed "
            "(lenrl does not depend on it). Install it with `pip install datasets`, or convert "
            "the data to JSONL/Parquet and use the jsonl or parquet source."
        ) from None
    if not pathlib.Path(path).is_dir():
        raise FileNotFoundError(
            f"hf_disk source: no saved dataset directory at {str(path)!r}. Set path in the data "
            f"config to a directory written by `save_to_disk`."
        )
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(
                f"{path}: saved DatasetDict has splits {sorted(ds)}; set split in the data config "
                f"to one of them (got {split!r})."
            )
        ds = ds[split]
    fields = _fields(question_field, answer_field, difficulty_field, solution_field)
    _check_fields(ds.column_names, fields, str(path))
    rows = ds.select_columns(list(dict.fromkeys(n for n in fields.values() if n))).to_list()
    return grain.MapDataset.source([_to_record(row, i, fields) for i, row in enumerate(rows)])


# --------------------------------------------------------------------------------------------
# TFDS (lazy, random access through array_record; no tensorflow needed).


def tfds_source(
    name: str,
    *,
    data_dir: str | os.PathLike,
    split: str = "train",
    question_field: str = "question",
    answer_field: str = "answer",
    difficulty_field: str | None = None,
    solution_field: str | None = None,
) -> grain.MapDataset:
    """Records from a TFDS dataset already prepared under ``data_dir`` in ``array_record`` format.

    Uses ``tfds.data_source(name, split=..., data_dir=..., download=False)``, which reads
    array_record shards without tensorflow. Nothing is downloaded: prepare the dataset elsewhere
    with ``tfds build NAME --file_format=array_record --data_dir=DIR`` and copy ``DIR`` over.
    """
    import tensorflow_datasets as tfds

    if not pathlib.Path(data_dir).is_dir():
        raise FileNotFoundError(
            f"tfds source {name!r}: data_dir {str(data_dir)!r} does not exist. Set data_dir in the "
            f"data config to the directory holding {name}/<version>/ (array_record format)."
        )
    try:
        ds = tfds.data_source(name, split=split, data_dir=os.fspath(data_dir), download=False)
    except Exception as e:  # tfds raises several types; all mean "cannot read it from here"
        detail = str(e).split("\n")[0][:300].rstrip(".")
        raise ValueError(
            f"tfds source {name!r} (split {split!r}) cannot be read from data_dir "
            f"{str(data_dir)!r}: {type(e).__name__}: {detail}. It must be prepared there in "
            f"array_record format (`tfds build {name} --file_format=array_record "
            f"--data_dir={data_dir}`) and split must be one of its splits."
        ) from e
    fields = _fields(question_field, answer_field, difficulty_field, solution_field)
    _check_fields(list(ds.dataset_info.features.keys()), fields, f"tfds {name}:{split}")
    to_record = functools.partial(_indexed_record, fields=fields)
    return grain.MapDataset.source(ds).map_with_index(to_record)


# --------------------------------------------------------------------------------------------
# Registry.

SOURCES: dict[str, Callable[..., grain.MapDataset]] = {
    "synthetic": synthetic_source,
    "jsonl": jsonl_source,
    "parquet": parquet_source,
    "hf_disk": hf_disk_source,
    "tfds": tfds_source,
}


def get_source(kind: str, **kwargs) -> grain.MapDataset:
    """``SOURCES[kind](**kwargs)``; an unknown kind or argument raises listing the valid ones."""
    if kind not in SOURCES:
        raise ValueError(f"unknown source kind {kind!r}; valid kinds: {sorted(SOURCES)}")
    fn = SOURCES[kind]
    params = inspect.signature(fn).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise TypeError(f"source {kind!r}: unknown arguments {unknown}; valid: {sorted(params)}")
    return fn(**kwargs)
