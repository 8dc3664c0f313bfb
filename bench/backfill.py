"""Benchmark 2: backfill throughput next to the two raw limits, measured in one run.

Local DynamoDB: moto's ThreadedMotoServer in this process. Local search
backend: osmem-server (its own process). The limits:

* scan-only: a paginated Scan of the table (same parameters as the backfill's
  single segment: consistent reads, consumed capacity), items discarded;
* bulk-only: the same items as pre-built actions, written by
  ``ddbsearch.core.bulk.BulkIndexer`` to a fresh index, page by page (the pages
  the scan returned), with no DynamoDB in the loop.

The backfill is ``ddbsearch.ops.backfill.run_backfill`` on a fresh index of its own.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3

from bench import data
from bench.report import Section, Target, num, table
from ddbsearch.core.bulk import BulkIndexer, Outcome
from ddbsearch.core.documents import action_from_item, backfill_version
from ddbsearch.core.template import ensure_index
from ddbsearch.core.transport import SearchTransport
from ddbsearch.local.emulators import MotoServer, start_osmem

ITEMS = 50_000
QUICK_ITEMS = 5_000
# Not --segments N > 1: moto answers each segment's Scan page by sorting and walking
# the whole table, so N concurrent segments on the in-process moto multiply the work
# under one GIL; at 50,000 items a page then takes over botocore's 30 s read timeout.
TARGET_FRACTION = 0.8


def _client(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _create_table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "userId", "KeyType": "HASH"},
            {"AttributeName": "transactionId", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "userId", "AttributeType": "N"},
            {"AttributeName": "transactionId", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def _load(ddb: Any, name: str, count: int) -> None:
    batch: list[dict[str, Any]] = []
    for item in data.items(count):
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25:
            _write(ddb, name, batch)
            batch = []
    if batch:
        _write(ddb, name, batch)


def _write(ddb: Any, name: str, batch: list[dict[str, Any]]) -> None:
    request = {name: batch}
    while request:
        request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _scan(ddb: Any, name: str) -> Iterator[list[dict[str, Any]]]:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "Segment": 0,
        "TotalSegments": 1,
        "ConsistentRead": True,
        "ReturnConsumedCapacity": "TOTAL",
    }
    while True:
        page = ddb.scan(**kwargs)
        yield page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _read_ahead(ddb: Any, name: str, indexer: BulkIndexer) -> None:
    """Scan on a thread, one page ahead of the indexing (single segment, same calls)."""
    pages: queue.Queue[tuple[float, list[dict[str, Any]]] | None] = queue.Queue(maxsize=1)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            read_started_at = time.time()
            for page in _scan(ddb, name):
                pages.put((read_started_at, page))
                read_started_at = time.time()
        except BaseException as exc:  # handed to the consumer
            errors.append(exc)
        finally:
            pages.put(None)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    while (entry := pages.get()) is not None:
        read_started_at, page = entry
        version = backfill_version(read_started_at)
        actions = [action_from_item(i, data.KEY_NAMES, version) for i in page]
        report = indexer.run(actions, deadline=time.monotonic() + 300)
        if any(r.outcome is not Outcome.INDEXED for r in report.results):
            raise RuntimeError("read-ahead sketch: some items were not indexed")
    thread.join()
    if errors:
        raise errors[0]


def _count(transport: SearchTransport, index: str) -> int:
    transport.request("POST", f"/{index}/_refresh")
    return int(transport.json("GET", f"/{index}/_count").json().get("count", -1))


def run(quick: bool = False, *, items: int | None = None) -> Section:
    from ddbsearch.ops.backfill import run_backfill
    from ddbsearch.targets import Target as PipelineTarget

    started = time.perf_counter()
    count = items or (QUICK_ITEMS if quick else ITEMS)
    section = Section("backfill", "2. Backfill throughput next to the raw limits")
    name = data.TABLE
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
    moto = MotoServer.start()
    osmem = start_osmem()
    home = tempfile.TemporaryDirectory(prefix="ddbsearch-bench-")
    old_home = os.environ.get("DDBSEARCH_HOME")
    os.environ["DDBSEARCH_HOME"] = home.name  # the backfill's checkpoint lives there
    try:
        ddb = _client(moto.url)
        transport = SearchTransport(osmem.url, sigv4=False)
        _create_table(ddb, name)

        t0 = time.perf_counter()
        _load(ddb, name, count)
        load_s = time.perf_counter() - t0

        # Raw limit 1: Scan only.
        t0 = time.perf_counter()
        pages = [len(p) for p in _scan(ddb, name)]
        scan_s = time.perf_counter() - t0
        if sum(pages) != count:
            raise RuntimeError(f"scan returned {sum(pages)} items, expected {count}")

        # Raw limit 2: bulk only, pre-built actions in the scan's page sizes.
        version = backfill_version(time.time())
        actions = [action_from_item(i, data.KEY_NAMES, version) for i in data.items(count)]
        ensure_index(transport, "bulk-only")
        indexer = BulkIndexer(transport, "bulk-only")
        t0 = time.perf_counter()
        requests = 0
        position = 0
        for size in pages:
            report = indexer.run(
                actions[position : position + size], deadline=time.monotonic() + 300
            )
            position += size
            requests += report.requests
            bad = [r for r in report.results if r.outcome is not Outcome.INDEXED]
            if bad:
                raise RuntimeError(f"bulk-only: {len(bad)} items not indexed: {bad[0]}")
        bulk_s = time.perf_counter() - t0
        bulk_count = _count(transport, "bulk-only")

        # The backfill (default segments, then --segments 4), each on a fresh index.
        target = PipelineTarget(
            kind="local",
            name="bench",
            region="us-east-1",
            table=name,
            index="unused",
            search_endpoint=osmem.url,
            aws_endpoint=moto.url,
            sigv4=False,
        )
        # A sketch of the same pipeline with one page of read-ahead (bench-side, to
        # show what overlapping Scan and _bulk would give; not ddbsearch code).
        # Skipped in quick mode: with a page or two there is nothing to overlap.
        read_ahead: tuple[float, int] | None = None
        if not quick:
            ensure_index(transport, "read-ahead")
            t0 = time.perf_counter()
            _read_ahead(ddb, name, BulkIndexer(transport, "read-ahead"))
            read_ahead = (time.perf_counter() - t0, _count(transport, "read-ahead"))

        backfills = []  # (segments, seconds, documents in the index)
        for segments in (None,):
            index = f"backfill-{segments or 'default'}"
            ensure_index(transport, index)
            t0 = time.perf_counter()
            summary = run_backfill(replace(target, index=index), segments=segments)
            seconds = time.perf_counter() - t0
            if summary.indexed != count or summary.failed:
                raise RuntimeError(
                    f"backfill indexed {summary.indexed}/{count}: {summary.to_json()}"
                )
            backfills.append((summary.segments, seconds, _count(transport, index)))
    finally:
        if old_home is None:
            os.environ.pop("DDBSEARCH_HOME", None)
        else:
            os.environ["DDBSEARCH_HOME"] = old_home
        home.cleanup()
        osmem.close()
        moto.stop()

    scan_rate, bulk_rate = count / scan_s, count / bulk_s
    limit = min(scan_rate, bulk_rate)
    limit_name = "scan-only" if scan_rate <= bulk_rate else "bulk-only"
    rows = [
        (
            "load (BatchWriteItem, 25 per call; setup)",
            num(count),
            f"{load_s:.2f}",
            num(count / load_s),
            "",
        ),
        (
            "scan-only (raw limit of local DynamoDB)",
            num(count),
            f"{scan_s:.2f}",
            num(scan_rate),
            f"{scan_rate / limit:.0%}",
        ),
        (
            "bulk-only (raw limit of local search, pre-built docs)",
            num(bulk_count),
            f"{bulk_s:.2f}",
            num(bulk_rate),
            f"{bulk_rate / limit:.0%}",
        ),
    ]
    rates = []
    for n, (segments, seconds, indexed) in enumerate(backfills):
        rate = count / seconds
        rates.append(rate)
        how = "default segments" if n == 0 else f"`--segments {segments}`"
        rows.append(
            (
                f"**backfill** (`run_backfill`, {how}: {segments})",
                num(indexed),
                f"{seconds:.2f}",
                num(rate),
                f"**{rate / limit:.0%}**",
            )
        )
    if read_ahead is not None:
        read_ahead_s, read_ahead_count = read_ahead
        read_ahead_rate = count / read_ahead_s
        rows.append(
            (
                "scan+bulk with one page of read-ahead (bench-side sketch, not ddbsearch)",
                num(read_ahead_count),
                f"{read_ahead_s:.2f}",
                num(read_ahead_rate),
                f"{read_ahead_rate / limit:.0%}",
            )
        )
    section.tables.append(
        table(("Stage", "Items", "Seconds", "Items/s", "vs. smaller raw limit"), rows)
    )
    (backfill_rate,) = rates
    fraction = backfill_rate / limit
    section.notes += [
        f"{num(count)} items of `{data.TABLE}` (~{_item_bytes():,} bytes of JSON each), "
        f"{len(pages)} Scan pages (1 MB each), {requests} `_bulk` requests for bulk-only.",
        "Item counts in the table are what the index holds afterwards (`_count` after a refresh).",
        "moto runs in this process (as in `ddbsearch deploy --local`), osmem-server in its own; "
        "the stages run one after the other, each on a fresh index.",
    ]
    section.metrics = {
        "scan_rate": scan_rate,
        "bulk_rate": bulk_rate,
        "backfill_rate": backfill_rate,
        "fraction": fraction,
    }
    section.targets += [
        Target(
            f"Backfill (default segments) vs. the smaller raw limit ({limit_name})",
            f"{num(backfill_rate)} / {num(limit)} items/s = {fraction:.0%}",
            f">= {TARGET_FRACTION:.0%}",
            fraction >= TARGET_FRACTION,
        ),
    ]
    section.seconds = time.perf_counter() - started
    return section


def _item_bytes() -> int:
    import json

    from ddbsearch.core.documents import to_document

    sample = list(data.items(100))
    return sum(len(json.dumps(to_document(i))) for i in sample) // len(sample)
