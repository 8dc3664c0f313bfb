"""Adopting an existing table: is its stream usable, and turning it on when it is not.

The indexer needs ``NEW_AND_OLD_IMAGES`` (new image to index, keys to delete).
A stream's view type cannot be changed in place: a stream of another type has
to be turned off first, which ends it for every other reader; the CLI explains
this and asks before :func:`enable_stream` does it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ddbsearch.errors import InfraError, NotFoundError

REQUIRED_VIEW_TYPE = "NEW_AND_OLD_IMAGES"


@dataclass(frozen=True)
class TableInfo:
    name: str
    exists: bool
    stream_enabled: bool = False
    stream_view_type: str | None = None
    key_schema: tuple[tuple[str, str], ...] = ()  # (attribute name, KeyType HASH|RANGE)

    @property
    def stream_ok(self) -> bool:
        return self.stream_enabled and self.stream_view_type == REQUIRED_VIEW_TYPE

    def stream_problem(self) -> str | None:
        """One sentence for the operator, or None when the stream is fine."""
        if self.stream_ok:
            return None
        if not self.stream_enabled:
            return (
                f"table '{self.name}' has no DynamoDB stream; ddbsearch needs one with "
                f"{REQUIRED_VIEW_TYPE} to see every write"
            )
        return (
            f"table '{self.name}' streams {self.stream_view_type}, but ddbsearch needs "
            f"{REQUIRED_VIEW_TYPE}; the current stream must be turned off first, which "
            "ends it for any other reader"
        )


def _client(session: Any) -> Any:
    return session.client("dynamodb")


def inspect_table(session: Any, name: str) -> TableInfo:
    """Describe ``name``; ``exists=False`` when there is no such table."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ddbsearch.aws import error_code, translate

    try:
        table = _client(session).describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return TableInfo(name=name, exists=False)
        raise translate(exc, f"describing table {name}") from exc
    except BotoCoreError as exc:
        raise translate(exc, f"describing table {name}") from exc
    spec = table.get("StreamSpecification") or {}
    enabled = bool(spec.get("StreamEnabled")) and bool(table.get("LatestStreamArn"))
    return TableInfo(
        name=name,
        exists=True,
        stream_enabled=enabled,
        stream_view_type=spec.get("StreamViewType") if enabled else None,
        key_schema=tuple((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]),
    )


def _wait_active(
    client: Any, name: str, *, timeout: float, clock: Callable[[], float], pause: float
) -> None:
    deadline = clock() + timeout
    while True:
        table = client.describe_table(TableName=name)["Table"]
        if table.get("TableStatus") == "ACTIVE":
            return
        if clock() > deadline:
            raise InfraError(f"table '{name}' did not become ACTIVE within {int(timeout)} s")
        time.sleep(pause)  # polling AWS: DescribeTable has no wait-for-change call


def enable_stream(
    session: Any,
    info: TableInfo,
    *,
    timeout: float = 600.0,
    pause: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> TableInfo:
    """Give the table a NEW_AND_OLD_IMAGES stream (UpdateTable), replacing another view type."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ddbsearch.aws import translate

    if not info.exists:
        raise NotFoundError(f"table '{info.name}' does not exist")
    if info.stream_ok:
        return info
    client = _client(session)
    try:
        if info.stream_enabled:
            client.update_table(TableName=info.name, StreamSpecification={"StreamEnabled": False})
            _wait_active(client, info.name, timeout=timeout, clock=clock, pause=pause)
        client.update_table(
            TableName=info.name,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": REQUIRED_VIEW_TYPE},
        )
        _wait_active(client, info.name, timeout=timeout, clock=clock, pause=pause)
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"enabling the stream of table {info.name}") from exc
    after = inspect_table(session, info.name)
    if not after.stream_ok:
        raise InfraError(f"table '{info.name}' still has no {REQUIRED_VIEW_TYPE} stream")
    return after
