"""The AWS side of the export load against moto: the execution's input, progress, cancel.

moto runs no Distributed Map (its map runs are stubs), so what is checked is what
ddbsearch sends and reads: StartExecution of the stack's state machine with the export
to wait for, the state file that makes a second run attach, and StopExecution.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from ddbsearch.ops import export_load
from ddbsearch.targets import Target

pytestmark = pytest.mark.integration


def test_the_load_is_an_execution_of_the_stacks_state_machine(moto_endpoint: str) -> None:
    kw: dict[str, Any] = {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}
    table = f"Big{uuid.uuid4().hex[:6]}"
    ddb, sfn = (boto3.client(s, **kw) for s in ("dynamodb", "stepfunctions"))
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
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
    # The export may still be running: the state machine waits for it, not the CLI.
    export = {
        "ExportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/export/1",
        "ExportStatus": "IN_PROGRESS",
        "S3Bucket": bucket,
        "ItemCount": 3,
    }
    record = export_load.start_load(target, export)
    assert record.kind == "aws"
    assert record.version is None  # known once the state machine has read the export
    execution = sfn.describe_execution(executionArn=record.execution_arn)
    assert json.loads(execution["input"]) == {
        "export_arn": export["ExportArn"],
        "key_names": ["pk"],
        "generations": [],  # every live generation
    }
    assert export_load.read_record(target) == record
    current = export_load.progress(target)
    assert current is not None
    assert current.state == "EXPORTING"  # no map run yet
    assert current.running
    assert current.items_total == 3
    # Running again attaches to the execution instead of starting another.
    again = export_load.start_or_attach(target)
    assert again.attached
    assert again.record.execution_arn == record.execution_arn

    stopped = export_load.cancel(target)
    assert stopped is not None
    assert stopped.state == "ABORTED"
    assert sfn.describe_execution(executionArn=record.execution_arn)["status"] == "ABORTED"

    # A reindex's load names its generation; this machine's definition cannot carry
    # that (deployed before it existed), so the load is refused, not widened.
    from ddbsearch.errors import NotDeployedError

    with pytest.raises(NotDeployedError, match="predates reindex loads"):
        export_load.start_load(target, export, generations=[f"{table.lower()}-000002"])
    kept = export_load.read_record(target)
    assert kept is not None
    assert kept.execution_arn == record.execution_arn  # nothing new was started
