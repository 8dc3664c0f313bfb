"""Which write wins: the one-second limit of the version scheme, tested as stated.

Stream versions come from ``ApproximateCreationDateTime``, which DynamoDB Streams
gives in whole seconds (docs/reliability.md, "Versions"):

- a change made in a later second always wins, whatever arrives after it: a replay
  of the older record, or the older write itself arriving late from an invocation
  that was killed while its request was in flight;
- two changes to one key in the same second carry equal versions: in-order
  delivery ends with the newer one; a replay of the older one alone overwrites the
  newer document, until the stream delivers the newer record again.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from ddbsearch.core.documents import document_id, to_document
from ddbsearch.local.worker import lambda_record

pytestmark = pytest.mark.integration

KEY = {"pk": {"S": "k|1"}, "sk": {"N": "1"}}


def _item(text: str) -> dict[str, Any]:
    return {**KEY, "text": {"S": text}, "n": {"N": str(len(text))}}


def _stream_records(p: Any) -> list[dict[str, Any]]:
    """Every record of the table's stream, in order, in Lambda's event shape."""
    shards = p.streams.describe_stream(StreamArn=p.stream_arn)["StreamDescription"]["Shards"]
    out: list[dict[str, Any]] = []
    for shard in shards:
        it = p.streams.get_shard_iterator(
            StreamArn=p.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            page = p.streams.get_records(ShardIterator=it, Limit=1000)
            out.extend(lambda_record(r, p.stream_arn) for r in page["Records"])
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    return out


def _doc(p: Any) -> tuple[dict[str, Any] | None, int | None]:
    got = p.search.request("GET", f"/{p.index}/_doc/{_quoted(document_id(KEY))}").json()
    if not got.get("found"):
        return None, None
    return got["_source"], got["_version"]


def _quoted(doc_id: str) -> str:
    from urllib.parse import quote

    return quote(doc_id, safe="")


def _next_second() -> None:
    target = int(time.time()) + 1
    while time.time() < target:
        time.sleep(target - time.time() + 0.001)


def _two_changes_in_one_second(p: Any, first: str, second: str) -> None:
    """Write two versions of KEY within one wall-clock second (retrying at a boundary)."""
    for _ in range(5):
        _next_second()
        started = int(time.time())
        p.ddb.put_item(TableName=p.table, Item=_item(first))
        p.ddb.put_item(TableName=p.table, Item=_item(second))
        if int(time.time()) == started:
            return
        p.ddb.delete_item(TableName=p.table, Key=KEY)
    raise AssertionError("could not make two writes within one second")


def test_an_older_record_replayed_alone_never_overwrites_a_change_a_second_later(
    pipeline: Any,
) -> None:
    p = pipeline()
    p.ddb.put_item(TableName=p.table, Item=_item("older"))
    _next_second()
    p.ddb.put_item(TableName=p.table, Item=_item("newer, a second later"))
    p.drain()
    assert _doc(p)[0] == to_document(_item("newer, a second later"))

    older, newer = _stream_records(p)
    t_old = older["dynamodb"]["ApproximateCreationDateTime"]
    assert newer["dynamodb"]["ApproximateCreationDateTime"] >= t_old + 1
    # The older record alone, out of order (a redelivery, a replay from a checkpoint).
    result = p.function.invoke({"Records": [older]})
    assert result.payload == {"batchItemFailures": []}
    assert _doc(p)[0] == to_document(_item("newer, a second later"))
    assert '"stale":1' in p.function_log()
    p.stats["tests"]["versions"] += 1


def test_a_late_write_from_a_killed_invocation_never_overwrites_a_later_change(
    pipeline: Any,
) -> None:
    p = pipeline()
    p.ddb.put_item(TableName=p.table, Item=_item("older"))
    killer, release = p.kill_function_during_next_bulk(release_after=None)
    p.drain()  # killed while its request is held in flight, retried: "older" indexed
    killer.join(timeout=30)
    assert p.worker.stats.function_errors == 1
    assert _doc(p)[0] == to_document(_item("older"))

    _next_second()
    p.ddb.put_item(TableName=p.table, Item=_item("newer"))
    p.drain()
    assert _doc(p)[0] == to_document(_item("newer"))
    landed = p.gate.landed
    release.set()  # the dead invocation's write lands now, after the newer one
    p.wait_for_landed(landed + 1)
    assert _doc(p)[0] == to_document(_item("newer"))
    p.stats["tests"]["versions"] += 1


def test_two_changes_in_one_second_in_order_end_with_the_newer(pipeline: Any) -> None:
    p = pipeline(batch_size=1)  # one record per invocation: two separate bulk writes
    _two_changes_in_one_second(p, "first", "second")
    p.drain()
    records = [r for r in _stream_records(p) if r["eventName"] != "REMOVE"][-2:]
    a, b = (r["dynamodb"]["ApproximateCreationDateTime"] for r in records)
    assert a == b, "same second, same version"
    doc, version = _doc(p)
    assert doc == to_document(_item("second"))
    assert version is not None
    assert version % 2 == 1  # a stream version
    p.stats["tests"]["versions"] += 1


def test_a_replay_of_the_older_change_in_the_same_second_overwrites_until_redelivery(
    pipeline: Any,
) -> None:
    """The stated limit: equal versions, so the older record replayed alone wins for a
    while; replays go forward, and the stream's newer record puts the newer one back."""
    p = pipeline()
    _two_changes_in_one_second(p, "first", "second")
    p.drain()
    assert _doc(p)[0] == to_document(_item("second"))

    records = [r for r in _stream_records(p) if r["eventName"] != "REMOVE"][-2:]
    older = records[0]
    assert p.function.invoke({"Records": [older]}).payload == {"batchItemFailures": []}
    assert _doc(p)[0] == to_document(_item("first")), "the documented one-second limit"

    p.replay()  # the stream delivers the newer record again
    assert _doc(p)[0] == to_document(_item("second"))
    assert p.diff().ok
    p.stats["tests"]["versions"] += 1


def test_a_late_write_of_the_older_change_in_the_same_second_wins_until_the_next_change(
    pipeline: Any,
) -> None:
    """The stated limit for late writes: an invocation killed while its request was in
    flight can have that request land after the retry has indexed a newer change of the
    same second; equal versions, so the older document stays until the key changes again
    (or the stream is replayed)."""
    p = pipeline(batch_size=1)
    _two_changes_in_one_second(p, "first", "second")
    killer, release = p.kill_function_during_next_bulk(release_after=None)
    p.drain()  # "first" killed in flight, retried; then "second"
    killer.join(timeout=30)
    assert p.worker.stats.function_errors == 1
    assert _doc(p)[0] == to_document(_item("second"))
    landed = p.gate.landed
    release.set()
    p.wait_for_landed(landed + 1)
    assert _doc(p)[0] == to_document(_item("first")), "the documented late-write limit"

    _next_second()
    p.ddb.put_item(TableName=p.table, Item=_item("third"))
    p.drain()
    assert _doc(p)[0] == to_document(_item("third"))
    assert p.diff().ok
    p.stats["tests"]["versions"] += 1
