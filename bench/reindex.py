"""Benchmark: reindex throughput next to a plain backfill, and the dual-writing handler.

Part 1, on the emulators (moto's ThreadedMotoServer in this process, osmem-server
in its own): one table, then, interleaved in the same run, ``run_backfill`` into a
fresh index and ``run_reindex`` (no settle or retire wait: nothing else writes)
building the next generation of another fresh index, both with default segments.
The reindex's fill is the backfill's own code targeting the new generation with
its configuration; its verification (a second consistent Scan plus the
generation's ids) and the swap are timed apart.

Part 2, against the instant sink (bench/sink.py): ``core.stream.Indexer`` handling
Lambda-shaped batches with one live generation and with two (serving + building,
as during a reindex): records/s (CPU) and HTTP requests per 1,000 records. The
sink keeps no aliases, so the live set is pinned in a subclass.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import tempfile
import time
from dataclasses import replace
from typing import Any, TextIO

from bench import data
from bench.backfill import _client, _create_table, _load
from bench.handler import Context
from bench.report import Section, Target, num, table
from bench.sink import Sink
from ddbsearch import defaults
from ddbsearch.core.generations import GenerationConfig
from ddbsearch.core.lifecycle import Generation
from ddbsearch.core.stream import Indexer, Settings
from ddbsearch.core.template import ensure_index
from ddbsearch.core.transport import SearchTransport
from ddbsearch.local.emulators import MotoServer, start_osmem

ITEMS = 6_000
QUICK_ITEMS = 2_000
# Smaller than DynamoDB's 1 MB pages (about 3,500 of these items): a whole page in one
# _bulk takes osmem close to the transport's 30 s read timeout on a busy machine.
PAGE_SIZE = 500
RECORDS = 10_000
TARGET_FRACTION = 0.9
INDEX = "userstransactions"


class _Pinned(Indexer):
    """The handler with a fixed live set (the sink answers no alias reads)."""

    def __init__(self, settings: Settings, live: list[Generation], log: TextIO) -> None:
        super().__init__(settings, log=log)
        self._pinned = live

    def live_generations(self) -> list[Generation]:
        return self._pinned


def _fill(quick: bool, count: int, rounds: int) -> dict[str, Any]:
    from ddbsearch.ops.backfill import run_backfill
    from ddbsearch.ops.reindex import run_reindex
    from ddbsearch.targets import Target as PipelineTarget

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = MotoServer.start()
    osmem = start_osmem()
    home = tempfile.TemporaryDirectory(prefix="ddbsearch-bench-")
    old_home = os.environ.get("DDBSEARCH_HOME")
    os.environ["DDBSEARCH_HOME"] = home.name
    backfills: list[float] = []
    fills: list[float] = []
    totals: list[float] = []
    try:
        ddb = _client(moto.url)
        transport = SearchTransport(osmem.url, sigv4=False)
        _create_table(ddb, data.TABLE)
        _load(ddb, data.TABLE, count)
        target = PipelineTarget(
            kind="local",
            name="bench",
            region="us-east-1",
            table=data.TABLE,
            index="unused",
            search_endpoint=osmem.url,
            aws_endpoint=moto.url,
            sigv4=False,
        )

        def backfill(n: int) -> None:
            index = f"plain-{n}"
            ensure_index(transport, index)
            gc.collect()
            summary = run_backfill(replace(target, index=index), page_size=PAGE_SIZE)
            if summary.indexed != count:
                raise RuntimeError(f"backfill indexed {summary.indexed}/{count}")
            backfills.append(summary.seconds)  # the same clock as the reindex's fill
            transport.request("DELETE", f"/{index}-000001")  # the same osmem for both runs

        def reindex(n: int) -> None:
            index = f"rx-{n}"
            ensure_index(transport, index)
            gc.collect()
            t0 = time.perf_counter()
            result = run_reindex(
                replace(target, index=index),
                ttl_deletes="keep",  # a configuration change that keeps the documents the same
                page_size=PAGE_SIZE,
                settle_seconds=0,
                retire_seconds=0,
                verify_wait=0,
            )
            totals.append(time.perf_counter() - t0)
            assert result.fill is not None
            if result.fill.indexed != count or not result.swapped:
                raise RuntimeError(f"reindex: {result.to_json()}")
            fills.append(result.fill.seconds)
            for name in (f"rx-{n}-000002", f"rx-{n}-000001"):
                transport.request("DELETE", f"/{name}")

        # Interleaved, the order swapped every round: drift on this shared machine
        # hits both alike.
        for n in range(rounds):
            for step in (backfill, reindex) if n % 2 == 0 else (reindex, backfill):
                step(n)
    finally:
        if old_home is None:
            os.environ.pop("DDBSEARCH_HOME", None)
        else:
            os.environ["DDBSEARCH_HOME"] = old_home
        home.cleanup()
        osmem.close()
        moto.stop()
    return {"backfills": backfills, "fills": fills, "totals": totals}


def _handler(records: int, repeats: int) -> dict[str, dict[str, float]]:
    batch = defaults.BATCH_SIZE
    events = data.batches(data.stream_records(records), batch)
    warmup = data.batches(data.stream_records(min(batch, records), seed=99), batch)
    log = io.StringIO()
    serving = Generation(f"{INDEX}-000001", GenerationConfig(), True, False, 1)
    building_config = GenerationConfig.create(key_schema=data.KEY_NAMES, exclude=["notes"])
    building = Generation(f"{INDEX}-000002", building_config, False, True, 2)
    out: dict[str, dict[str, float]] = {}
    with Sink() as sink:
        settings = Settings(
            endpoint=sink.url, index=INDEX, region="us-east-1", dlq_url=None, sigv4=False
        )
        variants = {
            "one generation": _Pinned(settings, [serving], log),
            "two generations (reindex running)": _Pinned(settings, [serving, building], log),
        }
        for handler in variants.values():
            for event in warmup:
                handler.handle(event, Context())
        best: dict[str, tuple[float, float, dict[str, int]]] = {}
        for n in range(repeats):
            order = list(variants.items())
            for label, handler in order[n % 2 :] + order[: n % 2]:
                gc.collect()
                sink.reset()
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for event in events:
                    if handler.handle(event, Context())["batchItemFailures"]:
                        raise RuntimeError(f"{label}: failures")
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                if label not in best or cpu < best[label][0]:
                    best[label] = (cpu, wall, sink.stats())
                log.seek(0)
                log.truncate()
    for label, (cpu, wall, stats) in best.items():
        out[label] = {
            "cpu_rate": records / cpu,
            "wall_rate": records / wall,
            "requests": stats.get("requests", 0),
            "requests_per_1000": stats.get("requests", 0) * 1000 / records,
            "bulk_items": stats.get("bulk_items", 0),
        }
    return out


def run(quick: bool = False, *, items: int | None = None) -> Section:
    started = time.perf_counter()
    count = items or (QUICK_ITEMS if quick else ITEMS)
    rounds = 1 if quick else 4
    repeats = 1 if quick else 3
    section = Section("reindex", "8. Reindex throughput next to backfill; the dual-writing handler")

    fill = _fill(quick, count, rounds)
    backfill_s, fill_s, total_s = min(fill["backfills"]), min(fill["fills"]), min(fill["totals"])
    ratio = backfill_s / fill_s
    rates = [
        ("backfill (run_backfill, its Scan and bulk phase)", backfill_s, "100%"),
        ("reindex: fill of the new generation", fill_s, f"{ratio:.0%}"),
        ("reindex: whole (fill + verify + swap)", total_s, f"{backfill_s / total_s:.0%}"),
    ]
    section.tables.append(
        table(
            ("Same table, same run", "Items", "Seconds (best)", "Items/s", "vs backfill"),
            [(label, num(count), f"{s:.2f}", num(count / s), vs) for label, s, vs in rates],
        )
    )
    handler = _handler(min(RECORDS, count * 2) if quick else RECORDS, repeats)
    one = handler["one generation"]
    rows = [
        (
            label,
            num(r["cpu_rate"]),
            num(r["wall_rate"]),
            num(r["requests"]),
            f"{r['requests_per_1000']:.1f}",
            num(r["bulk_items"]),
        )
        for label, r in handler.items()
    ]
    section.tables.append(
        table(
            (
                "Handler (instant sink)",
                "Records/s (CPU)",
                "Records/s (wall)",
                "HTTP requests",
                "Requests / 1,000 records",
                "Bulk items",
            ),
            rows,
        )
    )
    two = handler["two generations (reindex running)"]
    section.notes += [
        f"Part 1: {num(count)} items of `{data.TABLE}`, default segments, Scan pages of "
        f"{PAGE_SIZE} items for both; best of {rounds} "
        "interleaved round(s). The reindex changes the TTL policy, so its documents are the "
        "backfill's (with key-schema ids); its settle and retire waits are 0 (no stream "
        "runs in the benchmark).",
        "The whole reindex adds the verification: a second consistent Scan of the table, "
        "`ids` queries for the table's ids and a `_count` of the generation.",
        f"Part 2: Lambda-shaped batches of {defaults.BATCH_SIZE:,} records; best (least CPU) "
        f"of {repeats} run(s). With two live generations every record becomes two bulk items "
        "in the same `_bulk` request.",
    ]
    section.targets += [
        Target(
            "Reindex fill throughput / backfill throughput (same table, same run)",
            f"{ratio:.0%}",
            f">= {TARGET_FRACTION:.0%}",
            ratio >= TARGET_FRACTION,
        ),
        Target(
            "Handler requests per 1,000 records while dual-writing",
            f"{two['requests_per_1000']:.1f} (one generation: {one['requests_per_1000']:.1f})",
            "same as one generation",
            two["requests_per_1000"] <= one["requests_per_1000"],
        ),
        Target(
            "Handler records/s (CPU) while dual-writing",
            f"{num(two['cpu_rate'])} ({two['cpu_rate'] / one['cpu_rate']:.0%} of one generation)",
            "reported",
            True,
            "reported",
        ),
    ]
    section.metrics = {"ratio": ratio, "handler": handler}
    section.seconds = time.perf_counter() - started
    return section
