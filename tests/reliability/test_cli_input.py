"""Bad CLI input: one line on stderr, the documented exit code, no partial write.

The operator commands' own tests (tests/cli/) cover malformed JSON, a missing key
attribute, an unknown table or index and an unreachable endpoint for put, search,
backfill and redrive. This adds the DynamoDB-JSON type errors, as a matrix, and
the all-or-nothing rule for a file whose bad line comes after a full batch.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.errors import ExitCode
from ddbsearch.targets import Target

pytestmark = pytest.mark.integration

runner = CliRunner()
KEYS = '"userId": {"N": "3"}, "transactionId": {"S": "t1"}'


def _count(target: Target) -> int:
    ddb = boto3.client("dynamodb", endpoint_url=target.aws_endpoint, region_name="us-east-1")
    return int(ddb.scan(TableName=target.table, Select="COUNT", ConsistentRead=True)["Count"])


def _one_line_error(result: Any, code: ExitCode) -> None:
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ('{"userId": {"N": "abc"}, "transactionId": {"S": "t1"}}', "userId: 'abc' is not a number"),
        ('{"userId": {"N": 3}, "transactionId": {"S": "t1"}}', "N must be a number written as"),
        ('{"userId": {"S": "3"}, "transactionId": {"S": "t1"}}', "userId must be of type N"),
        ('{"userId": {"N": "3"}, "transactionId": {"S": ""}}', "transactionId cannot be empty"),
        ("{" + KEYS + ', "x": {"SS": []}}', "x: SS must be a non-empty list"),
        ("{" + KEYS + ', "x": {"SS": ["a", "a"]}}', "x: SS contains duplicates"),
        ("{" + KEYS + ', "x": {"NS": ["1", "1.0"]}}', "x: NS contains duplicates"),
        ("{" + KEYS + ', "x": {"BOOL": "yes"}}', "x: BOOL must be true or false"),
        ("{" + KEYS + ', "x": {"B": "not base64!"}}', "is not valid base64"),
        ("{" + KEYS + ', "x": {"N": "1E+400"}}', "does not fit a DynamoDB number"),
        ("{" + KEYS + ', "x": {"N": "NaN"}}', "is not a number"),
        ("[1, 2]", "expected a JSON object, got an array"),
    ],
)
def test_dynamodb_json_with_wrong_types_is_one_line_exit_2_and_writes_nothing(
    ops_target: Callable[..., Target], item: str, message: str
) -> None:
    target = ops_target()
    result = runner.invoke(app, ["put", "--item", item])
    _one_line_error(result, ExitCode.USAGE)
    assert message in result.stderr
    assert _count(target) == 0


def test_a_bad_line_after_a_full_batch_writes_nothing(
    ops_target: Callable[..., Target], tmp_path: Path
) -> None:
    target = ops_target()
    good = [json.dumps({"userId": {"N": str(i)}, "transactionId": {"S": "t"}}) for i in range(60)]
    bad = json.dumps({"userId": {"N": "61"}, "transactionId": {"S": "t"}, "x": {"BOOL": 1}})
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join([*good, bad]) + "\n")
    result = runner.invoke(app, ["put", "--file", str(path)])
    _one_line_error(result, ExitCode.USAGE)
    assert f"{path} line 61: " in result.stderr
    assert "x: BOOL must be true or false" in result.stderr
    assert _count(target) == 0


def test_backfill_with_an_unreachable_search_endpoint_is_exit_6(
    ops_target: Callable[..., Target],
) -> None:
    ops_target()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = runner.invoke(app, ["backfill", "--endpoint", f"http://127.0.0.1:{port}"])
    _one_line_error(result, ExitCode.UNREACHABLE)
    assert "cannot reach the search endpoint" in result.stderr


def test_a_number_above_dynamodb_range_is_rejected_before_writing(
    ops_target: Callable[..., Target],
) -> None:
    target = ops_target()
    result = runner.invoke(app, ["put", "--item", "{" + KEYS + ', "x": {"N": "1E+126"}}'])
    _one_line_error(result, ExitCode.USAGE)
    assert _count(target) == 0
