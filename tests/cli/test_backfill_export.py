"""`ddbsearch backfill --from-export` as a user runs it, on the local stack; the PITR error."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.local.deploy import deploy_local, destroy_local
from ddbsearch.local.stack import running_stack
from ddbsearch.ops import export_load
from ddbsearch.targets import Target
from ddbsearch.testing.data import generate_transactions

pytestmark = pytest.mark.integration

runner = CliRunner()


def test_from_export_loads_the_table_then_status_shows_it_and_cancel_says_so() -> None:
    target = deploy_local()
    try:
        stack = running_stack()
        assert stack is not None
        ddb = stack.client("dynamodb")
        for item in generate_transactions(30, seed=3):
            ddb.put_item(TableName=target.table, Item=item)

        result = runner.invoke(app, ["backfill", "--from-export", "--local", "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["state"] == "SUCCEEDED"
        assert summary["items_done"] == 30
        assert summary["files_done"] == summary["files_total"] == 1
        assert "loading 1 export file(s)" in result.stderr

        status = runner.invoke(app, ["status", "--local", "--json"])
        checks = {c["name"]: c for c in json.loads(status.stdout)["checks"]}
        assert checks["export load"]["state"] == "ok"
        assert checks["export load"]["summary"].startswith("finished: 1/1 files, 30 items")

        cancelled = runner.invoke(app, ["backfill", "--cancel", "--local"])
        assert cancelled.exit_code == 0, cancelled.output
        assert "no export load of UsersTransactions is running" in cancelled.stderr

        # --scan with an export option is a usage error.
        both = runner.invoke(app, ["backfill", "--scan", "--detach", "--local"])
        assert both.exit_code == 2
        assert "drop --scan" in both.stderr
    finally:
        destroy_local()


def test_an_aws_table_without_pitr_gets_a_one_line_error_naming_the_fix(
    moto_endpoint: str,
) -> None:
    ddb: Any = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    ddb.create_table(
        TableName="NoPitr",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    target = Target(
        kind="aws",
        name="s",
        region="us-east-1",
        table="NoPitr",
        index="nopitr",
        search_endpoint="https://search.invalid",
        aws_endpoint=moto_endpoint,
        export_bucket="b",
        loader_state_machine_arn="arn:aws:states:x",
    )
    with pytest.raises(export_load.ExportUnavailable) as caught:
        export_load.start_export(target)
    message = str(caught.value)
    assert "\n" not in message
    assert "has point-in-time recovery off" in message
    assert (
        "aws dynamodb update-continuous-backups --table-name NoPitr "
        "--point-in-time-recovery-specification PointInTimeRecoveryEnabled=true" in message
    )


def test_the_default_method_is_scan_locally_and_by_size_on_aws() -> None:
    local = Target("local", "local", "us-east-1", "T", "t", "http://x")
    remote = Target("aws", "s", "us-east-1", "T", "t", "https://x")
    big = export_load.EXPORT_THRESHOLD_BYTES
    assert export_load.choose_method(local, big * 10, from_export=False) == "scan"
    assert export_load.choose_method(local, 0, from_export=True) == "export"
    assert export_load.choose_method(remote, big - 1, from_export=False) == "scan"
    assert export_load.choose_method(remote, big, from_export=False) == "export"
