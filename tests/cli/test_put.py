"""`ddbsearch put` against the real emulators (moto server)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.local.state import record_target
from ddbsearch.targets import Target

pytestmark = pytest.mark.integration

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ddb(target: Target) -> Any:
    return boto3.client("dynamodb", endpoint_url=target.aws_endpoint, region_name="us-east-1")


def scan_all(target: Target) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": target.table, "ConsistentRead": True}
    while True:
        page = ddb(target).scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_put_plain_json_item(ops_target: Callable[..., Target]) -> None:
    target = ops_target()
    result = runner.invoke(
        app, ["put", "--item", '{"userId": 3, "transactionId": "t1", "amount": 12.50, "x": null}']
    )
    assert result.exit_code == 0, result.stderr
    assert "wrote 1 item to" in result.stderr
    stored = ddb(target).get_item(
        TableName=target.table, Key={"userId": {"N": "3"}, "transactionId": {"S": "t1"}}
    )["Item"]
    assert Decimal(stored["amount"]["N"]) == Decimal("12.50")  # a number, exact
    assert stored["x"] == {"NULL": True}


def test_put_dynamodb_json_item_with_json_summary(ops_target: Callable[..., Target]) -> None:
    target = ops_target()
    item = {"userId": {"N": "4"}, "transactionId": {"S": "t2"}, "tags": {"SS": ["a", "b"]}}
    result = runner.invoke(app, ["put", "--json", "--item", json.dumps(item)])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["written"] == 1
    assert summary["unprocessed"] == 0
    stored = scan_all(target)
    assert len(stored) == 1
    assert sorted(stored[0]["tags"]["SS"]) == ["a", "b"]


def test_malformed_json_is_exit_2_with_one_line(ops_target: Callable[..., Target]) -> None:
    target = ops_target()
    result = runner.invoke(app, ["put", "--item", '{"userId": 3,'])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: malformed JSON")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert scan_all(target) == []


def test_missing_key_attribute_is_named_and_nothing_is_written(
    ops_target: Callable[..., Target],
) -> None:
    target = ops_target()
    result = runner.invoke(app, ["put", "--item", '{"userId": 3, "shortDescription": "x"}'])
    assert result.exit_code == 2
    assert "missing key attribute transactionId" in result.stderr
    assert scan_all(target) == []


def test_file_is_validated_entirely_before_writing(
    ops_target: Callable[..., Target], tmp_path: Path
) -> None:
    target = ops_target()
    path = tmp_path / "items.jsonl"
    good = [json.dumps({"userId": i, "transactionId": f"t{i}"}) for i in range(40)]
    path.write_text("\n".join([*good, '{"userId": 99}', *good]) + "\n")
    result = runner.invoke(app, ["put", "--file", str(path)])
    assert result.exit_code == 2
    assert f"{path} line 41: missing key attribute transactionId" in result.stderr
    assert scan_all(target) == []  # no partial damage

    path.write_text("\n".join([*good[:2], "{not json", *good[2:]]) + "\n")
    result = runner.invoke(app, ["put", "--file", str(path)])
    assert result.exit_code == 2
    assert f"{path} line 3: malformed JSON" in result.stderr
    assert scan_all(target) == []


def test_file_from_stdin_and_missing_file(
    ops_target: Callable[..., Target], tmp_path: Path
) -> None:
    target = ops_target()
    lines = "\n".join(json.dumps({"userId": i, "transactionId": f"s{i}"}) for i in range(5))
    result = runner.invoke(app, ["put", "--file", "-"], input=lines + "\n")
    assert result.exit_code == 0, result.stderr
    assert len(scan_all(target)) == 5
    missing = tmp_path / "nope.jsonl"
    result = runner.invoke(app, ["put", "--file", str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {missing}: no such file\n"


def test_file_with_repeated_keys_writes_all_and_the_last_line_wins(
    ops_target: Callable[..., Target], tmp_path: Path
) -> None:
    target = ops_target()
    lines = [json.dumps({"userId": i % 7, "transactionId": "same", "n": i}) for i in range(60)]
    lines += [json.dumps({"userId": 1000 + i, "transactionId": f"t{i}"}) for i in range(60)]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["put", "--file", str(path)])
    assert result.exit_code == 0, result.stderr
    stored = {(i["userId"]["N"], i["transactionId"]["S"]): i for i in scan_all(target)}
    assert len(stored) == 7 + 60
    # the last line for userId 3 is n = 59 (59 % 7 == 3)
    assert stored[("3", "same")]["n"] == {"N": "59"}


def test_generate_writes_realistic_unique_transactions(ops_target: Callable[..., Target]) -> None:
    target = ops_target()
    result = runner.invoke(app, ["put", "--generate", "120", "--seed", "1"])
    assert result.exit_code == 0, result.stderr
    assert "wrote 120 items" in result.stderr
    stored = scan_all(target)
    assert len({i["transactionId"]["S"] for i in stored}) == 120
    assert all("shortDescription" in i and "amount" in i for i in stored)


def test_generate_fits_the_reference_key_types(ops_target: Callable[..., Target]) -> None:
    target = ops_target(keys=(("userId", "N"), ("transactionId", "N")))
    result = runner.invoke(app, ["put", "--generate", "40"])
    assert result.exit_code == 0, result.stderr
    stored = scan_all(target)
    assert len({i["transactionId"]["N"] for i in stored}) == 40


def test_rate_limits_the_write_speed(ops_target: Callable[..., Target]) -> None:
    ops_target()
    result = runner.invoke(app, ["put", "--generate", "60", "--rate", "50", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["written"] == 60
    # Batches of 25, 25, 10 at 50 items/s: the second waits 0.5 s, the third 0.2 s more.
    assert summary["seconds"] >= 0.65


def test_exactly_one_source_is_required(ops_target: Callable[..., Target]) -> None:
    ops_target()
    result = runner.invoke(app, ["put"])
    assert result.exit_code == 2
    assert "exactly one of --item, --file or --generate" in result.stderr
    result = runner.invoke(app, ["put", "--item", "{}", "--generate", "3"])
    assert result.exit_code == 2


def test_nothing_deployed_is_exit_4() -> None:
    result = runner.invoke(app, ["put", "--item", '{"userId": 1, "transactionId": "a"}'])
    assert result.exit_code == 4
    assert result.stderr.startswith("error: nothing is deployed yet")


def test_unknown_table_is_exit_5(ops_target: Callable[..., Target]) -> None:
    ops_target()
    result = runner.invoke(
        app, ["put", "--table", "NoSuchTable", "--item", '{"userId": 1, "transactionId": "a"}']
    )
    assert result.exit_code == 5
    assert "table 'NoSuchTable' does not exist" in result.stderr


def test_unreachable_endpoint_is_exit_6(ops_target: Callable[..., Target]) -> None:

    target = ops_target()
    dead = Target(**{**target.to_json(), "aws_endpoint": f"http://127.0.0.1:{free_port()}"})
    record_target(dead)
    result = runner.invoke(app, ["put", "--item", '{"userId": 1, "transactionId": "a"}'])
    assert result.exit_code == 6
    assert "cannot reach" in result.stderr


class ThrottlingTable:
    """The real moto client, except that BatchWriteItem leaves part of each batch
    unprocessed the first few times, as DynamoDB does under throttling."""

    def __init__(self, real: Any, unprocessed_calls: int) -> None:
        self.real = real
        self.left = unprocessed_calls
        self.calls = 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        ((table, requests),) = RequestItems.items()
        if self.left > 0 and len(requests) > 1:
            self.left -= 1
            keep = len(requests) // 2
            self.real.batch_write_item(RequestItems={table: requests[:keep]})
            return {"UnprocessedItems": {table: requests[keep:]}}
        return dict(self.real.batch_write_item(RequestItems=RequestItems))


def test_unprocessed_items_are_retried_until_written(ops_target: Callable[..., Target]) -> None:
    from ddbsearch.ops.put import write_items
    from ddbsearch.testing.data import generate_transactions

    target = ops_target()
    flaky = ThrottlingTable(ddb(target), unprocessed_calls=5)
    items = list(generate_transactions(60, seed=5, table=_info(target)))
    slept: list[float] = []
    report = write_items(flaky, target.table, items, KEYS, sleep=slept.append)
    assert report.written == 60
    assert report.unprocessed == []
    assert report.retried > 0
    assert len(slept) == 5  # one backoff per unprocessed response
    assert len(scan_all(target)) == 60


def test_items_still_unprocessed_after_all_retries_are_reported(
    ops_target: Callable[..., Target],
) -> None:
    from ddbsearch.errors import PartialFailure
    from ddbsearch.ops.put import raise_for_report, write_items
    from ddbsearch.testing.data import generate_transactions

    target = ops_target()
    flaky = ThrottlingTable(ddb(target), unprocessed_calls=1000)
    items = list(generate_transactions(10, seed=5, table=_info(target)))
    report = write_items(flaky, target.table, items, KEYS, max_attempts=3, sleep=lambda s: None)
    assert report.written + len(report.unprocessed) == 10
    assert report.unprocessed
    stored = {i["transactionId"]["S"] for i in scan_all(target)}
    assert stored.isdisjoint({i["transactionId"]["S"] for i in report.unprocessed})
    with pytest.raises(PartialFailure, match="still unprocessed after retries"):
        raise_for_report(report)


KEYS = ["userId", "transactionId"]


def _info(target: Target) -> Any:
    from ddbsearch.tables import describe_table

    return describe_table(ddb(target), target.table)


def test_a_failure_after_some_writes_is_partial(ops_target: Callable[..., Target]) -> None:
    from botocore.exceptions import ClientError

    from ddbsearch.errors import PartialFailure
    from ddbsearch.ops.put import write_items
    from ddbsearch.testing.data import generate_transactions

    target = ops_target()
    real = ddb(target)

    class FailsOnSecondBatch:
        calls = 0

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            self.calls += 1
            if self.calls == 2:
                raise ClientError(
                    {
                        "Error": {
                            "Code": "ProvisionedThroughputExceededException",
                            "Message": "slow",
                        }
                    },
                    "BatchWriteItem",
                )
            return dict(real.batch_write_item(RequestItems=RequestItems))

    items = list(generate_transactions(60, seed=8, table=_info(target)))
    with pytest.raises(PartialFailure, match=r"after 25 item\(s\) were written") as info:
        write_items(FailsOnSecondBatch(), target.table, items, KEYS)
    assert info.value.exit_code == 10
    assert len(scan_all(target)) == 25
