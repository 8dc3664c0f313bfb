"""Benchmark 5: export load throughput (2 and 4 loaders) next to the raw bulk limit and
the Scan backfill, on one table, in one run.

The local stack's own pieces: a supervisor (moto + osmem-server), the table loaded
before its stream exists, moto's ``ExportTableToPointInTime`` into its S3, and the
local map runner (``ddbsearch.local.maprunner``) invoking the built zip's
``handler.load_file`` in local Lambda runtime children, ``max_concurrency`` at a
time. moto writes an export as one data file; AWS writes many (one per partition
range), so the bench re-cuts moto's file into ``FILES`` files of equal size under a
prefix of its own (the same rows, the same format), which is what the map fans out
over. Each load writes a fresh index.

* bulk-only: the rows as pre-built actions through ``BulkIndexer`` in the loader's
  chunk size (1,000), with 1, 2 and 4 concurrent streams; the best is the raw limit
  of the local search backend;
* Scan backfill: ``run_backfill`` (default segments) on the same table;
* export load, 2 and 4 loaders: from ``start_load`` to the map run's end (cold
  starts of the runtime children included; the export itself is timed apart).
"""

from __future__ import annotations

import gzip
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import data
from bench.report import Section, Target, num, table
from ddbsearch.core.bulk import BulkIndexer, Outcome
from ddbsearch.core.documents import action_from_item, backfill_version
from ddbsearch.core.export import CHUNK_ROWS, gzip_lines, list_data_files
from ddbsearch.core.template import ensure_index
from ddbsearch.core.transport import SearchTransport

ITEMS = 20_000
QUICK_ITEMS = 2_000
FILES = 8
TARGET_FRACTION = 0.8


def _count(transport: SearchTransport, index: str) -> int:
    transport.request("POST", f"/{index}/_refresh")
    return int(transport.json("GET", f"/{index}/_count").json().get("count", -1))


