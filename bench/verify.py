"""Benchmark 6: verify throughput next to the raw Scan and index-read limits, and its
peak memory as the table grows, measured in one run.

Local DynamoDB: moto's server in a child process (not in this one, as the other
benchmarks run it, so that ``tracemalloc`` measures verify and not moto, and moto's
work does not share verify's GIL); local search: osmem-server.
The table is loaded and the index filled with the same documents (pre-built actions,
no pipeline), so the two sides agree and verify reads, fingerprints and compares
everything once. The limits, on the same data:

* scan-only: a paginated, eventually consistent Scan (verify's reads), items discarded;
* index-read-only: a point in time + ``search_after`` read of every document with its
  source and version (verify's index reads), documents discarded.

verify runs both reads at once, so its ceiling is the slower of the two. Peak memory:
``tracemalloc`` around ``run_verify`` on a table of a fifth of the size and on the
full one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

from bench import data
from bench.backfill import _client, _create_table, _load
from bench.report import Section, Target, num, table
from ddbsearch.core.bulk import BulkIndexer, Outcome
from ddbsearch.core.documents import action_from_item, backfill_version
from ddbsearch.core.template import ensure_index
from ddbsearch.core.transport import SearchTransport
from ddbsearch.local.emulators import port_accepts, start_osmem
from ddbsearch.ops.index_reader import IndexReader

# moto's Scan walks the table up to its start key and deep-copies every item of a page,
# so full reads cost O(n^2), and one page of a large table can outlast botocore's 30 s
# read timeout on a busy machine: 10,000 items keep the five full reads to minutes.
ITEMS = 10_000
QUICK_ITEMS = 2_500
TARGET_FRACTION = 0.8
MEMORY_GROWTH_LIMIT = 1.5  # peak(5x items) / peak(1x items)
# verify holds one Scan page per segment in flight; DynamoDB's default 1 MB page is
# about 2,500 of these items, so on small tables the page, not the table, sets the
# peak. The memory runs use the same smaller page on both sizes.
MEMORY_PAGE_SIZE = 250


@contextlib.contextmanager
def _moto_process() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_accepts(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # busy serving a request: stop it harder
            proc.kill()
            proc.wait(timeout=10)


def _fill(ddb: Any, transport: SearchTransport, name: str, index: str, count: int) -> None:
    _create_table(ddb, name)
    _load(ddb, name, count)
    ensure_index(transport, index)
    indexer = BulkIndexer(transport, index)
    version = backfill_version(time.time() - 3600)
    batch: list[Any] = []
    for item in data.items(count):
        batch.append(action_from_item(item, data.KEY_NAMES, version))
        if len(batch) == 1000:
            _index(indexer, batch)
            batch = []
    if batch:
        _index(indexer, batch)
    transport.request("POST", f"/{index}/_refresh")


def _index(indexer: BulkIndexer, actions: list[Any]) -> None:
    report = indexer.run(actions, deadline=time.monotonic() + 300)
    if any(r.outcome is not Outcome.INDEXED for r in report.results):
        raise RuntimeError("could not fill the index")


def _scan(ddb: Any, name: str) -> int:
    kwargs: dict[str, Any] = {"TableName": name, "ReturnConsumedCapacity": "TOTAL"}
    seen = 0
    while True:
        page = ddb.scan(**kwargs)
        seen += len(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return seen
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _read_index(transport: SearchTransport, index: str) -> tuple[int, str]:
    reader = IndexReader(transport, index)
    seen = sum(len(page) for page in reader.documents())
    return seen, reader.method


def run(quick: bool = False, *, items: int | None = None) -> Section:
    from ddbsearch.ops.verify import run_verify
    from ddbsearch.targets import Target as PipelineTarget

    started = time.perf_counter()
    count = items or (QUICK_ITEMS if quick else ITEMS)
    small = max(1, count // 5)
    section = Section("verify", "6. Verify throughput next to the raw limits; memory")
    moto_server = _moto_process()
    moto_url = moto_server.__enter__()
    osmem = start_osmem()
    home = tempfile.TemporaryDirectory(prefix="ddbsearch-bench-")
    old_home = os.environ.get("DDBSEARCH_HOME")
    os.environ["DDBSEARCH_HOME"] = home.name  # verify's partitions and record live there
    try:
        ddb = _client(moto_url)
        transport = SearchTransport(osmem.url, sigv4=False)
        t0 = time.perf_counter()
        _fill(ddb, transport, "big", "big", count)
        _fill(ddb, transport, "small", "small", small)
        load_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        scanned = _scan(ddb, "big")
        scan_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        read, method = _read_index(transport, "big")
        read_s = time.perf_counter() - t0
        if (scanned, read) != (count, count):
            raise RuntimeError(f"raw reads saw {scanned} items and {read} documents, not {count}")

        def target(name: str) -> PipelineTarget:
            return PipelineTarget(
                kind="local",
                name="bench",
                region="us-east-1",
                table=name,
                index=name,
                search_endpoint=osmem.url,
                aws_endpoint=moto_url,
                sigv4=False,
            )

        # The machine is shared: verify and the raw reads take turns, twice, and each
        # is credited with its faster run, so no side gets the quieter moment alone.
        verify_s = float("inf")
        for turn in range(2):
            t0 = time.perf_counter()
            report = run_verify(target("big"), settle_seconds=0)
            verify_s = min(verify_s, time.perf_counter() - t0)
            if report.result != "equal" or report.items != count:
                raise RuntimeError(f"verify did not find the sides equal: {report.to_json()}")
            if turn == 0:
                t0 = time.perf_counter()
                _scan(ddb, "big")
                scan_s = min(scan_s, time.perf_counter() - t0)
                t0 = time.perf_counter()
                _read_index(transport, "big")
                read_s = min(read_s, time.perf_counter() - t0)

        peaks = {}
        for name, n in (("small", small), ("big", count)):
            tracemalloc.start()
            try:
                checked = run_verify(target(name), settle_seconds=0, page_size=MEMORY_PAGE_SIZE)
                peaks[n] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            if checked.result != "equal":
                raise RuntimeError(f"verify ({name}) found drift: {checked.to_json()}")
    finally:
        if old_home is None:
            os.environ.pop("DDBSEARCH_HOME", None)
        else:
            os.environ["DDBSEARCH_HOME"] = old_home
        home.cleanup()
        osmem.close()
        moto_server.__exit__(None, None, None)

    scan_rate, read_rate, verify_rate = count / scan_s, count / read_s, count / verify_s
    limit = min(scan_rate, read_rate)
    limit_name = "scan-only" if scan_rate <= read_rate else "index-read-only"
    fraction = verify_rate / limit
    section.tables.append(
        table(
            ("Stage", "Items", "Seconds", "Items/s", "vs. slower raw limit"),
            [
                ("load table + fill index (setup)", num(count + small), f"{load_s:.2f}", "", ""),
                (
                    "scan-only (eventually consistent Scan; faster of 2 runs)",
                    num(count),
                    f"{scan_s:.2f}",
                    num(scan_rate),
                    f"{scan_rate / limit:.0%}",
                ),
                (
                    f"index-read-only ({method} + search_after; faster of 2 runs)",
                    num(count),
                    f"{read_s:.2f}",
                    num(read_rate),
                    f"{read_rate / limit:.0%}",
                ),
                (
                    f"**verify** (`run_verify`, {report.segments} segment(s), "
                    f"{report.partitions} partitions; faster of 2 runs)",
                    num(report.items),
                    f"{verify_s:.2f}",
                    num(verify_rate),
                    f"**{fraction:.0%}**",
                ),
            ],
        )
    )
    growth = peaks[count] / peaks[small]
    section.tables.append(
        table(
            ("Table", "Items", "Peak traced memory (MiB)"),
            [
                ("small", num(small), f"{peaks[small] / 2**20:.1f}"),
                ("large", num(count), f"{peaks[count] / 2**20:.1f}"),
            ],
        )
    )
    section.notes += [
        f"{num(count)} items of `{data.TABLE}` in the table and the same documents in the "
        "index; both sides agree, so the re-check has nothing to read.",
        "verify reads both sides at once (one thread for the index, one per Scan segment) "
        "and fingerprints every item through the document model and every document.",
        "Peak memory is `tracemalloc`'s peak around the whole `run_verify` call (moto runs "
        "in its own process here, so only the verify side is measured), with "
        f"`--page-size {MEMORY_PAGE_SIZE}` on both tables: a default 1 MB Scan page holds "
        "about 2,500 of these items and would otherwise set a small table's peak.",
    ]
    section.metrics = {
        "scan_rate": scan_rate,
        "read_rate": read_rate,
        "verify_rate": verify_rate,
        "fraction": fraction,
        "memory_growth": growth,
    }
    section.targets += [
        Target(
            f"verify vs. the slower raw limit ({limit_name})",
            f"{num(verify_rate)} / {num(limit)} items/s = {fraction:.0%}",
            f">= {TARGET_FRACTION:.0%}",
            fraction >= TARGET_FRACTION,
        ),
        Target(
            "verify peak memory, 5x the items",
            f"{growth:.2f}x ({peaks[small] / 2**20:.1f} -> {peaks[count] / 2**20:.1f} MiB)",
            f"<= {MEMORY_GROWTH_LIMIT}x",
            growth <= MEMORY_GROWTH_LIMIT,
        ),
    ]
    section.seconds = time.perf_counter() - started
    return section
