"""One description of a DynamoDB table: keys, size, capacity and stream, from DescribeTable.

Every path that needs to know about a table (put, backfill, status, redrive, the
search renderer, the AWS adopt flow and the local stack) reads it through
:func:`describe_table` or :func:`inspect_table` and gets one :class:`TableInfo`.

Adopting an existing table: the indexer needs the new image (to index) and the
keys (to delete), so ``NEW_IMAGE`` and ``NEW_AND_OLD_IMAGES`` both work; ddbsearch
creates ``NEW_AND_OLD_IMAGES``. ``NEW_IMAGE`` records are about half the size
(Lambda batches are capped at 6 MB), but a delete then carries only the keys: a
version attribute (the lifecycle option that orders writes by an item attribute)
needs the OLD image to version deletes. A stream's view type cannot be changed in
place: a stream of another type has to be turned off first, which ends it for
every other reader; the CLI explains this and asks before :func:`enable_stream`
does it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ddbsearch.errors import InfraError, NotFoundError

REQUIRED_VIEW_TYPE = "NEW_AND_OLD_IMAGES"  # what ddbsearch enables
ACCEPTED_VIEW_TYPES = frozenset({"NEW_IMAGE", "NEW_AND_OLD_IMAGES"})
KEY_TYPES = frozenset({"S", "N", "B"})


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: str  # S, N or B
    role: str  # HASH or RANGE


@dataclass(frozen=True)
class TableInfo:
    """What ddbsearch needs to know about a table, from DescribeTable."""

    name: str
    keys: tuple[KeyAttribute, ...] = ()
    exists: bool = True
    item_count: int = 0  # approximate on AWS (refreshed about every six hours)
    size_bytes: int = 0
    status: str = "ACTIVE"
    stream_enabled: bool = False
    stream_view_type: str | None = None
    stream_arn: str | None = None
    billing_mode: str = "PROVISIONED"
    read_capacity: int = 0  # provisioned RCU; 0 for on-demand tables
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key_names(self) -> list[str]:
        return [k.name for k in self.keys]

    @property
    def key_schema(self) -> tuple[tuple[str, str], ...]:
        """(attribute name, KeyType HASH|RANGE), HASH first."""
        return tuple((k.name, k.role) for k in self.keys)

    @property
    def hash_key(self) -> tuple[str, str] | None:
        """(name, type) of the partition key."""
        return next(((k.name, k.type) for k in self.keys if k.role == "HASH"), None)

    @property
    def range_key(self) -> tuple[str, str] | None:
        """(name, type) of the sort key, None without one."""
        return next(((k.name, k.type) for k in self.keys if k.role == "RANGE"), None)

    @property
    def stream_ok(self) -> bool:
        return self.stream_enabled and self.stream_view_type in ACCEPTED_VIEW_TYPES

    @property
    def lacks_old_images(self) -> bool:
        """The stream works but carries no old image (what version-attribute deletes use)."""
        return self.stream_ok and self.stream_view_type != REQUIRED_VIEW_TYPE

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
            f"NEW_IMAGE or {REQUIRED_VIEW_TYPE}; the current stream must be turned off "
            "first, which ends it for any other reader"
        )

    @classmethod
    def from_description(cls, desc: Mapping[str, Any]) -> TableInfo:
        types = {
            a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", [])
        }
        # HASH first, then RANGE, whatever order DescribeTable used.
        schema = sorted(desc.get("KeySchema", []), key=lambda k: k["KeyType"] != "HASH")
        keys = tuple(
            KeyAttribute(k["AttributeName"], types.get(k["AttributeName"], "S"), k["KeyType"])
            for k in schema
        )
        stream = desc.get("StreamSpecification") or {}
        # A stream counts only when it is on and has an ARN to read from.
        enabled = bool(stream.get("StreamEnabled", False)) and bool(desc.get("LatestStreamArn"))
        billing = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
        rcu = int((desc.get("ProvisionedThroughput") or {}).get("ReadCapacityUnits", 0) or 0)
        return cls(
            name=str(desc["TableName"]),
            keys=keys,
            item_count=int(desc.get("ItemCount", 0) or 0),
            size_bytes=int(desc.get("TableSizeBytes", 0) or 0),
            status=str(desc.get("TableStatus", "ACTIVE")),
            stream_enabled=enabled,
            stream_view_type=stream.get("StreamViewType") if enabled else None,
            stream_arn=desc.get("LatestStreamArn"),
            billing_mode=str(billing),
            read_capacity=0 if billing == "PAY_PER_REQUEST" else rcu,
            raw=desc,
        )


def describe_table(ddb: Any, table: str) -> TableInfo:
    """DescribeTable, with a clear NotFoundError for an unknown table."""
    from ddbsearch.clients import aws_errors

    with aws_errors(f"table '{table}'"):
        try:
            desc = ddb.describe_table(TableName=table)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            raise NotFoundError(
                f"table '{table}' does not exist", hint="check --table / the deployed stack"
            ) from None
    return TableInfo.from_description(desc)


def key_names(ddb: Any, table: str) -> list[str]:
    """The table's key attribute names, HASH first."""
    return describe_table(ddb, table).key_names


def _client(session: Any) -> Any:
    return session.client("dynamodb")


def inspect_table(session: Any, name: str) -> TableInfo:
    """Describe ``name``; ``exists=False`` when there is no such table."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ddbsearch.clients import error_code, translate

    try:
        table = _client(session).describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return TableInfo(name=name, exists=False)
        raise translate(exc, f"describing table {name}") from exc
    except BotoCoreError as exc:
        raise translate(exc, f"describing table {name}") from exc
    return TableInfo.from_description(table)


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

    from ddbsearch.clients import translate

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
