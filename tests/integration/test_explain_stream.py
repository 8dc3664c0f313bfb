"""`explain` places the item's last change in the stream: not yet read by the indexer,
read and indexed, read but not in the index, dead-lettered, given up by the mapping.

The stream is moto's real stream; the indexer's position is the local stream worker's
report (its per-shard checkpoints), written here as the worker writes it, so each
position can be set exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.documents import action_from_item, document_id, stream_version
from ddbsearch.core.transport import SearchTransport
from ddbsearch.local import state
from ddbsearch.ops.explain import explain
from ddbsearch.targets import Target

pytestmark = pytest.mark.integration

KEYS = ["userId", "transactionId"]


def _item(user: int, tx: str, text: str) -> dict[str, Any]:
    return {"userId": {"N": str(user)}, "transactionId": {"S": tx}, "note": {"S": text}}


class _Stack:
    """The table's stream, a simulated indexer position, and direct index writes."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.ddb = boto3.client(
            "dynamodb", endpoint_url=target.aws_endpoint, region_name="us-east-1"
        )
        self.streams = boto3.client(
            "dynamodbstreams", endpoint_url=target.aws_endpoint, region_name="us-east-1"
        )
        self.search = SearchTransport(target.search_endpoint, sigv4=False)
        self.arn = self.ddb.describe_table(TableName=target.table)["Table"]["LatestStreamArn"]
        self.root = Path(target.root) if target.root else state.default_root()

    def records(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            it = self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while it:
                page = self.streams.get_records(ShardIterator=it, Limit=1000)
                if not page["Records"]:
                    break
                out.extend((shard["ShardId"], r) for r in page["Records"])
                it = page.get("NextShardIterator")
        return out

    def put(self, item: dict[str, Any]) -> tuple[str, str, int]:
        """Write the item; return its change's (shard, sequence, stream version)."""
        self.ddb.put_item(TableName=self.target.table, Item=item)
        shard, record = self.records()[-1]
        created = record["dynamodb"]["ApproximateCreationDateTime"].timestamp()
        return shard, record["dynamodb"]["SequenceNumber"], stream_version(int(created))

    def index(self, item: dict[str, Any], version: int) -> None:
        action = action_from_item(item, KEYS, version)
        assert action.document is not None
        resp = self.search.json(
            "PUT",
            f"/{self.target.index}/_doc/{quote(action.doc_id, safe='')}?version={version}"
            "&version_type=external_gte&refresh=true",
            action.document,
        )
        assert resp.status < 300, resp.body

    def checkpoint(self, shard: str, sequence: str) -> None:
        state.write_mapping_status(
            self.root,
            self.target.table,
            state.MappingStatus(
                state="Enabled",
                updated_at=time.time(),
                stream_arn=self.arn,
                checkpoints={shard: {"sequence": sequence}},
            ),
        )


def test_explain_places_the_items_last_change_relative_to_the_indexer(
    ops_target: Callable[..., Target],
) -> None:
    s = _Stack(ops_target(keys=(("userId", "N"), ("transactionId", "S"))))
    key = ["userId=1", "transactionId=a"]

    def run(target: Target | None = None, **kw: Any) -> Any:
        return explain(target or s.target, key, settle_seconds=0, **kw)

    # Read and indexed.
    shard, first, version = s.put(_item(1, "a", "v1"))
    s.index(_item(1, "a", "v1"), version)
    s.checkpoint(shard, first)
    ok = run()
    assert ok.verdict == "searchable"
    assert ok.stream is not None
    assert ok.stream.state == "indexed"
    assert ok.stream.change is not None
    assert (ok.stream.change.sequence, ok.stream.change.event) == (first, "INSERT")
    assert ok.stream.change.version == version
    assert ok.stream.checkpoint == first
    assert ok.stream.complete

    # A newer change the indexer has not read: in flight, although the indexer is not
    # "behind" by its general lag (the change is under a second old).
    _, second, _ = s.put(_item(1, "a", "v2"))
    waiting = run()
    assert waiting.stream is not None
    assert waiting.stream.state == "not_read"
    assert waiting.stream.change is not None
    assert waiting.stream.change.sequence == second
    assert waiting.stream.change.event == "MODIFY"
    assert waiting.stream.checkpoint == first
    assert waiting.state == "in_flight"
    assert waiting.verdict.startswith("not yet indexed: its last change (at ")
    assert "is not yet read by the indexer" in waiting.verdict

    # The indexer moved past it but the index does not hold it: stale, not in flight.
    s.checkpoint(shard, second)
    lost = run()
    assert lost.stream is not None
    assert lost.stream.state == "read_not_indexed"
    assert lost.state == "stale"
    assert lost.differing_fields == ["note"]

    # Dead-lettered by the handler (the message names this change's sequence number),
    # then given up by the mapping (an on-failure record whose range holds it).
    sqs = boto3.client("sqs", endpoint_url=s.target.aws_endpoint, region_name="us-east-1")
    doc_id = document_id({"userId": {"N": "1"}, "transactionId": {"S": "a"}})
    url = sqs.create_queue(QueueName=f"dlq-{s.target.index}")["QueueUrl"]
    letter = {
        "source": "ddbsearch",
        "documentId": doc_id,
        "sequenceNumber": second,
        "eventName": "MODIFY",
        "reason": "mapper_parsing_exception: field 'note' (mapped as long) cannot take it",
    }
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(letter))
    lettered = run(replace(s.target, dlq_url=url))
    assert lettered.stream is not None
    assert lettered.stream.state == "dead_lettered"
    assert lettered.state == "dead_lettered"
    sqs.purge_queue(QueueUrl=url)
    batch = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
        "version": "1.0",
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": first,
            "endSequenceNumber": second,
            "batchSize": 2,
            "streamArn": s.arn,
        },
    }
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(batch))
    given_up = run(replace(s.target, dlq_url=url))
    assert given_up.stream is not None
    assert given_up.stream.state == "discarded"
    assert given_up.state == "dead_lettered"
    assert given_up.verdict.endswith("`ddbsearch verify --repair`")
    sqs.delete_queue(QueueUrl=url)

    # A deletion the indexer has not read: the document is not an orphan yet.
    _, third, _ = s.put(_item(2, "b", "other"))
    s.ddb.delete_item(
        TableName=s.target.table, Key={"userId": {"N": "1"}, "transactionId": {"S": "a"}}
    )
    removing = run()
    assert removing.stream is not None
    assert removing.stream.state == "not_read"
    assert removing.stream.change is not None
    assert removing.stream.change.event == "REMOVE"
    assert removing.state == "in_flight"
    assert removing.verdict.startswith("not yet removed from the index")
    s.checkpoint(shard, s.records()[-1][1]["dynamodb"]["SequenceNumber"])
    assert run().state == "orphan"

    # No change to the key in the stream; and a budget too small to tell.
    absent = explain(s.target, ["userId=7", "transactionId=none"], settle_seconds=0)
    assert absent.stream is not None
    assert absent.stream.state == "not_in_stream"
    assert absent.stream.records_scanned == len(s.records())
    short = run(stream_budget_seconds=1e-9)
    assert short.stream is not None
    assert not short.stream.determined
    assert short.stream.summary.startswith("not determined")
    assert run(stream_budget_seconds=0).stream is None
    assert third


def test_explain_cli_prints_the_stream_position(ops_target: Callable[..., Target]) -> None:
    s = _Stack(ops_target(keys=(("userId", "N"), ("transactionId", "S"))))
    shard, first, version = s.put(_item(3, "c", "hello"))
    s.index(_item(3, "c", "hello"), version)
    s.checkpoint(shard, first)
    result = CliRunner().invoke(app, ["explain", "userId=3", "transactionId=c", "--json"])
    assert result.exit_code == 0, result.output
    stream = json.loads(result.stdout)["stream"]
    assert stream["state"] == "indexed"
    assert stream["determined"] is True
    assert stream["change"]["sequence"] == first
    assert stream["change"]["event"] == "INSERT"
    assert stream["indexer_checkpoint"] == first
    assert stream["checkpoint_source"] == "the local stream worker's checkpoints"
    assert "hello" not in result.stdout  # no item values without --show-values
    text = CliRunner().invoke(app, ["explain", "userId=3", "transactionId=c"])
    assert text.exit_code == 0, text.output
    assert f"sequence {first}" in text.output
    assert "is read and indexed" in text.output
