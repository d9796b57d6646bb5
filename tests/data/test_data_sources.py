"""Prompt sources (lenrl.data.sources): synthetic, JSONL, Parquet, HF on disk, TFDS."""

import importlib.util
import json
import sys
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow_datasets as tfds

from lenrl.data import sources
from lenrl.data.synthetic import synthetic_record

ROWS = [
    {"q": "What is 1 + 1?", "a": "#### 2", "level": "Level 3", "extra": 1},
    {"q": "What is 2 + 2?", "a": "#### 4", "level": "Level ?", "extra": 2},
    {"q": "What is 3 + 3?", "a": "#### 6", "level": 5, "extra": 3},
]
FIELDS = {"question_field": "q", "answer_field": "a", "difficulty_field": "level"}
EXPECTED = [
    {"prompt": "What is 1 + 1?", "answer": "#### 2", "difficulty": 3, "index": 0},
    {"prompt": "What is 2 + 2?", "answer": "#### 4", "difficulty": 0, "index": 1},
    {"prompt": "What is 3 + 3?", "answer": "#### 6", "difficulty": 5, "index": 2},
]


def _write_jsonl(path, rows, blank_line=False):
    lines = [json.dumps(r) for r in rows]
    if blank_line:
        lines.insert(1, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_parquet(path, rows):
    rows = [{**r, "level": str(r["level"])} for r in rows]  # one column type
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_synthetic_source():
    ds = sources.synthetic_source(num_examples=20, split="eval", seed=3)
    assert len(ds) == 20
    assert ds[7] == synthetic_record(3, 7, "eval")
    with pytest.raises(ValueError, match="unknown split"):
        sources.synthetic_source(num_examples=5, split="validation")
    with pytest.raises(ValueError, match="num_examples"):
        sources.synthetic_source(num_examples=0)


def test_jsonl_source(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", ROWS, blank_line=True)
    ds = sources.jsonl_source(path, **FIELDS)
    assert [ds[i] for i in range(len(ds))] == EXPECTED
    no_difficulty = sources.jsonl_source(path, question_field="q", answer_field="a")
    assert [no_difficulty[i]["difficulty"] for i in range(3)] == [0, 0, 0]


def test_jsonl_directory_and_glob_concatenate_in_sorted_order(tmp_path):
    _write_jsonl(tmp_path / "b.jsonl", ROWS[2:])
    _write_jsonl(tmp_path / "a.jsonl", ROWS[:2])
    (tmp_path / "notes.txt").write_text("ignored")
    for path in (tmp_path, tmp_path / "*.jsonl"):
        ds = sources.jsonl_source(path, **FIELDS)
        assert [ds[i] for i in range(len(ds))] == EXPECTED


def test_parquet_source(tmp_path):
    path = _write_parquet(tmp_path / "d.parquet", ROWS)
    ds = sources.parquet_source(path, **FIELDS)
    assert [ds[i] for i in range(len(ds))] == EXPECTED


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl") as e:
        sources.jsonl_source(missing, **FIELDS)
    assert "Set path" in str(e.value)
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        sources.parquet_source(tmp_path / "nope.parquet", **FIELDS)


@pytest.mark.parametrize("writer,make", [(_write_jsonl, "jsonl"), (_write_parquet, "parquet")])
def test_bad_field_names_the_field_and_the_config_key(tmp_path, writer, make):
    path = writer(tmp_path / f"d.{make}", ROWS)
    with pytest.raises(ValueError, match="'question'.*question_field") as e:
        sources.get_source(make, path=path, question_field="question", answer_field="a")
    assert "'q'" in str(e.value) and str(path) in str(e.value)
    with pytest.raises(ValueError, match="'lvl'.*difficulty_field"):
        sources.get_source(
            make, path=path, question_field="q", answer_field="a", difficulty_field="lvl"
        )


@pytest.mark.parametrize("writer,make", [(_write_jsonl, "jsonl"), (_write_parquet, "parquet")])
def test_solution_field_becomes_the_solution(tmp_path, writer, make):
    rows = [{**r, "sol": f"<think> {r['q']} </think> {r['a']}"} for r in ROWS]
    path = writer(tmp_path / f"d.{make}", rows)
    ds = sources.get_source(make, path=path, solution_field="sol", **FIELDS)
    assert [ds[i] for i in range(3)] == [
        {**e, "solution": r["sol"]} for e, r in zip(EXPECTED, rows, strict=True)
    ]
    for empty in (None, ""):  # no solution_field: no "solution" key, as before
        ds = sources.get_source(make, path=path, solution_field=empty, **FIELDS)
        assert "solution" not in ds[0]
    with pytest.raises(ValueError, match="'worked'.*solution_field"):
        sources.get_source(make, path=path, solution_field="worked", **FIELDS)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"d\.jsonl:2: not valid JSON"):
        sources.jsonl_source(path, **FIELDS)


def test_registry_errors():
    with pytest.raises(ValueError, match="valid kinds"):
        sources.get_source("csv", path="x")
    with pytest.raises(TypeError, match="unknown arguments.*'question_key'"):
        sources.get_source("jsonl", path="x", question_key="q")


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets installed")
def test_hf_disk_without_datasets_says_how_to_fix(tmp_path):
    with pytest.raises(ImportError, match="pip install datasets"):
        sources.hf_disk_source(tmp_path, **FIELDS)


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_hf_disk_source(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([{**r, "level": str(r["level"])} for r in ROWS])
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "hf"))
    src = sources.hf_disk_source(tmp_path / "hf", split="train", **FIELDS)
    assert [src[i] for i in range(len(src))] == EXPECTED
    with pytest.raises(ValueError, match="splits"):
        sources.hf_disk_source(tmp_path / "hf", split="test", **FIELDS)


