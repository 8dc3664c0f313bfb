"""`search --all` past OpenSearch's 10,000-hit window, and the point in time it holds.

The index is filled directly through the core bulk path (not through the stream),
once for the module. osmem-server lists open PITs at ``GET /_search/point_in_time/_all``
(OpenSearch's own API), which is how these tests see that none is left open.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.bulk import BulkIndexer
from ddbsearch.core.documents import action_from_item, backfill_version
from ddbsearch.core.template import ensure_index
from ddbsearch.core.transport import SearchTransport
from ddbsearch.items import parse_item
from ddbsearch.local.state import record_target
from ddbsearch.ops.search import SearchRequest, count_documents, scan
from ddbsearch.targets import Target, set_current

pytestmark = pytest.mark.integration

runner = CliRunner()
DOCUMENTS = 10_250  # more than index.max_result_window (10,000)


@pytest.fixture(scope="module")
def big(osmem_base: str) -> Iterator[Target]:
    index = f"big{uuid.uuid4().hex[:8]}"
    transport = SearchTransport(osmem_base, sigv4=False)
    ensure_index(transport, index)
    # userId with the exact long sub-field (docs/document-model.md): sorts page on both
    number = {"type": "double", "fields": {"long": {"type": "long", "ignore_malformed": True}}}
    response = transport.json("PUT", f"/{index}/_mapping", {"properties": {"userId": number}})
    assert response.status == 200, response.body
    version = backfill_version(time.time())
    for start in range(0, DOCUMENTS, 2_500):
        actions = [
            action_from_item(
                parse_item(json.dumps({"userId": i, "shard": i % 7, "note": f"row {i}"})),
                ["userId"],
                version,
            )
            for i in range(start, min(start + 2_500, DOCUMENTS))
        ]
        report = BulkIndexer(transport, index).run(actions, deadline=time.monotonic() + 120)
        assert all(r.outcome.done for r in report.results)
    transport.request("POST", f"/{index}/_refresh")
    yield Target(
        kind="local", name="local", region="us-east-1", table="Big", index=index,
        search_endpoint=osmem_base, sigv4=False, key_names=("userId",),
    )  # fmt: skip
    transport.request("DELETE", f"/{index}")


@pytest.fixture
def current(big: Target) -> Target:
    record_target(big)
    set_current("local", "local")
    return big


def open_pits(target: Target) -> list[Any]:
    response = SearchTransport(target.search_endpoint, sigv4=False).request(
        "GET", "/_search/point_in_time/_all"
    )
    assert response.status == 200
    pits: list[Any] = response.json()["pits"]
    return pits


def test_all_streams_every_hit_and_closes_the_pit(current: Target) -> None:
    assert count_documents(current) == DOCUMENTS
    result = runner.invoke(app, ["search", "--all", "--format", "ndjson", "--fields", "userId"])
    assert result.exit_code == 0, result.stderr
    ids = [json.loads(line)["userId"] for line in result.stdout.splitlines()]
    assert len(ids) == DOCUMENTS
    assert sorted(ids) == list(range(DOCUMENTS))  # each once
    assert result.stderr == f"{DOCUMENTS:,} hits\n"
    assert open_pits(current) == []


def test_all_with_a_filter_sort_and_csv(current: Target) -> None:
    result = runner.invoke(
        app, ["search", "--all", "--filter", "shard=3", "--sort", "userId:desc", "-f", "csv"]
    )
    assert result.exit_code == 0, result.stderr
    rows = result.stdout_bytes.decode().split("\r\n")
    assert rows[0] == "userId,note,shard"
    expected = [i for i in range(DOCUMENTS - 1, -1, -1) if i % 7 == 3]
    assert [int(r.split(",")[0]) for r in rows[1:-1]] == expected
    assert open_pits(current) == []


def test_an_interrupted_run_closes_the_pit(big: Target) -> None:
    seen: list[tuple[int, int]] = []

    def interrupt(done: int, total: int) -> None:
        seen.append((done, total))
        assert len(open_pits(big)) == 1  # the PIT is open while pages are read
        if done >= 2_000:
            raise KeyboardInterrupt

    stream = scan(big, SearchRequest(), on_progress=interrupt)
    with pytest.raises(KeyboardInterrupt):
        for _ in stream.hits:
            pass
    assert seen == [(1_000, DOCUMENTS), (2_000, DOCUMENTS)]
    assert open_pits(big) == []


def test_a_reader_that_stops_early_closes_the_pit(big: Target) -> None:
    stream = scan(big, "row", page_size=100)
    first = [next(stream.hits) for _ in range(150)]
    assert len({h.id for h in first}) == 150
    assert len(open_pits(big)) == 1
    stream.hits.close()
    assert open_pits(big) == []


def test_all_refuses_aggregations(big: Target) -> None:
    from ddbsearch.errors import InputError

    with pytest.raises(InputError, match="streams hits only"):
        scan(big, SearchRequest(count_by=["shard"]))
