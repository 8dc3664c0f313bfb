"""The AWS side of the export load against moto: the execution's input, progress, cancel.

moto runs no Distributed Map (its map runs are stubs), so what is checked is what
ddbsearch sends and reads: StartExecution of the stack's state machine with the
export's manifest, the state file that makes a second run attach, and StopExecution.
"""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import boto3
import pytest

from ddbsearch.core.documents import backfill_version
from ddbsearch.ops import export_load
from ddbsearch.targets import Target

pytestmark = pytest.mark.integration


def test_the_load_is_an_execution_of_the_stacks_state_machine(moto_endpoint: str) -> None:
    kw: dict[str, Any] = {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}
    table = f"Big{uuid.uuid4().hex[:6]}"
    ddb, s3, sfn = (boto3.client(s, **kw) for s in ("dynamodb", "s3", "stepfunctions"))
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    folder = "exports/t/1/AWSDynamoDB/01733300000000-abcdef12"
    lines = []
    for n in range(3):
        key = f"{folder}/data/{n}.json.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b'{"Item":{"pk":{"S":"a"}}}\n'))
        lines.append(json.dumps({"itemCount": 1, "dataFileS3Key": key, "etag": "e"}))
    s3.put_object(Bucket=bucket, Key=f"{folder}/manifest-files.json", Body="\n".join(lines))
    s3.put_object(Bucket=bucket, Key=f"{folder}/manifest-summary.json", Body=b"{}")
    role = "arn:aws:iam::123456789012:role/sfn"
    machine = sfn.create_state_machine(
        name=f"load-{table}", definition=json.dumps({"StartAt": "x"}), roleArn=role
    )["stateMachineArn"]
    target = Target(
        kind="aws",
        name="stack",
        region="us-east-1",
        table=table,
        index=table.lower(),
        search_endpoint="https://search.invalid",
        aws_endpoint=moto_endpoint,
        export_bucket=bucket,
        loader_state_machine_arn=machine,
    )
    export = {
        "ExportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/export/1",
        "ExportStatus": "COMPLETED",
        "S3Bucket": bucket,
        "S3Prefix": "exports/t/1",
        "ExportManifest": f"{folder}/manifest-summary.json",
        "ExportTime": 1_733_300_000.0,
        "ItemCount": 3,
    }
    record = export_load.start_load(target, export)
    assert record.kind == "aws"
    assert record.files == 3
    execution = sfn.describe_execution(executionArn=record.execution_arn)
    assert json.loads(execution["input"]) == {
        "bucket": bucket,
        "manifest_key": f"{folder}/manifest-files.json",
        "key_names": ["pk"],
        "version": backfill_version(1_733_300_000.0),
    }
    assert export_load.read_record(target) == record
    current = export_load.progress(target)
    assert current is not None
    assert current.state == "RUNNING"
    assert current.items_total == 3
    # Running again attaches to the execution instead of starting another.
    again = export_load.start_or_attach(target)
    assert again.attached
    assert again.record.execution_arn == record.execution_arn

    stopped = export_load.cancel(target)
    assert stopped is not None
    assert stopped.state == "ABORTED"
    assert sfn.describe_execution(executionArn=record.execution_arn)["status"] == "ABORTED"
