"""Length-bucketed, token-budgeted batches (lenrl.data.bucketing): budgets, determinism, epochs,
shards and exact resumption from the iterator state."""

import json

import numpy as np
import pytest

from lenrl.data.bucketing import bucket_size, make_bucketed_iterator, plan_window
from lenrl.data.sources import synthetic_source

BOUNDS = (8, 16, 32, 64)


def _records(n, seed=0):
    rng = np.random.RandomState(seed)
    # Skewed lengths: mostly short, a few long.
    lengths = np.where(rng.rand(n) < 0.8, rng.randint(1, 16, n), rng.randint(16, 65, n))
    return [{"text": "x" * int(k), "index": i} for i, k in enumerate(lengths)]


def _iterator(src, **kw):
    args = dict(
        length_fn=lambda r: len(r["text"]), boundaries=BOUNDS, token_budget=128, seed=3, window=40
    )
    return make_bucketed_iterator(src, **(args | kw))


def _take(it, n):
    return [next(it) for _ in range(n)]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_batches_respect_bucket_and_budget():
    batches = list(_iterator(_records(300), num_epochs=1))
    for b in batches:
        lo = ([0, *BOUNDS])[BOUNDS.index(b["bucket_len"])]
        assert np.all((b["length"] > lo) & (b["length"] <= b["bucket_len"]))
        assert len(b["index"]) * b["bucket_len"] <= 128
        assert b["bucket_size"] == 128 // b["bucket_len"]
        assert 1 <= len(b["index"]) <= b["bucket_size"]
        np.testing.assert_array_equal(b["length"], [len(t) for t in b["text"]])
    # Short examples come many to a batch, long ones few.
    sizes = {
        b["bucket_len"]: max(len(x["index"]) for x in batches if x["bucket_len"] == b["bucket_len"])
        for b in batches
    }
    assert sizes[8] == 16 and sizes[64] == 2


def test_one_epoch_covers_every_example_once():
    src = _records(300)
    seen = sum((b["index"].tolist() for b in _iterator(src, num_epochs=1)), [])
    assert sorted(seen) == list(range(300))
    two = sum((b["index"].tolist() for b in _iterator(src, num_epochs=2)), [])
    assert sorted(two) == sorted(list(range(300)) * 2)


def test_deterministic_for_a_seed():
    src = _records(200)
    a, b = _take(_iterator(src), 30), _take(_iterator(src), 30)
    _same(a, b)
    c = _take(_iterator(src, seed=4), 30)
    assert [x["index"].tolist() for x in a] != [x["index"].tolist() for x in c]


@pytest.mark.parametrize("stop", [0, 1, 7, 13, 29])
def test_resumes_exactly_from_the_saved_state(stop):
    src = _records(200)
    it = _iterator(src)
    _take(it, stop)
    state = json.loads(json.dumps(it.get_state()))  # a small JSON-able dict
    expected = _take(it, 25)  # crosses window boundaries
    resumed = _iterator(src)
    resumed.set_state(state)
    _same(_take(resumed, 25), expected)


def test_shards_split_every_global_batch_in_lockstep():
    src = _records(300)
    whole = list(_iterator(src, num_epochs=1, shard_count=2, shard_index=0))
    other = list(_iterator(src, num_epochs=1, shard_count=2, shard_index=1))
    assert len(whole) == len(other) > 0
    for a, b in zip(whole, other, strict=True):
        assert len(a["index"]) == len(b["index"]) >= 1
        assert a["bucket_len"] == b["bucket_len"]
        assert a["bucket_size"] == bucket_size(a["bucket_len"], 128, 2) // 2
        assert not set(a["index"].tolist()) & set(b["index"].tolist())


def test_multiple_of_gives_the_same_global_batches_for_any_shard_count():
    src = _records(300)
    kw = dict(num_epochs=1, multiple_of=4, token_budget=256)
    one = list(_iterator(src, **kw))
    shards = [list(_iterator(src, shard_count=2, shard_index=i, **kw)) for i in range(2)]
    assert len(one) == len(shards[0]) == len(shards[1]) > 0
    for whole, a, b in zip(one, *shards, strict=True):
        assert len(whole["index"]) % 4 == 0
        assert whole["bucket_size"] == 256 // whole["bucket_len"] // 4 * 4
        assert a["bucket_size"] == b["bucket_size"] == whole["bucket_size"] // 2
        np.testing.assert_array_equal(np.concatenate([a["index"], b["index"]]), whole["index"])
    with pytest.raises(ValueError, match="multiple of shard_count=2"):
        _iterator(src, shard_count=2, multiple_of=3)


def test_plan_window_against_a_reference():
    lengths = [3, 20, 9, 5, 60, 16, 2, 8, 33, 15]
    plan = plan_window(lengths, BOUNDS, 64, 1, key=(0, 0))
    # Reference: per bucket, members in order, chunks of budget // bound.
    ref = []
    for b, bound in enumerate(BOUNDS):
        lo = ([0, *BOUNDS])[b]
        members = [i for i, n in enumerate(lengths) if lo < n <= bound]
        size = 64 // bound
        ref += [(b, members[j : j + size]) for j in range(0, len(members), size)]
    assert sorted(plan) == sorted(ref)
    assert plan == plan_window(lengths, BOUNDS, 64, 1, key=(0, 0))


def test_map_fn_runs_before_length_and_shows_in_batches():
    src = synthetic_source(num_examples=40)
    it = _iterator(
        src,
        map_fn=lambda r: {"ids": list(range(len(r["prompt"]) % 50 + 1)), "index": r["index"]},
        length_fn=lambda r: len(r["ids"]),
        num_epochs=1,
    )
    batches = list(it)
    assert sum(len(b["index"]) for b in batches) == 40
    for b in batches:
        np.testing.assert_array_equal(b["length"], [len(x) for x in b["ids"]])


def test_errors():
    with pytest.raises(ValueError, match="longer than the largest bucket 64"):
        next(_iterator([{"text": "x" * 65, "index": 0}]))
    with pytest.raises(ValueError, match="token_budget=60 cannot hold"):
        _iterator(_records(10), token_budget=60)
    with pytest.raises(ValueError, match="boundaries must be increasing"):
        _iterator(_records(10), boundaries=(16, 8))
