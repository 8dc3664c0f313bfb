"""`ddbsearch status` against the real emulators: the local worker's report, and the AWS
path (Lambda event source mapping, CloudWatch metrics, SQS) served by moto."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.local import state
from ddbsearch.local.state import record_target
from ddbsearch.ops.backfill import run_backfill
from ddbsearch.targets import Target, save_aws_target, set_current
from ddbsearch.testing.data import generate_transactions

pytestmark = pytest.mark.integration

runner = CliRunner()


def client(target: Target, service: str) -> Any:
    return boto3.client(service, endpoint_url=target.aws_endpoint, region_name="us-east-1")


def record(target: Target) -> None:
    record_target(target)


def stream_arn(target: Target) -> str:
    table = client(target, "dynamodb").describe_table(TableName=target.table)["Table"]
    return str(table["LatestStreamArn"])


def write_worker_report(target: Target, **overrides: Any) -> None:
    """What the local stack's supervisor publishes for a running mapping."""
    report = {
        "state": "Enabled",
        "stream_arn": stream_arn(target),
        "idle": True,
        "updated_at": time.time(),
        "checkpoints": {},
        "stats": {"invocations": 3, "function_errors": 0, "last_error": None},
        **overrides,
    }
    state.write_mapping_status(
        state.default_root(), target.table, state.MappingStatus.from_json(report)
    )


@pytest.fixture
def healthy_local(ops_target: Callable[..., Target]) -> Target:
    target = ops_target((("userId", "N"), ("transactionId", "N")))
    queue = client(target, "sqs").create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")
    target = target.with_overrides(dlq_url=queue["QueueUrl"])
    record(target)
    items = list(generate_transactions(25, seed=2))
    client(target, "dynamodb").batch_write_item(
        RequestItems={target.table: [{"PutRequest": {"Item": i}} for i in items]}
    )
    run_backfill(target)
    from ddbsearch.core.transport import SearchTransport

    SearchTransport(target.search_endpoint, sigv4=False).request(
        "POST", f"/{target.index}/_refresh"
    )
    write_worker_report(target)
    return target


def test_healthy_local_pipeline(healthy_local: Target) -> None:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    assert report["reasons"] == []
    # what an application pointing boto3 / a search client at the local stack needs
    assert report["target"]["aws_endpoint"] == healthy_local.aws_endpoint
    assert report["target"]["search_endpoint"] == healthy_local.search_endpoint
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["stream"]["data"] == {"enabled": True, "view_type": "NEW_AND_OLD_IMAGES"}
    assert checks["counts"]["state"] == "ok"
    assert checks["counts"]["data"] == {"items": 25, "items_exact": True, "documents": 25}
    assert "25 items (exact)" in checks["counts"]["summary"]
    assert checks["dead-letter queue"]["summary"] == "empty"
    assert checks["event source mapping"]["state"] == "ok"
    assert checks["lag"]["summary"] == "caught up"  # the worker is idle

    human = runner.invoke(app, ["status"])
    assert human.exit_code == 0, human.stderr
    assert "healthy" in human.stderr
    assert "dead-letter queue" in human.stderr
    assert human.stdout == ""


def test_degraded_pipeline_lists_every_reason_and_exits_9(healthy_local: Target) -> None:
    target = healthy_local
    assert target.dlq_url is not None
    client(target, "sqs").send_message(QueueUrl=target.dlq_url, MessageBody="{}")
    # one more item than documents: a warning, not a failure (written before the
    # stream is disabled: moto cannot write to a table whose stream was turned off)
    client(target, "dynamodb").put_item(
        TableName=target.table, Item={"userId": {"N": "1"}, "transactionId": {"N": "1"}}
    )
    client(target, "dynamodb").update_table(
        TableName=target.table, StreamSpecification={"StreamEnabled": False}
    )
    # the worker stopped reporting 60 s ago
    path = state.status_path(state.default_root(), target.table)
    os.utime(path, (time.time() - 60, time.time() - 60))
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 9
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    reasons = " | ".join(report["reasons"])
    assert "stream: the table's stream is disabled" in reasons
    assert "dead-letter queue: 1 record(s) could not be indexed" in reasons
    assert "event source mapping: the local stream worker has not reported" in reasons
    counts = next(c for c in report["checks"] if c["name"] == "counts")
    assert counts["state"] == "warn"
    assert "26 items (exact), 25 documents" in counts["summary"]
    assert result.stderr.startswith("error: pipeline unhealthy: stream: the table's stream")
    assert result.stderr.count("\n") == 1


