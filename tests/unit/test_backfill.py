"""Backfill planning, read budget and checkpoints (no emulator needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddbsearch.errors import InputError
from ddbsearch.ops.backfill import (
    Checkpoint,
    checkpoint_path,
    default_segments,
    read_budget,
)
from ddbsearch.ops.keys import decode_keys, encode_keys
from ddbsearch.tables import KeyAttribute, TableInfo
from ddbsearch.targets import Target

KEYS = (KeyAttribute("userId", "N", "HASH"),)


def table(size_gb: float = 0, items: int = 0, rcu: int = 0) -> TableInfo:
    return TableInfo(
        "T",
        KEYS,
        item_count=items,
        size_bytes=int(size_gb * 1024**3),
        read_capacity=rcu,
        billing_mode="PROVISIONED" if rcu else "PAY_PER_REQUEST",
    )


@pytest.mark.parametrize(
    ("size_gb", "items", "expected"),
    [
        (0, 0, 1),  # empty table: one segment
        (0.001, 500, 1),
        (30, 10_000, 15),  # the Developer Guide's example: 30 GB / 2 GB
        (0.5, 1_000_000, 10),  # many small items: one worker per 100k items
        (5000, 10, 64),  # capped
    ],
)
def test_default_segments(size_gb: float, items: int, expected: int) -> None:
    assert default_segments(table(size_gb, items)) == expected


def test_read_budget() -> None:
    assert read_budget(table(rcu=100), max_rcu=None, rcu_fraction=None) is None
    assert read_budget(table(rcu=100), max_rcu=None, rcu_fraction=0.25) == 25
    assert read_budget(table(), max_rcu=40, rcu_fraction=None) == 40
    with pytest.raises(InputError, match="on-demand"):
        read_budget(table(), max_rcu=None, rcu_fraction=0.5)
    with pytest.raises(InputError, match="not both"):
        read_budget(table(rcu=10), max_rcu=5, rcu_fraction=0.5)


def test_binary_and_number_keys_survive_a_checkpoint_round_trip() -> None:
    key = {"pk": {"B": b"\x00\xffkey"}, "sk": {"N": "12.5"}, "s": {"S": "x"}}
    assert decode_keys(encode_keys(key)) == key


def test_checkpoint_saves_and_loads_segment_progress(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    cp = Checkpoint(path, 3)
    cp.advance(0, {"userId": {"N": "5"}}, 10)
    cp.advance(1, None, 7)
    loaded = Checkpoint.load(path)
    assert loaded is not None
    assert loaded.total_segments == 3
    assert loaded.start_key(0) == {"userId": {"N": "5"}}
    assert not loaded.done(0)
    assert loaded.done(1)
    assert loaded.start_key(2) is None
    assert loaded.scanned == 17
    assert loaded.finished_segments == 1
    path.write_text("{not json")
    assert Checkpoint.load(path) is None


def test_checkpoints_are_keyed_by_target_table_and_index() -> None:
    base = Target("local", "local", "us-east-1", "T", "t", "http://127.0.0.1:1")
    assert checkpoint_path(base) == checkpoint_path(base)
    assert checkpoint_path(base) != checkpoint_path(base.with_overrides(index="other"))
    assert checkpoint_path(base) != checkpoint_path(base.with_overrides(table="T2"))
    assert checkpoint_path(base).name.startswith("T-t-")
