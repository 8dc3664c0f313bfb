"""`ddbsearch redrive` re-indexes what the table holds now, never an old image."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.bulk import BulkIndexer
from ddbsearch.core.documents import Action, document_id, stream_version, to_document
from ddbsearch.core.transport import SearchTransport
from ddbsearch.local.state import record_target
from ddbsearch.targets import Target

pytestmark = pytest.mark.integration


def _dead_letter(keys: dict[str, Any], reason: str) -> str:
    # The shape ddbsearch.core.stream sends.
    return json.dumps(
        {
            "source": "ddbsearch",
            "reason": reason,
            "eventID": "e1",
            "eventName": "MODIFY",
            "sequenceNumber": "100",
            "keys": keys,
            "documentId": document_id(keys),
            "version": 1,
        }
    )


def _keys(user: int, tx: str) -> dict[str, Any]:
    return {"userId": {"N": str(user)}, "transactionId": {"S": tx}}


def test_redrive_reindexes_current_state_and_keeps_what_still_fails(
    ops_target: Callable[..., Target], moto_endpoint: str, osmem_base: str
) -> None:
    target = ops_target()
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint)
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    dlq = sqs.create_queue(QueueName=f"dlq-{target.table}")["QueueUrl"]
    target = target.with_overrides(dlq_url=dlq)
    record_target(target)

    fixed = {**_keys(1, "a"), "shortDescription": {"S": "fixed since"}}
    broken = {**_keys(2, "b"), "a.b": {"S": "still dotted"}}
    newer = {**_keys(4, "d"), "shortDescription": {"S": "table value"}}
    for item in (fixed, broken, newer):
        ddb.put_item(TableName=target.table, Item=item)
    transport = SearchTransport(osmem_base, sigv4=False)
    bulk = BulkIndexer(transport, target.index, refresh=True)
    # 3|c was deleted from the table but the index still has it; 4|d is indexed
    # at a far newer version than any redrive can carry.
    bulk.run(
        [
            Action("index", document_id(_keys(3, "c")), 2, {"stale": True}, _keys(3, "c")),
            Action(
                "index",
                document_id(_keys(4, "d")),
                stream_version(4_000_000_000),
                {"from": "stream"},
                _keys(4, "d"),
            ),
        ],
        deadline=float("inf"),
    )
    for keys in (_keys(1, "a"), _keys(2, "b"), _keys(3, "c"), _keys(4, "d")):
        sqs.send_message(QueueUrl=dlq, MessageBody=_dead_letter(keys, "mapper_parsing_exception"))
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"DDBStreamBatchInfo": {"shardId": "s"}}))

    dry = CliRunner().invoke(app, ["redrive", "--dry-run", "--json"])
    assert dry.exit_code == 10, dry.output
    assert json.loads(dry.stdout)["received"] == 5
    assert _visible(sqs, dlq) == 5, "a dry run leaves every message in the queue"

    result = CliRunner().invoke(app, ["redrive", "--json"])
    assert result.exit_code == 10, result.output  # PARTIAL: one item still fails
    report = json.loads(result.stdout)
    assert report == {
        "received": 5,
        "indexed": 1,
        "deleted": 1,
        "stale": 1,
        "batch_records": 1,
        "still_failing": [
            {"documentId": "b|2", "reason": "attribute name 'a.b' contains a dot"},
        ],
    }
    assert "1 dead-lettered item(s) still cannot be indexed" in result.stderr

    transport.request("POST", f"/{target.index}/_refresh")
    hits = transport.json("POST", f"/{target.index}/_search", {"size": 10}).json()["hits"]["hits"]
    assert {h["_id"]: h["_source"] for h in hits} == {
        "a|1": to_document(fixed),
        "d|4": {"from": "stream"},  # newer than anything redrive could write
    }
    # The broken item's message and the stream batch record stay, visible again at once.
    assert _visible(sqs, dlq) == 2


def _visible(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_redrive_without_a_queue_is_a_clear_error(ops_target: Callable[..., Target]) -> None:
    ops_target()
    result = CliRunner().invoke(app, ["redrive"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: this target has no dead-letter queue to redrive"


def test_redrive_writes_every_live_generation_with_its_own_model(
    ops_target: Callable[..., Target], moto_endpoint: str, osmem_base: str
) -> None:
    # During a reindex the stream writes the serving and the building generation,
    # each with its own ids and document model; a redrive must do the same, or the
    # new generation misses the item (or gets it under the wrong id) at the swap.
    from ddbsearch.core.generations import GenerationConfig
    from ddbsearch.core.lifecycle import create_generation

    target = ops_target(index=False)
    transport = SearchTransport(osmem_base, sigv4=False)
    serving = GenerationConfig.create(key_schema=("userId", "transactionId"), exclude=("secret",))
    building = GenerationConfig.create()  # key-name ids, every attribute
    first = create_generation(transport, target.index, 1, serving, serving=True)
    second = create_generation(transport, target.index, 2, building, building=True)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint)
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    dlq = sqs.create_queue(QueueName=f"dlq-{target.table}")["QueueUrl"]
    record_target(target.with_overrides(dlq_url=dlq))
    item = {**_keys(1, "a"), "secret": {"S": "kept out of one generation"}}
    ddb.put_item(TableName=target.table, Item=item)
    sqs.send_message(QueueUrl=dlq, MessageBody=_dead_letter(_keys(1, "a"), "es_rejected"))

    result = CliRunner().invoke(app, ["redrive", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["indexed"] == 1

    def docs(name: str) -> dict[str, Any]:
        transport.request("POST", f"/{name}/_refresh")
        found = transport.json("POST", f"/{name}/_search", {"size": 10}).json()["hits"]["hits"]
        return {h["_id"]: h["_source"] for h in found}

    assert docs(first.name) == {"1|a": to_document(item, serving, ("userId", "transactionId"))}
    assert "secret" not in docs(first.name)["1|a"]
    assert docs(second.name) == {"a|1": to_document(item, building)}
    assert _visible(sqs, dlq) == 0
    for name in (first.name, second.name):
        transport.request("DELETE", f"/{name}")