def test_local_lag_is_the_age_of_the_oldest_unprocessed_record(healthy_local: Target) -> None:
    target = healthy_local
    arn = stream_arn(target)
    streams = client(target, "dynamodbstreams")
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert len(records) == 25
    first = records[0]["dynamodb"]["ApproximateCreationDateTime"].timestamp()

    # busy, nothing processed yet: the age of the very first record
    write_worker_report(target, idle=False)
    result = runner.invoke(app, ["status", "--json", "--max-lag", "3600"])
    assert result.exit_code == 0, result.stderr
    lag = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "lag")
    assert lag["state"] == "ok"
    assert lag["data"]["iterator_age_s"] >= time.time() - first - 5
    result = runner.invoke(app, ["status", "--json", "--max-lag", "0"])
    assert result.exit_code == 9
    assert any(r.startswith("lag: iterator age") for r in json.loads(result.stdout)["reasons"])

    # checkpointed at the last record: caught up
    last = records[-1]["dynamodb"]["SequenceNumber"]
    write_worker_report(target, idle=False, checkpoints={shard["ShardId"]: {"sequence": last}})
    result = runner.invoke(app, ["status", "--json", "--max-lag", "0"])
    lag = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "lag")
    assert lag["summary"] == "caught up"


def test_missing_index_and_missing_worker_are_failures(ops_target: Callable[..., Target]) -> None:
    ops_target(index=False)
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 9
    report = json.loads(result.stdout)
    reasons = " | ".join(report["reasons"])
    assert "index: index 'tx" in reasons
    assert "does not exist" in reasons
    assert "no stream worker reports" in reasons


def test_unreachable_search_endpoint_is_reported_not_raised(healthy_local: Target) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = runner.invoke(app, ["status", "--json", "--endpoint", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 9
    reasons = json.loads(result.stdout)["reasons"]
    assert any(r.startswith("index: ") and "cannot reach" in r for r in reasons)


def test_unreachable_dynamodb_is_exit_6(healthy_local: Target) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    record(healthy_local.with_overrides(aws_endpoint=f"http://127.0.0.1:{port}"))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 6
    assert result.stderr.startswith("error: table '")
    assert "cannot reach" in result.stderr


def test_nothing_deployed_is_exit_4() -> None:
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 4


# --------------------------------------------------------------------------- AWS path


@pytest.fixture
def aws_target(ops_target: Callable[..., Target]) -> Target:
    """An AWS-kind target whose APIs (Lambda, CloudWatch, SQS) are served by moto."""
    local = ops_target()
    ddb = client(local, "dynamodb")
    stream_arn = ddb.describe_table(TableName=local.table)["Table"]["LatestStreamArn"]
    iam = client(local, "iam")
    role_name = f"r-{uuid.uuid4().hex[:8]}"
    role = iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    lam = client(local, "lambda")
    function = f"fn-{uuid.uuid4().hex[:8]}"
    lam.create_function(
        FunctionName=function,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    esm = lam.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=function, StartingPosition="TRIM_HORIZON"
    )
    queue = client(local, "sqs").create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")
    target = Target(
        **{
            **local.to_json(),
            "kind": "aws",
            "name": "moto-stack",
            "function_name": function,
            "event_source_mapping_uuid": esm["UUID"],
            "dlq_url": queue["QueueUrl"],
        }
    )
    save_aws_target(target)
    set_current("aws", "moto-stack")
    return target


def put_metric(target: Target, name: str, value: float) -> None:
    client(target, "cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": "FunctionName", "Value": target.function_name}],
                "Value": value,
                "Timestamp": datetime.now(timezone.utc),
            }
        ],
    )


def test_aws_path_healthy_then_lagging_with_errors_and_a_disabled_mapping(
    aws_target: Target,
) -> None:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["event source mapping"]["state"] == "ok"
    assert checks["event source mapping"]["data"]["state"] == "Enabled"
    assert checks["lag"]["summary"] == "no records in the last 5 minutes (idle)"
    assert checks["handler errors"]["state"] == "ok"
    assert checks["counts"]["data"]["items_exact"] is False
    assert "approximate" in checks["counts"]["summary"]

    put_metric(aws_target, "IteratorAge", 400_000)  # 400 s behind
    put_metric(aws_target, "Errors", 3)
    client(aws_target, "lambda").update_event_source_mapping(
        UUID=aws_target.event_source_mapping_uuid, Enabled=False
    )
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 9
    reasons = json.loads(result.stdout)["reasons"]
    assert "lag: iterator age 400.0 s (max over 5 min)" in reasons
    assert "handler errors: 3 invocation error(s) in the last hour" in reasons
    assert any(r.startswith("event source mapping: Disabled") for r in reasons)
    # a larger lag budget clears the lag reason only
    result = runner.invoke(app, ["status", "--json", "--max-lag", "600"])
    reasons = json.loads(result.stdout)["reasons"]
    assert not any(r.startswith("lag:") for r in reasons)
