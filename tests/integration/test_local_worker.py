"""The stream worker against moto's real Streams API and SQS, invoking a zip through
the local runtime: bisect, retries, timeouts and the on-failure destination end to end.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from ddbsearch.local.runtime import FunctionConfig, LocalFunction
from ddbsearch.local.worker import MappingConfig, StreamWorker, sqs_destination
from tests.integration.local_helpers import build_zip, seen_batches

pytestmark = pytest.mark.integration


def _table(ddb: Any) -> tuple[str, str]:
    name = f"W{uuid.uuid4().hex[:10]}"
    desc = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    return name, desc["LatestStreamArn"]


def _put(ddb: Any, table: str, key: int, mode: str | None = None) -> None:
    item: dict[str, Any] = {"id": {"N": str(key)}}
    if mode:
        item["mode"] = {"S": mode}
    ddb.put_item(TableName=table, Item=item)


@pytest.fixture
def clients(moto_endpoint: str) -> dict[str, Any]:
    kw = {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}
    return {s: boto3.client(s, **kw) for s in ("dynamodb", "dynamodbstreams", "sqs")}  # type: ignore[call-overload]


def _messages(sqs: Any, url: str) -> list[dict[str, Any]]:
    out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in out.get("Messages", [])]


def test_poison_record_is_bisected_out_and_sent_to_the_on_failure_queue(
    clients: dict[str, Any], tmp_path: Path
) -> None:
    ddb, sqs = clients["dynamodb"], clients["sqs"]
    table, stream_arn = _table(ddb)
    queue = sqs.create_queue(QueueName=f"{table}-failures")["QueueUrl"]
    for key, mode in ((1, None), (2, None), (3, "raise"), (4, None)):
        _put(ddb, table, key, mode)
    seen = tmp_path / "seen.jsonl"
    function = LocalFunction(
        FunctionConfig(build_zip(tmp_path / "f.zip"), environment={"SEEN_FILE": str(seen)}),
        work_dir=tmp_path / "fn",
    )
    config = MappingConfig(
        stream_arn=stream_arn,
        maximum_retry_attempts=1,
        bisect_batch_on_function_error=True,
        retry_backoff_seconds=0.0,
        retry_backoff_max_seconds=0.0,
    )
    worker = StreamWorker(
        config, clients["dynamodbstreams"], function, on_failure=sqs_destination(sqs, queue)
    )
    with function:
        worker.run_until_idle(timeout=20)

    assert seen_batches(seen) == [[1, 2, 3, 4], [1, 2], [3, 4], [3], [3], [4]]
    (message,) = _messages(sqs, queue)
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["functionArn"] == function.config.arn
    assert message["responseContext"]["functionError"] == "Unhandled"
    info = message["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    assert info["streamArn"] == stream_arn
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    records = clients["dynamodbstreams"].get_records(
        ShardIterator=clients["dynamodbstreams"].get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"],
        Limit=1,
    )["Records"]
    assert records[0]["dynamodb"]["Keys"] == {"id": {"N": "3"}}  # the position names the poison


def test_a_timed_out_invocation_is_a_function_error_and_gets_a_fresh_runtime(
    clients: dict[str, Any], tmp_path: Path
) -> None:
    ddb, sqs = clients["dynamodb"], clients["sqs"]
    table, stream_arn = _table(ddb)
    queue = sqs.create_queue(QueueName=f"{table}-failures")["QueueUrl"]
    _put(ddb, table, 1, "sleep")
    _put(ddb, table, 2, "report")
    seen = tmp_path / "seen.jsonl"
    function = LocalFunction(
        FunctionConfig(
            build_zip(tmp_path / "f.zip"),
            timeout_seconds=0.5,
            environment={"SEEN_FILE": str(seen)},
        ),
        work_dir=tmp_path / "fn",
    )
    config = MappingConfig(
        stream_arn=stream_arn,
        batch_size=1,
        maximum_retry_attempts=0,
        retry_backoff_seconds=0.0,
        retry_backoff_max_seconds=0.0,
    )
    worker = StreamWorker(
        config, clients["dynamodbstreams"], function, on_failure=sqs_destination(sqs, queue)
    )
    with function:
        worker.run_until_idle(timeout=20)

    assert seen_batches(seen) == [[1], [2]]
    assert function.cold_starts == 2  # the timed-out environment was thrown away
    messages = sorted(
        _messages(sqs, queue), key=lambda m: m["DDBStreamBatchInfo"]["startSequenceNumber"]
    )
    assert [m["responseContext"].get("functionError") for m in messages] == ["Unhandled", None]
    assert worker.stats.function_errors == 1
    assert worker.stats.partial_failures == 1