def _recut(s3: Any, bucket: str, key: str, prefix: str, parts: int) -> list[dict[str, Any]]:
    lines = list(gzip_lines(s3.get_object(Bucket=bucket, Key=key)["Body"]))
    size = -(-len(lines) // parts)
    files = []
    for n in range(parts):
        body = gzip.compress(b"".join(lines[n * size : (n + 1) * size]))
        part = f"{prefix}/AWSDynamoDB/bench/data/{n:03d}.json.gz"
        s3.put_object(Bucket=bucket, Key=part, Body=body)
        files.append({"key": part, "size": len(body), "items": None})
    return files


def _bulk_part(url: str, index: str, chunks: list[list[Any]]) -> None:
    indexer = BulkIndexer(SearchTransport(url, sigv4=False), index)
    for chunk in chunks:
        report = indexer.run(chunk, deadline=time.monotonic() + 300)
        if any(r.outcome is not Outcome.INDEXED for r in report.results):
            raise RuntimeError("bulk-only: some items were not indexed")


def run(quick: bool = False, *, items: int | None = None) -> Section:
    from ddbsearch.local import maprunner
    from ddbsearch.local.deploy import deploy_table
    from ddbsearch.local.stack import start_stack, stop_stack
    from ddbsearch.ops import export_load
    from ddbsearch.ops.backfill import run_backfill

    started = time.perf_counter()
    count = items or (QUICK_ITEMS if quick else ITEMS)
    section = Section("export", "7. Export load (map runner, 2 and 4 loaders) next to the limits")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    home = tempfile.TemporaryDirectory(prefix="ddbsearch-bench-export-")
    old_home = os.environ.get("DDBSEARCH_HOME")
    os.environ["DDBSEARCH_HOME"] = home.name
    root = Path(home.name) / "stack"
    stack = start_stack(root)
    loads: dict[int, tuple[float, int, int]] = {}  # workers -> seconds, indexed, invocations
    try:
        ddb = stack.client("dynamodb")
        ddb.create_table(
            TableName=data.TABLE,
            KeySchema=[
                {"AttributeName": "userId", "KeyType": "HASH"},
                {"AttributeName": "transactionId", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "userId", "AttributeType": "N"},
                {"AttributeName": "transactionId", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        batch: list[dict[str, Any]] = []
        for item in data.items(count):
            batch.append({"PutRequest": {"Item": item}})
            if len(batch) == 25:
                ddb.batch_write_item(RequestItems={data.TABLE: batch})
                batch = []
        if batch:
            ddb.batch_write_item(RequestItems={data.TABLE: batch})
        target = deploy_table(
            stack,
            table=data.TABLE,
            keys=(("userId", "N"), ("transactionId", "N")),
            index="unused",
        )
        transport = SearchTransport(stack.osmem_url, sigv4=False)

        # The export (moto's), timed apart, re-cut into FILES files.
        t0 = time.perf_counter()
        export = export_load.wait_export(target, export_load.start_export(target))
        export_s = time.perf_counter() - t0
        s3 = stack.client("s3")
        bucket = str(export["S3Bucket"])
        _, (moto_file,) = list_data_files(s3, bucket, str(export["S3Prefix"]))
        files = _recut(s3, bucket, moto_file.key, "bench-recut", FILES)
        version = backfill_version(time.time())

        # Raw limit: bulk only, pre-built actions in the loader's chunk size, with 1, 2
        # and 4 concurrent streams (as many as the loaders), each on a fresh index.
        actions = [action_from_item(i, data.KEY_NAMES, version) for i in data.items(count)]
        bulk: dict[int, float] = {}
        for streams in (1, 2, 4):
            index = f"bulk-only-{streams}"
            ensure_index(transport, index)
            chunks = [actions[n : n + CHUNK_ROWS] for n in range(0, count, CHUNK_ROWS)]
            t0 = time.perf_counter()
            parts = [chunks[k::streams] for k in range(streams)]
            with ThreadPoolExecutor(streams) as pool:
                futures = [pool.submit(_bulk_part, stack.osmem_url, index, p) for p in parts]
                for future in futures:
                    future.result()
            bulk[streams] = time.perf_counter() - t0

        # Scan backfill, same table.
        ensure_index(transport, "scan-backfill")
        t0 = time.perf_counter()
        summary = run_backfill(replace(target, index="scan-backfill"))
        scan_s = time.perf_counter() - t0
        if summary.indexed != count:
            raise RuntimeError(f"backfill indexed {summary.indexed}/{count}")

        mapping_env = export_load._local_mapping(target)
        for workers in (2, 4):
            index = f"export-{workers}"
            ensure_index(transport, index)
            spec = maprunner.LoadSpec(
                run_id=f"bench-{workers}",
                bucket=bucket,
                files=files,
                key_names=list(data.KEY_NAMES),
                version=version,
                zip_path=str(mapping_env["zip_path"]),
                environment={**mapping_env["environment"], "INDEX_NAME": index},
                moto_url=stack.moto_url,
                result_bucket=bucket,
                result_prefix="load-results",
                map={"max_concurrency": workers},
            )
            run_dir = root / "bench-loads" / str(workers)
            t0 = time.perf_counter()
            mr = maprunner.MapRun(run_dir, spec)
            state = mr.run()
            seconds = time.perf_counter() - t0
            if state != maprunner.SUCCEEDED:
                raise RuntimeError(f"export load with {workers} loaders ended {state}")
            invocations = sum(f.invocations for f in mr.files)
            loads[workers] = (seconds, _count(transport, index), invocations)
    finally:
        stop_stack(root)
        if old_home is None:
            os.environ.pop("DDBSEARCH_HOME", None)
        else:
            os.environ["DDBSEARCH_HOME"] = old_home
        home.cleanup()

    bulk_rate = max(count / seconds for seconds in bulk.values())
    scan_rate = count / scan_s
    rows = [
        ("export (moto `ExportTableToPointInTime`; not in the load)", num(count),
         f"{export_s:.2f}", "", ""),
    ]  # fmt: skip
    for streams, seconds in bulk.items():
        rate = count / seconds
        rows.append(
            (
                f"bulk-only, {streams} stream(s) (pre-built docs, 1,000 per `_bulk`)",
                num(count),
                f"{seconds:.2f}",
                num(rate),
                f"{rate / bulk_rate:.0%}",
            )
        )
    rows.append(
        ("Scan backfill (`run_backfill`, default segments)", num(count),
         f"{scan_s:.2f}", num(scan_rate), f"{scan_rate / bulk_rate:.0%}")
    )  # fmt: skip
    best = 0.0
    for workers, (seconds, indexed, invocations) in sorted(loads.items()):
        rate = count / seconds
        best = max(best, rate)
        rows.append(
            (
                f"**export load**, {workers} loaders ({FILES} files, {invocations} invocations)",
                num(indexed),
                f"{seconds:.2f}",
                num(rate),
                f"**{rate / bulk_rate:.0%}**",
            )
        )
    section.tables.append(
        table(("Stage", "Items", "Seconds", "Items/s", "vs. best bulk-only"), rows)
    )
    section.notes += [
        f"{num(count)} items of `{data.TABLE}`; moto's one export file re-cut into {FILES} "
        "files (AWS writes many); each stage on a fresh index, one after the other.",
        "The loaders are local Lambda runtime children running the built zip "
        "(`handler.load_file`), started by the map runner; their cold starts are in the time.",
    ]
    fraction = best / bulk_rate
    section.metrics = {"bulk_rate": bulk_rate, "scan_rate": scan_rate, "best_rate": best}
    section.targets.append(
        Target(
            "Export load (best of 2, 4 loaders) vs. the best bulk-only (1, 2, 4 streams)",
            f"{num(best)} / {num(bulk_rate)} items/s = {fraction:.0%}",
            f">= {TARGET_FRACTION:.0%}",
            fraction >= TARGET_FRACTION,
        )
    )
    section.seconds = time.perf_counter() - started
    return section