class _FakeDataset:
    """Just the surface of `datasets.Dataset` that hf_disk_source uses."""

    def __init__(self, rows):
        self.rows = rows
        self.column_names = list(rows[0])

    def select_columns(self, columns):
        return _FakeDataset([{c: r[c] for c in columns} for r in self.rows])

    def to_list(self):
        return list(self.rows)


def test_hf_disk_source_with_a_stand_in_datasets_module(tmp_path, monkeypatch):
    fake = types.ModuleType("datasets")
    fake.DatasetDict = type("DatasetDict", (dict,), {})
    fake.load_from_disk = lambda path: fake.DatasetDict(train=_FakeDataset(ROWS))
    monkeypatch.setitem(sys.modules, "datasets", fake)
    src = sources.get_source("hf_disk", path=tmp_path, split="train", **FIELDS)
    assert [src[i] for i in range(len(src))] == EXPECTED
    with pytest.raises(ValueError, match=r"splits \['train'\]"):
        sources.hf_disk_source(tmp_path, split="test", **FIELDS)
    with pytest.raises(ValueError, match="'answer'.*answer_field"):
        sources.hf_disk_source(tmp_path, split="train", question_field="q")
    with pytest.raises(FileNotFoundError, match="save_to_disk"):
        sources.hf_disk_source(tmp_path / "missing", split="train", **FIELDS)
    src = sources.hf_disk_source(tmp_path, split="train", solution_field="a", **FIELDS)
    assert [src[i]["solution"] for i in range(3)] == [r["a"] for r in ROWS]


# --- TFDS: a tiny dataset prepared locally in array_record format (no tensorflow needed). ---


class LenrlTinyQa(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    # No code directory (no checksums file); also skips tfds' lookup that needs the
    # uninstalled `importlib_resources` package.
    code_path = None

    def _info(self):
        features = {"q": tfds.features.Text(), "a": tfds.features.Text(), "level": np.int32}
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(4), "test": self._generate_examples(2)}

    def _generate_examples(self, n):
        for i in range(n):
            yield i, {"q": f"question {i}", "a": str(10 * i), "level": i}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    LenrlTinyQa(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    return data_dir


def test_tfds_source(tfds_dir):
    ds = sources.get_source(
        "tfds",
        name="lenrl_tiny_qa",
        data_dir=tfds_dir,
        split="train",
        question_field="q",
        answer_field="a",
        difficulty_field="level",
    )
    records = [ds[i] for i in range(len(ds))]
    assert len(records) == 4 and [r["index"] for r in records] == [0, 1, 2, 3]
    assert sorted((r["prompt"], r["answer"], r["difficulty"]) for r in records) == [
        (f"question {i}", str(10 * i), i) for i in range(4)
    ]
    assert all(isinstance(r["prompt"], str) for r in records)


def test_tfds_solution_field(tfds_dir):
    ds = sources.tfds_source(
        "lenrl_tiny_qa",
        data_dir=tfds_dir,
        question_field="q",
        answer_field="a",
        solution_field="a",
    )
    assert all(ds[i]["solution"] == ds[i]["answer"] for i in range(len(ds)))
    with pytest.raises(ValueError, match="'sol'.*solution_field"):
        sources.tfds_source(
            "lenrl_tiny_qa",
            data_dir=tfds_dir,
            question_field="q",
            answer_field="a",
            solution_field="sol",
        )


def test_tfds_errors(tfds_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sources.tfds_source("lenrl_tiny_qa", data_dir=tmp_path / "missing")
    with pytest.raises(ValueError, match="array_record"):
        sources.tfds_source(
            "lenrl_tiny_qa",
            data_dir=tfds_dir,
            split="validation",
            question_field="q",
            answer_field="a",
        )
    with pytest.raises(ValueError, match="array_record"):
        sources.tfds_source("lenrl_no_such_dataset", data_dir=tfds_dir)
    with pytest.raises(ValueError, match="'question'.*question_field"):
        sources.tfds_source("lenrl_tiny_qa", data_dir=tfds_dir, answer_field="a")
