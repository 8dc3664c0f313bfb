"""The on-disk partitioned comparison behind `verify` (no emulator)."""

from __future__ import annotations

import stat
import tracemalloc
from pathlib import Path

import pytest

from ddbsearch.ops.keys import decode_keys, encode_keys, keys_from_source
from ddbsearch.ops.partitions import (
    Candidate,
    PartitionStore,
    classify,
    fingerprint,
    invalid_marker,
    partition_count,
)


def test_fingerprint_keeps_types_apart_and_ignores_key_order() -> None:
    assert fingerprint({"a": 1, "b": "x"}) == fingerprint({"b": "x", "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": True})
    assert fingerprint({"a": 1}) != fingerprint({"a": "1"})
    assert fingerprint({"a": 1.5}) == fingerprint({"a": 1.5})


@pytest.mark.parametrize(
    ("table", "index", "kind"),
    [
        (("f1", None), ("f1", 10), None),
        (("f1", None), None, "missing"),
        (None, ("f1", 10), "orphan"),
        (("f1", None), ("f2", 10), "stale"),
        (("f1", 20), ("f1", 10), "older"),
        (("f1", 20), ("f2", 10), "older"),
        (("f1", 10), ("f1", 20), None),
        ((invalid_marker("attribute name 'a.b' contains a dot"), None), None, "unindexable"),
        ((invalid_marker("reserved field name '_id'"), None), ("f1", 5), "stale"),
    ],
)
def test_classify(
    table: tuple[str, int | None] | None, index: tuple[str, int | None] | None, kind: str | None
) -> None:
    found = classify("1|2", table, index)
    assert (found.kind if found else None) == kind


def test_compare_finds_exactly_the_differences(tmp_path: Path) -> None:
    with PartitionStore(tmp_path, 7, buffer_bytes=200) as store:  # tiny buffer: many flushes
        for i in range(500):
            store.add("table", f"id{i}", fingerprint({"n": i}), None, {"k": {"N": str(i)}})
        for i in range(500):
            if i % 50 == 0:
                continue  # missing
            content = {"n": -i} if i % 70 == 1 else {"n": i}  # stale
            store.add("index", f"id{i}", fingerprint(content), 10)
        store.add("index", "ghost", fingerprint({"n": 0}), 3)  # orphan
        store.finish()
        found = {c.doc_id: c for c in store.compare()}
    assert {i for i, c in found.items() if c.kind == "missing"} == {
        f"id{i}" for i in range(0, 500, 50)
    }
    assert {i for i, c in found.items() if c.kind == "stale"} == {
        f"id{i}" for i in range(500) if i % 70 == 1 and i % 50
    }
    assert {i for i, c in found.items() if c.kind == "orphan"} == {"ghost"}
    assert found["id50"].keys == {"k": {"N": "50"}}
    assert found["ghost"].keys is None
    assert found["ghost"].index_version == 3


def test_store_is_private_and_removed(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "verify", 4)
    store.add("table", "a", "f", None)
    store.finish()
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    files = list(store.directory.rglob("*.jsonl"))
    assert files
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    store.close()
    assert not store.directory.exists()


def test_candidate_round_trips() -> None:
    c = Candidate("stale", "a|b", "f1", "f2", None, 7, {"k": {"S": "a"}})
    assert Candidate.from_json(c.to_json()) == c


def test_partition_count_grows_with_the_table_within_bounds() -> None:
    assert partition_count(0) == 16
    assert partition_count(1_000_000) == 200
    assert partition_count(10**12) == 4096


def test_keys_round_trip_and_from_source() -> None:
    keys = {"pk": {"B": b"\x00\xff"}, "sk": {"N": "51"}}
    assert decode_keys(encode_keys(keys)) == keys
    types = {"userId": "N", "tx": "S"}
    assert keys_from_source({"userId": 3, "tx": "a", "x": 1}, types) == {
        "userId": {"N": "3"},
        "tx": {"S": "a"},
    }
    assert keys_from_source({"userId": 3}, types) is None
    assert keys_from_source({"userId": "3", "tx": "a"}, types) is None


def _peak_compare(tmp_path: Path, n: int) -> int:
    """Peak Python memory of writing n records per side and comparing them."""
    partitions = partition_count(n, per_partition=100)
    tracemalloc.start()
    try:
        with PartitionStore(tmp_path / str(n), partitions, buffer_bytes=32 * 1024) as store:
            for i in range(n):
                store.add("table", f"user{i}|tx{i}", fingerprint({"i": i}), None, {"u": {"N": "1"}})
                store.add("index", f"user{i}|tx{i}", fingerprint({"i": i + (i % 100 == 0)}), 2)
            store.finish()
            stale = sum(1 for _ in store.compare())
        assert stale == len(range(0, n, 100))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_is_flat_as_the_table_grows(tmp_path: Path) -> None:
    small = _peak_compare(tmp_path, 2_000)
    large = _peak_compare(tmp_path, 10_000)  # five times the records
    # Partitions grow with the table (here one per 100 records, to keep the test
    # small), so one partition and the write buffer bound the peak: a fivefold table
    # must not cost anything near five times the memory. (bench/verify.py measures the
    # whole run_verify call on real emulators.)
    assert large < small * 1.5, (small, large)
