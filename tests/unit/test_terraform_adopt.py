"""Adopting an existing table: reading its stream settings and replacing a wrong stream.

Replacing a stream is a disable-then-enable sequence; moto cannot emulate it
(it keeps the old stream label and refuses a new stream), so botocore's Stubber
checks the exact calls against the real DynamoDB API model.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ddbsearch.errors import InfraError, NotFoundError
from ddbsearch.tables import TableInfo, enable_stream, inspect_table


class _Session:
    """Hands out one stubbed client, as boto3.Session.client would."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str) -> Any:
        assert service == "dynamodb"
        return self._client


def _table(status: str, stream: dict[str, Any] | None) -> dict[str, Any]:
    table: dict[str, Any] = {
        "TableName": "Orders",
        "TableStatus": status,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    }
    if stream is not None:
        table["StreamSpecification"] = stream
        if stream.get("StreamEnabled"):
            table["LatestStreamArn"] = (
                "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-01-01T00:00:00.000"
            )
    return {"Table": table}


@pytest.fixture
def stubbed() -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_keys_only_stream_is_replaced_disable_first_then_new_and_old_images(stubbed: Any) -> None:
    client, stub = stubbed
    wanted = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    stub.add_response(
        "update_table", {}, {"TableName": "Orders", "StreamSpecification": {"StreamEnabled": False}}
    )
    stub.add_response("describe_table", _table("UPDATING", None), {"TableName": "Orders"})
    stub.add_response("describe_table", _table("ACTIVE", None), {"TableName": "Orders"})
    stub.add_response("update_table", {}, {"TableName": "Orders", "StreamSpecification": wanted})
    stub.add_response("describe_table", _table("ACTIVE", wanted), {"TableName": "Orders"})
    stub.add_response("describe_table", _table("ACTIVE", wanted), {"TableName": "Orders"})

    before = TableInfo(
        name="Orders", exists=True, stream_enabled=True, stream_view_type="KEYS_ONLY"
    )
    assert before.stream_problem() is not None
    after = enable_stream(_Session(client), before, pause=0)
    assert after.stream_ok
    assert after.key_schema == (("pk", "HASH"),)


def test_missing_stream_is_enabled_in_one_update(stubbed: Any) -> None:
    client, stub = stubbed
    wanted = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    stub.add_response("update_table", {}, {"TableName": "Orders", "StreamSpecification": wanted})
    stub.add_response("describe_table", _table("ACTIVE", wanted), {"TableName": "Orders"})
    stub.add_response("describe_table", _table("ACTIVE", wanted), {"TableName": "Orders"})
    after = enable_stream(_Session(client), TableInfo(name="Orders", exists=True), pause=0)
    assert after.stream_ok


def test_a_table_that_never_becomes_active_times_out(stubbed: Any) -> None:
    client, stub = stubbed
    wanted = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    stub.add_response("update_table", {}, {"TableName": "Orders", "StreamSpecification": wanted})
    stub.add_response("describe_table", _table("UPDATING", wanted), {"TableName": "Orders"})
    stub.add_response("describe_table", _table("UPDATING", wanted), {"TableName": "Orders"})
    ticks = iter([0.0, 1.0, 99.0])
    with pytest.raises(InfraError, match="did not become ACTIVE within 10 s"):
        enable_stream(
            _Session(client),
            TableInfo(name="Orders", exists=True),
            timeout=10,
            pause=0,
            clock=lambda: next(ticks),
        )


def test_inspect_reads_stream_settings_and_missing_tables(stubbed: Any) -> None:
    client, stub = stubbed
    stub.add_response(
        "describe_table",
        _table("ACTIVE", {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}),
        {"TableName": "Orders"},
    )
    stub.add_client_error(
        "describe_table", service_error_code="ResourceNotFoundException", http_status_code=400
    )
    info = inspect_table(_Session(client), "Orders")
    assert (info.exists, info.stream_enabled, info.stream_view_type) == (True, True, "NEW_IMAGE")
    # NEW_IMAGE carries what the indexer needs (new image, keys): adopted as it is.
    assert info.stream_ok
    assert info.stream_problem() is None
    assert info.lacks_old_images
    missing = inspect_table(_Session(client), "Nope")
    assert not missing.exists


def test_enabling_the_stream_of_a_missing_table_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        enable_stream(_Session(None), TableInfo(name="Nope", exists=False))


def test_keys_only_streams_are_a_problem_and_new_and_old_images_lacks_nothing() -> None:
    keys_only = TableInfo(
        name="Orders", exists=True, stream_enabled=True, stream_view_type="KEYS_ONLY"
    )
    assert not keys_only.stream_ok
    assert "streams KEYS_ONLY, but ddbsearch needs NEW_IMAGE or NEW_AND_OLD_IMAGES" in (
        keys_only.stream_problem() or ""
    )
    both = TableInfo(
        name="Orders", exists=True, stream_enabled=True, stream_view_type="NEW_AND_OLD_IMAGES"
    )
    assert both.stream_ok
    assert not both.lacks_old_images
