"""Event source mapping semantics of the local stream worker, against a fake stream.

The fake implements DescribeStream (paginated), GetShardIterator and GetRecords
over in-memory shards; the function is a Python callable behind the same
``invoke`` interface as the local runtime, so each test states one rule.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from ddbsearch.local.runtime import InvokeResult
from ddbsearch.local.worker import (
    RECORD_AGE_EXCEEDED,
    RETRY_EXHAUSTED,
    CheckpointStore,
    MappingConfig,
    StreamWorker,
)

STREAM_ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/T/stream/2026-01-01T00:00:00.000"
T0 = 1_800_000_000.0


class FakeStreams:
    """In-memory DynamoDB Streams: shards with records, closable, with parents."""

    def __init__(self, page_size: int = 2) -> None:
        self.shards: dict[str, dict[str, Any]] = {}
        self.page_size = page_size
        self._seq = itertools.count(100)

    def add_shard(self, shard_id: str, parent: str | None = None) -> None:
        self.shards[shard_id] = {"parent": parent, "records": [], "closed": False}

    def put(self, shard_id: str, key: int, *, created: float = T0, **attrs: Any) -> str:
        seq = str(next(self._seq))
        image = {"id": {"N": str(key)}, **{k: {"S": str(v)} for k, v in attrs.items()}}
        self.shards[shard_id]["records"].append(
            {
                "eventID": uuid.uuid4().hex,
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": created,
                    "Keys": {"id": {"N": str(key)}},
                    "NewImage": image,
                    "SequenceNumber": seq,
                    "SizeBytes": 20,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }
        )
        return seq

    def close(self, shard_id: str) -> None:
        self.shards[shard_id]["closed"] = True

    def describe_stream(self, **kw: Any) -> dict[str, Any]:
        ids = list(self.shards)
        start = ids.index(kw["ExclusiveStartShardId"]) + 1 if "ExclusiveStartShardId" in kw else 0
        page = ids[start : start + self.page_size]
        shards = []
        for sid in page:
            shard = self.shards[sid]
            entry: dict[str, Any] = {"ShardId": sid, "SequenceNumberRange": {}}
            if shard["parent"]:
                entry["ParentShardId"] = shard["parent"]
            shards.append(entry)
        description: dict[str, Any] = {"StreamArn": kw["StreamArn"], "Shards": shards}
        if start + self.page_size < len(ids):
            description["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": description}

    def get_shard_iterator(self, **kw: Any) -> dict[str, Any]:
        records = self.shards[kw["ShardId"]]["records"]
        if kw["ShardIteratorType"] == "TRIM_HORIZON":
            pos = 0
        else:
            after = int(kw["SequenceNumber"])
            pos = sum(1 for r in records if int(r["dynamodb"]["SequenceNumber"]) <= after)
        return {"ShardIterator": f"{kw['ShardId']}|{pos}"}

    def get_records(self, **kw: Any) -> dict[str, Any]:
        sid, pos_text = kw["ShardIterator"].split("|")
        pos = int(pos_text)
        shard = self.shards[sid]
        batch = shard["records"][pos : pos + kw.get("Limit", 1000)]
        nxt = pos + len(batch)
        response: dict[str, Any] = {"Records": json.loads(json.dumps(batch))}
        if not (shard["closed"] and nxt >= len(shard["records"])):
            response["NextShardIterator"] = f"{sid}|{nxt}"
        return response


Rule = Callable[[list[dict[str, Any]]], Any]


class FakeFunction:
    """Invokes ``rule(records)``: its return value is the payload; raising is a function error."""

    def __init__(self, rule: Rule | None = None) -> None:
        self.rule = rule or (lambda records: {"batchItemFailures": []})
        self.batches: list[list[int]] = []

    def invoke(self, event: Mapping[str, Any]) -> InvokeResult:
        records = event["Records"]
        self.batches.append([int(r["dynamodb"]["Keys"]["id"]["N"]) for r in records])
        try:
            payload = self.rule(records)
        except Exception as exc:
            return InvokeResult(
                str(uuid.uuid4()),
                0.0,
                error={"errorType": type(exc).__name__, "errorMessage": str(exc)},
            )
        return InvokeResult(str(uuid.uuid4()), 0.0, payload=payload)


def keys(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["dynamodb"]["Keys"]["id"]["N"]) for r in records]


def fail_items(*bad: int) -> Rule:
    """Report the records with these keys in batchItemFailures."""

    def rule(records: list[dict[str, Any]]) -> Any:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                for r in records
                if keys([r])[0] in bad
            ]
        }

    return rule


def raise_on(*bad: int) -> Rule:
    """Raise (a function error) whenever the batch holds one of these keys."""

    def rule(records: list[dict[str, Any]]) -> Any:
        if set(keys(records)) & set(bad):
            raise RuntimeError("poison record")
        return {"batchItemFailures": []}

    return rule


def make(
    streams: FakeStreams,
    function: FakeFunction,
    *,
    clock: Callable[[], float] = lambda: T0 + 1,
    store: CheckpointStore | None = None,
    **settings: Any,
) -> tuple[StreamWorker, list[dict[str, Any]]]:
    failures: list[dict[str, Any]] = []
    settings.setdefault("batch_size", 10)
    config = MappingConfig(
        stream_arn=STREAM_ARN,
        poll_interval_seconds=0.001,
        retry_backoff_seconds=0.0,
        retry_backoff_max_seconds=0.0,
        **settings,
    )
    worker = StreamWorker(
        config, streams, function, checkpoints=store, on_failure=failures.append, clock=clock
    )
    return worker, failures


@pytest.fixture
def one_shard() -> FakeStreams:
    streams = FakeStreams()
    streams.add_shard("shard-1")
    return streams


def test_batches_are_delivered_in_order_up_to_the_batch_size(one_shard: FakeStreams) -> None:
    seqs = [one_shard.put("shard-1", k) for k in range(1, 6)]
    function = FakeFunction()
    worker, failures = make(one_shard, function, batch_size=2)

    worker.run_until_idle(timeout=5)

    assert function.batches == [[1, 2], [3, 4], [5]]
    assert worker.checkpoints.sequence("shard-1") == seqs[-1]
    assert failures == []


def test_event_has_lambda_shape(one_shard: FakeStreams) -> None:
    one_shard.put("shard-1", 1)
    seen: list[dict[str, Any]] = []
    worker, _ = make(one_shard, FakeFunction(seen.extend))

    worker.run_until_idle(timeout=5)

    (record,) = seen
    assert record["eventSourceARN"] == STREAM_ARN
    assert record["eventSource"] == "aws:dynamodb"
    # Epoch seconds rounded down, as DynamoDB Streams documents it.
    assert record["dynamodb"]["ApproximateCreationDateTime"] == int(T0)


def test_partial_failure_checkpoints_before_the_first_reported_record(
    one_shard: FakeStreams,
) -> None:
    seqs = [one_shard.put("shard-1", k) for k in range(1, 6)]
    attempts = {"n": 0}

    def rule(records: list[dict[str, Any]]) -> Any:
        attempts["n"] += 1
        # First call: report 3 and 5 as failed; Lambda retries from the lowest (3).
        return fail_items(3, 5)(records) if attempts["n"] == 1 else {"batchItemFailures": []}

    function = FakeFunction(rule)
    worker, failures = make(one_shard, function, maximum_retry_attempts=5)

    worker.run_until_idle(timeout=5)

    assert function.batches == [[1, 2, 3, 4, 5], [3, 4, 5]]
    assert worker.stats.partial_failures == 1
    assert worker.checkpoints.sequence("shard-1") == seqs[-1]
    assert failures == []


def test_retries_exhausted_sends_the_failing_suffix_to_the_on_failure_destination(
    one_shard: FakeStreams,
) -> None:
    seqs = [one_shard.put("shard-1", k) for k in range(1, 4)]
    function = FakeFunction(fail_items(2))
    worker, failures = make(one_shard, function, maximum_retry_attempts=2)

    worker.run_until_idle(timeout=5)

    # First invoke saw all three; each of the 2 retries saw only the suffix [2, 3].
    assert function.batches == [[1, 2, 3], [2, 3], [2, 3]]
    (failure,) = failures
    assert failure["requestContext"]["condition"] == RETRY_EXHAUSTED
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestContext"]["functionArn"].endswith(":function:ddbsearch-indexer")
    assert failure["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert failure["version"] == "1.0"
    info = failure["DDBStreamBatchInfo"]
    assert info == {
        "shardId": "shard-1",
        "startSequenceNumber": seqs[1],
        "endSequenceNumber": seqs[2],
        "approximateArrivalOfFirstRecord": "2027-01-15T08:00:00Z",
        "approximateArrivalOfLastRecord": "2027-01-15T08:00:00Z",
        "batchSize": 2,
        "streamArn": STREAM_ARN,
    }
    # The discarded records are behind us: the shard is not blocked.
    assert worker.checkpoints.sequence("shard-1") == seqs[-1]
    assert worker.stats.records_discarded == 2


def test_bisect_isolates_the_poison_record_without_consuming_retries(
    one_shard: FakeStreams,
) -> None:
    seqs = [one_shard.put("shard-1", k) for k in range(1, 5)]
    function = FakeFunction(raise_on(3))
    worker, failures = make(
        one_shard, function, maximum_retry_attempts=1, bisect_batch_on_function_error=True
    )

    worker.run_until_idle(timeout=5)

    # Splits are free; the single poison record gets 1 retry, then is discarded.
    assert function.batches == [[1, 2, 3, 4], [1, 2], [3, 4], [3], [3], [4]]
    (failure,) = failures
    assert failure["requestContext"]["condition"] == RETRY_EXHAUSTED
    assert failure["requestContext"]["approximateInvokeCount"] == 4
    assert failure["responseContext"]["functionError"] == "Unhandled"
    info = failure["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        seqs[2],
        seqs[2],
        1,
    )
    assert worker.stats.records_succeeded == 3
    assert worker.checkpoints.sequence("shard-1") == seqs[-1]


def test_without_bisect_a_function_error_fails_the_whole_batch(one_shard: FakeStreams) -> None:
    seqs = [one_shard.put("shard-1", k) for k in range(1, 4)]
    function = FakeFunction(raise_on(2))
    worker, failures = make(
        one_shard, function, maximum_retry_attempts=1, bisect_batch_on_function_error=False
    )

    worker.run_until_idle(timeout=5)

    assert function.batches == [[1, 2, 3], [1, 2, 3]]
    (failure,) = failures
    info = failure["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        seqs[0],
        seqs[2],
        3,
    )
    assert failure["requestContext"]["approximateInvokeCount"] == 2


def test_bisect_at_the_reported_sequence_number_with_partial_failures(
    one_shard: FakeStreams,
) -> None:
    [one_shard.put("shard-1", k) for k in range(1, 5)]
    function = FakeFunction(fail_items(3))
    worker, failures = make(
        one_shard, function, maximum_retry_attempts=0, bisect_batch_on_function_error=True
    )

    worker.run_until_idle(timeout=5)

    # A partial response is not a function error: no halving, the remainder is the retry.
    assert function.batches == [[1, 2, 3, 4]]
    (failure,) = failures
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 2
    assert "functionError" not in failure["responseContext"]


@pytest.mark.parametrize(
    "payload",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"wrongKey": "1"}]},
        {"batchItemFailures": [{"itemIdentifier": "999999"}]},
    ],
)
def test_malformed_item_failures_fail_the_whole_batch(one_shard: FakeStreams, payload: Any) -> None:
    [one_shard.put("shard-1", k) for k in range(1, 3)]
    function = FakeFunction(lambda records: payload)
    worker, failures = make(
        one_shard, function, maximum_retry_attempts=0, bisect_batch_on_function_error=False
    )

    worker.run_until_idle(timeout=5)

    assert function.batches == [[1, 2]]
    assert failures[0]["DDBStreamBatchInfo"]["batchSize"] == 2


@pytest.mark.parametrize(
    "payload", [None, {}, {"batchItemFailures": None}, {"batchItemFailures": []}, "ok"]
)
def test_empty_or_null_responses_are_success(one_shard: FakeStreams, payload: Any) -> None:
    one_shard.put("shard-1", 1)
    function = FakeFunction(lambda records: payload)
    worker, failures = make(one_shard, function, maximum_retry_attempts=0)

    worker.run_until_idle(timeout=5)

    assert function.batches == [[1]]
    assert failures == []


def test_records_older_than_the_maximum_age_are_discarded_without_invoking(
    one_shard: FakeStreams,
) -> None:
    old = [one_shard.put("shard-1", k, created=T0) for k in (1, 2)]
    one_shard.put("shard-1", 3, created=T0 + 100)
    function = FakeFunction()
    worker, failures = make(
        one_shard, function, clock=lambda: T0 + 130, maximum_record_age_seconds=60
    )

    worker.run_until_idle(timeout=5)

    assert function.batches == [[3]]
    (failure,) = failures
    assert failure["requestContext"]["condition"] == RECORD_AGE_EXCEEDED
    assert failure["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in failure  # never invoked
    info = failure["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (old[0], old[1])


def test_records_that_age_out_while_retrying_are_discarded(one_shard: FakeStreams) -> None:
    one_shard.put("shard-1", 1, created=T0)
    now = {"t": T0 + 1}
    function = FakeFunction(raise_on(1))
    worker, failures = make(
        one_shard,
        function,
        clock=lambda: now["t"],
        maximum_record_age_seconds=60,
        maximum_retry_attempts=-1,
    )
    worker.step()
    worker.step()
    now["t"] = T0 + 61

    worker.run_until_idle(timeout=5)

    assert function.batches == [[1], [1]]
    (failure,) = failures
    assert failure["requestContext"]["condition"] == RECORD_AGE_EXCEEDED
    assert failure["responseContext"]["functionError"] == "Unhandled"


def test_a_failing_destination_keeps_the_records(one_shard: FakeStreams) -> None:
    one_shard.put("shard-1", 1)
    function = FakeFunction(raise_on(1))
    sent: list[dict[str, Any]] = []
    up = {"ok": False}

    def destination(record: dict[str, Any]) -> None:
        if not up["ok"]:
            raise ConnectionError("queue unreachable")
        sent.append(record)

    config = MappingConfig(
        stream_arn=STREAM_ARN,
        maximum_retry_attempts=0,
        retry_backoff_seconds=0.0,
        retry_backoff_max_seconds=0.0,
    )
    worker = StreamWorker(config, one_shard, function, on_failure=destination, clock=lambda: T0)
    for _ in range(3):
        worker.step()
    assert sent == []
    assert worker.checkpoints.sequence("shard-1") is None
    up["ok"] = True

    worker.run_until_idle(timeout=5)

    assert len(sent) == 1
    assert worker.checkpoints.sequence("shard-1") is not None


def test_batches_are_cut_to_stay_under_the_payload_limit(one_shard: FakeStreams) -> None:
    for k in range(1, 7):
        one_shard.put("shard-1", k, text="x" * 400)
    function = FakeFunction()
    worker, _ = make(one_shard, function, batch_size=100, payload_limit_bytes=2000)

    worker.run_until_idle(timeout=5)

    assert [k for batch in function.batches for k in batch] == [1, 2, 3, 4, 5, 6]
    assert len(function.batches) > 1
    assert all(len(b) <= 3 for b in function.batches)


def test_child_shards_are_read_only_after_their_parent_ends() -> None:
    streams = FakeStreams(page_size=1)  # forces DescribeStream pagination
    streams.add_shard("parent")
    streams.add_shard("child", parent="parent")
    for k in (1, 2):
        streams.put("parent", k)
    streams.put("child", 3)
    function = FakeFunction()
    worker, _ = make(streams, function, shard_refresh_seconds=0.0)

    worker.run_until_idle(timeout=5)
    assert function.batches == [[1, 2]]  # parent still open: the child waits

    streams.close("parent")
    worker.run_until_idle(timeout=5)
    assert function.batches == [[1, 2], [3]]
    assert worker.checkpoints.ended("parent")

    # A new rollover: the closed child gets a child of its own.
    streams.add_shard("grandchild", parent="child")
    streams.put("grandchild", 4)
    streams.put("child", 5)
    streams.close("child")
    worker.run_until_idle(timeout=5)
    assert function.batches == [[1, 2], [3], [5], [4]]


def test_a_restarted_worker_resumes_from_its_checkpoint(
    one_shard: FakeStreams, tmp_path: Path
) -> None:
    path = tmp_path / "checkpoints.json"
    for k in (1, 2):
        one_shard.put("shard-1", k)
    first = FakeFunction()
    make(one_shard, first, store=CheckpointStore(path))[0].run_until_idle(timeout=5)
    one_shard.put("shard-1", 3)

    second = FakeFunction()
    make(one_shard, second, store=CheckpointStore(path))[0].run_until_idle(timeout=5)

    assert first.batches == [[1, 2]]
    assert second.batches == [[3]]


def test_batching_window_waits_to_fill_a_batch(one_shard: FakeStreams) -> None:
    one_shard.put("shard-1", 1)
    function = FakeFunction()
    worker, _ = make(one_shard, function, batch_size=3, batching_window_seconds=30)
    worker.step()
    worker.step()
    assert function.batches == []  # window open, batch not full
    one_shard.put("shard-1", 2)
    one_shard.put("shard-1", 3)

    worker.run_until_idle(timeout=5)

    assert function.batches == [[1, 2, 3]]


def test_worker_thread_starts_and_stops(one_shard: FakeStreams) -> None:
    one_shard.put("shard-1", 1)
    function = FakeFunction()
    worker, _ = make(one_shard, function)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while not function.batches and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    assert function.batches == [[1]]
    assert not worker.running


def test_caught_up_since_tells_when_every_earlier_write_was_delivered(
    one_shard: FakeStreams,
) -> None:
    one_shard.put("shard-1", 1)
    function = FakeFunction()
    worker, _ = make(one_shard, function)
    assert worker.caught_up_since() is None  # nothing read yet
    before = time.time()

    worker.run_until_idle(timeout=5)

    since = worker.caught_up_since()
    assert since is not None
    assert since >= before
    one_shard.put("shard-1", 2)
    deadline = time.monotonic() + 5
    while function.batches != [[1], [2]] and time.monotonic() < deadline:
        worker.step()
    assert function.batches == [[1], [2]]
    assert worker.caught_up_since() is None  # 2 delivered, but no empty read since


def _shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value types, not values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


def test_on_failure_record_has_the_shape_aws_sends(
    one_shard: FakeStreams, load_event: Callable[[str], dict[str, Any]]
) -> None:
    one_shard.put("shard-1", 1)
    worker, failures = make(one_shard, FakeFunction(raise_on(1)), maximum_retry_attempts=0)

    worker.run_until_idle(timeout=5)

    assert _shape(failures[0]) == _shape(load_event("esm_on_failure_ddb"))


def test_records_from_get_records_get_the_lambda_event_shape(
    load_event: Callable[[str], dict[str, Any]],
) -> None:
    from datetime import datetime, timezone

    from ddbsearch.local.worker import lambda_record

    reference = load_event("insert_modify_remove")["Records"][0]
    # What boto3 returns from GetRecords: a datetime and decoded binary values.
    raw = json.loads(json.dumps(reference))
    del raw["eventSourceARN"]
    raw["dynamodb"]["ApproximateCreationDateTime"] = datetime(
        2026, 11, 27, 1, 2, 3, 900000, tzinfo=timezone.utc
    )
    raw["dynamodb"]["NewImage"]["blob"] = {"B": b"\x00\xff"}
    raw["dynamodb"]["NewImage"]["blobs"] = {"BS": [b"\x01"]}

    record = lambda_record(raw, STREAM_ARN)

    assert _shape(record) == _shape({**reference, "eventSourceARN": STREAM_ARN}) | {
        "dynamodb": _shape(reference["dynamodb"])
        | {
            "NewImage": _shape(reference["dynamodb"]["NewImage"])
            | {"blob": {"B": "str"}, "blobs": {"BS": "list"}}
        }
    }
    assert record["eventSourceARN"] == STREAM_ARN
    assert (
        record["dynamodb"]["ApproximateCreationDateTime"] == 1795741323
    )  # whole seconds, rounded down
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": "AP8="}
    assert record["dynamodb"]["NewImage"]["blobs"] == {"BS": ["AQ=="]}
