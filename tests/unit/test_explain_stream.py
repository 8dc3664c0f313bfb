"""How `explain` reads the stream and places the item's last change (no emulator).

The stream is the in-memory one the worker's unit tests use; the AWS cases (no
checkpoints) are where the answer rests on the iterator age or is not determined.
"""

from __future__ import annotations

import time
from typing import Any

from ddbsearch.ops import deadletters
from ddbsearch.ops.explain import ItemChange, StreamPosition, _classify, _scan_stream
from ddbsearch.ops.index_reader import IndexDoc
from ddbsearch.ops.model import Model
from tests.unit.test_worker import STREAM_ARN, FakeStreams

MODEL = Model(("id",))


def _scan(streams: Any, doc_id: str = "7", **kw: Any) -> Any:
    options: dict[str, Any] = {
        "deadline": time.monotonic() + 30,
        "max_records": 1000,
        "empty_pages_at_tail": 1,
    }
    options.update(kw)
    return _scan_stream(streams, STREAM_ARN, model=MODEL, doc_id=doc_id, **options)


def test_the_scan_keeps_the_keys_last_change_across_shards() -> None:
    streams = FakeStreams()
    streams.add_shard("parent")
    streams.put("parent", 7, note="a")
    streams.put("parent", 8)
    streams.close("parent")
    streams.add_shard("child", parent="parent")
    last = streams.put("child", 7, note="b")
    streams.put("child", 9)
    scan = _scan(streams)
    assert scan.complete
    assert (scan.records, scan.shards) == (4, 2)
    assert scan.last is not None
    assert scan.last[0] == "child"
    assert scan.last[1]["dynamodb"]["SequenceNumber"] == last
    assert _scan(streams, doc_id="5").last is None


class EmptyPagesFirst(FakeStreams):
    """Answers the first GetRecords of each iterator with an empty page (as AWS may)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def get_records(self, **kw: Any) -> dict[str, Any]:
        if kw["ShardIterator"] not in self.seen:
            self.seen.add(kw["ShardIterator"])
            return {"Records": [], "NextShardIterator": kw["ShardIterator"]}
        return super().get_records(**kw)


def test_empty_pages_mid_shard_do_not_end_the_scan_on_aws() -> None:
    streams = EmptyPagesFirst()
    streams.add_shard("open")
    streams.put("open", 7)
    assert _scan(streams, empty_pages_at_tail=1).last is None  # taken as the tail at once
    streams.seen.clear()
    found = _scan(streams, empty_pages_at_tail=3)
    assert found.last is not None
    assert found.complete


def test_the_budget_bounds_the_scan() -> None:
    streams = FakeStreams()
    streams.add_shard("open")
    for key in range(5):
        streams.put("open", key)
    by_records = _scan(streams, max_records=2)
    assert not by_records.complete
    assert by_records.records == 2
    assert not _scan(streams, deadline=time.monotonic() - 1).complete


def _position(event: str = "MODIFY", age: float = 1.0) -> StreamPosition:
    change = ItemChange("105", "shard-1", event, "2026-12-04T16:00:00+00:00", age, 3)
    return StreamPosition("not_determined", "", change=change, checkpoint_source="AWS")


def _place(pos: StreamPosition, **kw: Any) -> StreamPosition:
    options: dict[str, Any] = {
        "doc_id": "7",
        "doc": IndexDoc("7", 3, {"id": 7}),
        "doc_matches": False,
        "letters": None,
        "checkpoints": None,
        "lag_seconds": None,
    }
    options.update(kw)
    _classify(pos, **options)
    return pos


def test_placing_the_change() -> None:
    # Local: the checkpoints decide, whatever the versions say.
    assert _place(_position(), checkpoints={"shard-1": {"sequence": "104"}}).state == "not_read"
    assert _place(_position(), checkpoints={}).state == "not_read"
    read = {"shard-1": {"sequence": "105"}}
    assert _place(_position(), checkpoints=read).state == "read_not_indexed"
    assert _place(_position(), checkpoints=read, doc_matches=True).state == "indexed"
    ended = {"shard-1": {"ended": True}}
    assert _place(_position("REMOVE"), checkpoints=ended, doc=None).state == "indexed"
    assert _place(_position("REMOVE"), checkpoints=ended).state == "read_not_indexed"
    # AWS: no checkpoints.
    assert _place(_position(), doc_matches=True).state == "indexed"
    assert _place(_position(age=5), lag_seconds=30.0).state == "not_read"
    unknown = _place(_position(age=600), lag_seconds=30.0)
    assert unknown.state == "not_determined"
    assert "not determined" in unknown.summary
    # The dead-letter queue: a handler message for this change, or a given-up range.
    letters = deadletters.DeadLetters(items=[{"documentId": "7", "sequenceNumber": "105"}])
    assert _place(_position(), letters=letters).state == "dead_lettered"
    other = deadletters.DeadLetters(items=[{"documentId": "8", "sequenceNumber": "105"}])
    assert _place(_position(), letters=other).state == "not_determined"
    ranges = deadletters.DeadLetters(batch_ranges=[("shard-1", "100", "110")])
    assert _place(_position(), letters=ranges).state == "discarded"
    elsewhere = deadletters.DeadLetters(batch_ranges=[("shard-2", "100", "110")])
    assert _place(_position(), letters=elsewhere).state == "not_determined"
