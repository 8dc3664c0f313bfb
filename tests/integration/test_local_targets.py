"""Two defects of the untyped, shared local target (issue #10), through the CLI as a user
meets them: adopting an existing table, and two tables on one local stack."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.documents import document_id
from ddbsearch.core.generations import GenerationConfig
from ddbsearch.ops.search import search
from ddbsearch.targets import load_local_target, resolve_target

pytestmark = pytest.mark.integration

runner = CliRunner()


@pytest.fixture
def local_stack() -> Iterator[None]:
    yield
    down = runner.invoke(app, ["destroy", "--local"])
    assert down.exit_code == 0, down.stderr


def _deploy(*args: str) -> None:
    result = runner.invoke(app, ["deploy", "--local", *args])
    assert result.exit_code == 0, result.stderr


def test_deploy_local_adopts_an_existing_table_with_its_own_keys(local_stack: None) -> None:
    _deploy("--table", "First", "--hash-key", "pk:S")
    first = load_local_target("First")
    assert first is not None
    assert first.key_names == ("pk",)
    ddb = boto3.client("dynamodb", endpoint_url=first.aws_endpoint, region_name=first.region)
    ddb.create_table(
        TableName="Existing",
        KeySchema=[
            {"AttributeName": "id", "KeyType": "HASH"},
            {"AttributeName": "at", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "at", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )

    # README: an existing table is adopted; the key options are for a table being created.
    _deploy("--table", "Existing")
    adopted = load_local_target("Existing")
    assert adopted is not None
    assert adopted.key_names == ("id", "at")
    assert adopted.stream_arn is not None  # the stream was turned on
    put = runner.invoke(app, ["put", "--item", '{"id": "a", "at": 1, "note": "hello"}'])
    assert put.exit_code == 0, put.stderr
    found = search(adopted, "hello", wait=30)
    # A fresh index numbers ids in key-schema order (partition key, then sort key).
    assert [h.id for h in found.hits] == ["a|1"]
    keys = {"id": {"S": "a"}, "at": {"N": "1"}}
    assert document_id(keys, GenerationConfig.create(key_schema=("id", "at"))) == "a|1"
    # Keys that contradict the existing table are still refused, not silently ignored.
    wrong = runner.invoke(app, ["deploy", "--local", "--table", "Existing", "--hash-key", "x:S"])
    assert wrong.exit_code == 2
    assert "different key schema" in wrong.stderr


def test_every_part_of_a_local_target_belongs_to_the_table_it_names(local_stack: None) -> None:
    _deploy("--table", "First", "--index", "first", "--hash-key", "pk:S")
    _deploy("--table", "Second", "--index", "second", "--hash-key", "pk:S")
    first = resolve_target(local=True, table="First", index="first")
    second = resolve_target(local=True, table="Second")
    assert first.table == "First"
    assert first.index == "first"
    assert second.index == "second"
    assert first.dlq_url != second.dlq_url
    assert first.function_name == "ddbsearch-First"
    assert first.event_source_mapping_uuid == "local-First"

    # A record waits in the first table's dead-letter queue, none in the second's.
    sqs = boto3.client("sqs", endpoint_url=first.aws_endpoint, region_name=first.region)
    body = {"DDBStreamBatchInfo": {"shardId": "shard-1", "streamArn": first.stream_arn}}
    sqs.send_message(QueueUrl=first.dlq_url, MessageBody=json.dumps(body))

    status = runner.invoke(
        app, ["status", "--local", "--table", "First", "--index", "first", "--json"]
    )
    assert status.exit_code == 9, status.stdout
    reasons = " | ".join(json.loads(status.stdout)["reasons"])
    assert "dead-letter queue: 1 record(s) could not be indexed" in reasons
    healthy = runner.invoke(app, ["status", "--local", "--table", "Second", "--json"])
    assert "dead-letter queue" not in " | ".join(json.loads(healthy.stdout)["reasons"])

    dry = runner.invoke(
        app, ["redrive", "--local", "--table", "First", "--index", "first", "--dry-run", "--json"]
    )
    assert json.loads(dry.stdout)["received"] == 1, dry.stderr
