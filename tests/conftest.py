"""Shared fixtures: real emulators on loopback ports, cleaned up after the session."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# No test may reach a real AWS account, whatever the developer's shell holds.
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_var, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_REGION"] = "us-east-1"

EVENTS_DIR = Path(__file__).parent / "events"


@pytest.fixture
def load_event() -> Callable[[str], dict[str, Any]]:
    """Load a Lambda-shaped DynamoDB stream event from tests/events/NAME.json."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
        return data

    return load


@pytest.fixture(autouse=True)
def _isolated_state_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own ddbsearch state directory."""
    monkeypatch.setenv("DDBSEARCH_HOME", str(tmp_path_factory.mktemp("ddbsearch-home")))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real moto server (DynamoDB, Streams, SQS over HTTP) on a free loopback port."""
    from ddbsearch.local.emulators import MotoServer

    server = MotoServer.start()  # port 0: the server binds a free port itself, no race
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def osmem_base() -> Iterator[str]:
    """An osmem-server (OpenSearch-compatible, in memory) for the whole session."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        yield server.url
    finally:
        server.close()
        if server.process.stdout is not None:  # osmem leaves its stdout pipe open
            server.process.stdout.close()


@pytest.fixture
def ops_target(moto_endpoint: str, osmem_base: str) -> Iterator[Callable[..., Any]]:
    """Factory: a fresh table (moto) + index (osmem) recorded as the current local target.

    Lets command tests run against real emulators without the local-stack supervisor.
    ``make(keys=[("userId", "N"), ("transactionId", "S")], rcu=None, index=True)``;
    tables and indexes are deleted after the test.
    """
    import uuid

    import boto3

    from ddbsearch.core.template import ensure_index
    from ddbsearch.core.transport import SearchTransport
    from ddbsearch.local.state import record_target
    from ddbsearch.targets import Target, set_current

    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    transport = SearchTransport(osmem_base, sigv4=False)
    made: list[Target] = []

    def make(
        keys: tuple[tuple[str, str], ...] = (("userId", "N"), ("transactionId", "S")),
        rcu: int | None = None,
        index: bool = True,
    ) -> Target:
        suffix = uuid.uuid4().hex[:10]
        table, index_name = f"Tx{suffix}", f"tx{suffix}"
        throughput: dict[str, Any] = (
            {"BillingMode": "PAY_PER_REQUEST"}
            if rcu is None
            else {"ProvisionedThroughput": {"ReadCapacityUnits": rcu, "WriteCapacityUnits": rcu}}
        )
        ddb.create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": n, "KeyType": "HASH" if i == 0 else "RANGE"}
                for i, (n, _) in enumerate(keys)
            ],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in keys],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            **throughput,
        )
        if index:
            ensure_index(transport, index_name)
        target = Target(
            kind="local",
            name="local",
            region="us-east-1",
            table=table,
            index=index_name,
            search_endpoint=osmem_base,
            aws_endpoint=moto_endpoint,
            sigv4=False,
        )
        record_target(target)
        set_current("local", "local")
        made.append(target)
        return target

    yield make
    for target in made:
        ddb.delete_table(TableName=target.table)
        transport.request("DELETE", f"/{target.index}")
