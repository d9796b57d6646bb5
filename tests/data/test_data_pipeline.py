"""Prompt pipeline (lenrl.data.pipeline): determinism, sharding, epochs, resumable state."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenrl.data.pipeline import collate, make_prompt_iterator
from lenrl.data.sources import synthetic_source


def _records(n):
    return [
        {"prompt": f"p{i}", "answer": str(i), "difficulty": i % 3, "index": i} for i in range(n)
    ]


def _indices(iterator):
    return [b["index"].tolist() for b in iterator]


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def _same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_batch_structure():
    it = make_prompt_iterator(synthetic_source(num_examples=50), batch_size=4, seed=0)
    batch = next(it)
    assert set(batch) == {"prompt", "answer", "difficulty", "index", "solution"}
    assert isinstance(batch["prompt"], list) and len(batch["prompt"]) == 4
    assert all(isinstance(p, str) for p in batch["prompt"] + batch["answer"])
    for key in ("difficulty", "index"):
        assert batch[key].dtype == np.int32 and batch[key].shape == (4,)


def test_collate_keeps_non_integers_as_lists():
    batch = collate([{"a": 1, "b": "x", "c": True}, {"a": 2, "b": "y", "c": False}])
    assert (
        batch["a"].tolist() == [1, 2] and batch["b"] == ["x", "y"] and batch["c"] == [True, False]
    )


def test_deterministic_for_a_seed():
    src = synthetic_source(num_examples=64, seed=1)
    a = _take(make_prompt_iterator(src, batch_size=8, seed=5), 12)
    b = _take(make_prompt_iterator(src, batch_size=8, seed=5), 12)
    c = _take(make_prompt_iterator(src, batch_size=8, seed=6), 12)
    _same_batches(a, b)
    assert [x["index"].tolist() for x in a] != [x["index"].tolist() for x in c]


def test_epochs_cover_the_data_and_reshuffle():
    src = _records(24)
    batches = _indices(make_prompt_iterator(src, batch_size=6, seed=0, num_epochs=2))
    epoch1, epoch2 = sum(batches[:4], []), sum(batches[4:], [])
    assert len(batches) == 8 and sorted(epoch1) == sorted(epoch2) == list(range(24))
    assert epoch1 != epoch2  # each epoch has its own order
    ordered = _indices(make_prompt_iterator(src, batch_size=6, seed=0, shuffle=False, num_epochs=1))
    assert sum(ordered, []) == list(range(24))


def test_two_shards_partition_the_data():
    src = _records(64)
    shards = [
        sum(
            _indices(
                make_prompt_iterator(
                    src, batch_size=4, seed=3, shard_index=i, shard_count=2, num_epochs=1
                )
            ),
            [],
        )
        for i in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 32
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(64))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 60),
    shard_count=st.integers(1, 4),
    batch_size=st.integers(1, 5),
    num_epochs=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_shards_are_disjoint_equal_and_drop_little(n, shard_count, batch_size, num_epochs, seed):
    src = _records(n)
    per_shard = []
    for i in range(shard_count):
        it = make_prompt_iterator(
            src,
            batch_size=batch_size,
            seed=seed,
            shard_index=i,
            shard_count=shard_count,
            num_epochs=num_epochs,
        )
        batches = _indices(it)
        assert all(len(b) == batch_size for b in batches)
        per_shard.append(sum(batches, []))
    assert len({len(s) for s in per_shard}) == 1  # lockstep: same number of batches
    seen = sum(per_shard, [])
    assert n * num_epochs - len(seen) < shard_count * batch_size
    counts = np.bincount(seen, minlength=n)
    assert counts.max() <= num_epochs  # no example twice within the epochs


@pytest.mark.parametrize("num_epochs", [None, 2])
def test_shard_batches_side_by_side_are_the_unsharded_batches(num_epochs):
    # A multi-process step (batch k of shards 0..n-1, concatenated) is batch k of one process
    # drawing n * b: same examples, same order; so a run's data does not depend on its hosts.
    src, n, b = _records(30), 3, 2

    def first(it, k=12):  # up to k batches (a finite pipeline may end before)
        return [x["index"].tolist() for _, x in zip(range(k), it, strict=False)]

    one = first(make_prompt_iterator(src, batch_size=n * b, seed=4, num_epochs=num_epochs))
    shards = [
        first(
            make_prompt_iterator(
                src, batch_size=b, seed=4, shard_index=i, shard_count=n, num_epochs=num_epochs
            )
        )
        for i in range(n)
    ]
    assert all(len(s) == len(one) for s in shards) and len(one) == (10 if num_epochs else 12)
    assert [sum((s[k] for s in shards), []) for k in range(len(one))] == one


def test_partial_last_batch_when_not_dropping():
    it = make_prompt_iterator(
        _records(10), batch_size=4, seed=0, num_epochs=1, drop_remainder=False
    )
    assert [len(b["prompt"]) for b in it] == [4, 4, 2]


@pytest.mark.parametrize("num_threads", [0, 2])
@pytest.mark.parametrize("num_epochs", [None, 3])
def test_state_round_trip_resumes_exactly(num_threads, num_epochs):
    src = synthetic_source(num_examples=40, seed=2)
    kwargs = dict(
        batch_size=6,
        seed=9,
        shard_index=1,
        shard_count=2,
        num_epochs=num_epochs,
        num_threads=num_threads,
    )
    it = make_prompt_iterator(src, **kwargs)
    _take(it, 4)
    state = json.loads(json.dumps(it.get_state()))  # must survive a JSON checkpoint
    expected = _take(it, 5)  # crosses an epoch boundary (20 examples / shard / epoch)
    resumed = make_prompt_iterator(src, **kwargs)
    resumed.set_state(state)
    _same_batches(_take(resumed, 5), expected)


def test_argument_and_source_errors():
    src = _records(8)
    with pytest.raises(ValueError, match="shard_index"):
        make_prompt_iterator(src, batch_size=2, seed=0, shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="batch_size"):
        make_prompt_iterator(src, batch_size=0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        make_prompt_iterator(src, batch_size=2, seed=-1)
    with pytest.raises(ValueError, match="num_epochs"):
        make_prompt_iterator(src, batch_size=2, seed=0, num_epochs=0)
    with pytest.raises(ValueError, match="empty"):
        make_prompt_iterator([], batch_size=2, seed=0)
    with pytest.raises(ValueError, match=r"missing \['answer'"):
        make_prompt_iterator([{"prompt": "x", "difficulty": 0, "index": 0}], batch_size=1, seed=0)
