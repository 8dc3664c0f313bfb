"""Benchmark 1: handler throughput (CPU) and HTTP requests per 1,000 records.

``ddbsearch.core.stream.Indexer`` handles Lambda-shaped batches of
``defaults.BATCH_SIZE`` records against the instant sink (its own process, so
this process's CPU time is the handler's). Next to it, the naive baseline:
one HTTP request per record, as the original blog post's handler did.
"""

from __future__ import annotations

import cProfile
import gc
import io
import os
import pstats
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bench import data
from bench.report import Section, Target, num, table
from bench.sink import Sink
from ddbsearch import defaults
from ddbsearch.core.documents import document_id, to_document
from ddbsearch.core.stream import Indexer, Settings
from ddbsearch.core.transport import SearchTransport

INDEX = "userstransactions"
RECORDS = 10_000
TARGET_RECORDS_PER_SECOND = 10_000
TARGET_REQUESTS_PER_1000 = 2.0


class Context:
    """What the handler reads from the Lambda context."""

    function_name = "ddbsearch-indexer"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return defaults.FUNCTION_TIMEOUT_SECONDS * 1000


class NaiveIndexer:
    """The blog post's handler, made to handle the same records.

    The post indexed each INSERT with one ``index`` call (and no id). To handle
    MODIFY and REMOVE too, this one PUTs each new image to ``/<index>/_doc/<id>``
    and DELETEs each removed key: one HTTP request per record, on the same
    pooled connection and document conversion as ddbsearch, so the difference
    measured is the request pattern alone.
    """

    def __init__(self, transport: SearchTransport, index: str) -> None:
        self.transport = transport
        self.index = index

    def handle(self, event: Mapping[str, Any], context: Any) -> dict[str, list[Any]]:
        for record in event["Records"]:
            ddb = record["dynamodb"]
            path = f"/{self.index}/_doc/{quote(document_id(ddb['Keys']), safe='')}"
            if record["eventName"] == "REMOVE":
                self.transport.request("DELETE", path)
            else:
                self.transport.json("PUT", path, to_document(ddb["NewImage"]))
        return {"batchItemFailures": []}


@dataclass
class Run:
    label: str
    records: int
    cpu: float
    wall: float
    stats: dict[str, int]

    @property
    def cpu_rate(self) -> float:
        return self.records / self.cpu if self.cpu else float("inf")

    @property
    def wall_rate(self) -> float:
        return self.records / self.wall if self.wall else float("inf")

    @property
    def requests_per_1000(self) -> float:
        return self.stats.get("requests", 0) * 1000 / self.records


Handler = Callable[[Mapping[str, Any], Any], Any]


def _ddbsearch(sink_url: str, *, sigv4: bool, log: io.TextIOBase) -> Handler:
    settings = Settings(
        endpoint=sink_url, index=INDEX, region="us-east-1", dlq_url=None, sigv4=sigv4
    )
    return Indexer(settings, log=log).handle  # type: ignore[arg-type]


def _naive(sink_url: str, *, sigv4: bool) -> Handler:
    return NaiveIndexer(SearchTransport(sink_url, region="us-east-1", sigv4=sigv4), INDEX).handle


def _timed(label: str, handle: Handler, events: Sequence[dict[str, Any]], sink: Sink) -> Run:
    sink.reset()
    records = sum(len(e["Records"]) for e in events)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for event in events:
        result = handle(event, Context())
        if result["batchItemFailures"]:
            raise RuntimeError(f"{label}: the sink reported failures: {result}")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return Run(label, records, cpu, wall, sink.stats())


def _profile(
    handle: Handler, events: Sequence[dict[str, Any]], top: int = 14
) -> tuple[str, dict[str, float]]:
    """cProfile of the handler over the events: top functions by cumulative time, and shares."""
    profiler = cProfile.Profile()
    profiler.enable()
    for event in events:
        handle(event, Context())
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    # The share of the handler's own total (its cumulative time over all batches).
    total = max((v[3] for v in entries.values()), default=1e-9)
    rows: list[tuple[str, ...]] = []
    ranked = sorted(entries.items(), key=lambda kv: kv[1][3], reverse=True)
    shares: dict[str, float] = {}
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in ranked:
        where = _short(filename)
        name = f"{where}:{func}" if line else func
        shares.setdefault(name, cumtime / total)
        if len(rows) < top and not func.startswith("<"):
            rows.append(
                (
                    f"`{name}`",
                    num(ncalls),
                    f"{tottime:.3f}",
                    f"{cumtime:.3f}",
                    f"{100 * cumtime / total:.0f}%",
                )
            )
    header = ("Function", "Calls", "Own s", "Cumulative s", "Share")
    return table(header, rows), shares


def _short(filename: str) -> str:
    for marker in ("ddbsearch/", "site-packages/", "python3."):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "python3." else tail
    return os.path.basename(filename)


OURS = "ddbsearch handler"
NAIVE = "naive baseline (1 request/record)"
OURS_SIGNED = "ddbsearch handler, SigV4 signed"
NAIVE_SIGNED = "naive baseline, SigV4 signed"


def run(
    quick: bool = False,
    *,
    records: int = RECORDS,
    naive_records: int | None = None,
    repeats: int | None = None,
    signed: bool | None = None,
) -> Section:
    """Quick mode: one repetition, the naive baseline on 2,000 records, no SigV4 rows."""
    started = time.perf_counter()
    repeats = repeats or (1 if quick else 5)
    signed = (not quick) if signed is None else signed
    naive_records = naive_records or (min(records, 2000) if quick else records)
    batch = defaults.BATCH_SIZE
    events = data.batches(data.stream_records(records), batch)
    naive_events = data.batches(data.stream_records(naive_records), batch)
    warmup = data.batches(data.stream_records(min(batch, records), seed=99), batch)
    log = io.StringIO()
    section = Section("handler", "1. Handler throughput (CPU) and requests per 1,000 records")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")  # SigV4 rows sign with fake credentials
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with Sink() as sink:
        variants: dict[str, Handler] = {
            OURS: _ddbsearch(sink.url, sigv4=False, log=log),
            NAIVE: _naive(sink.url, sigv4=False),
        }
        if signed:
            variants[OURS_SIGNED] = _ddbsearch(sink.url, sigv4=True, log=log)
            variants[NAIVE_SIGNED] = _naive(sink.url, sigv4=True)
        for handle in variants.values():  # cold start (ensure_index), imports, connections
            for event in warmup:
                handle(event, Context())
        runs: dict[str, list[Run]] = {label: [] for label in variants}
        order = list(variants.items())
        for n in range(repeats):  # interleaved, so drift hits every variant alike
            # Rotated, so that no variant always runs right after the same other one.
            for label, handle in order[n % len(order) :] + order[: n % len(order)]:
                gc.collect()  # no variant pays for the garbage of the one before
                runs[label].append(
                    _timed(label, handle, naive_events if "naive" in label else events, sink)
                )
                log.seek(0)
                log.truncate()
        profile_table, shares = _profile(variants[OURS], events)

    # Best of N (as timeit does): the run least disturbed by the other jobs on
    # this shared machine; the spread of all runs is shown next to it.
    best = {label: min(runs[label], key=lambda r: r.cpu) for label in variants}
    ours, naive = best[OURS], best[NAIVE]
    rows = []
    for label, r in best.items():
        cpu_rates = sorted(x.cpu_rate for x in runs[label])
        rows.append(
            (
                label,
                num(r.records),
                f"{r.cpu:.3f}",
                num(r.cpu_rate),
                f"{num(cpu_rates[0])} - {num(cpu_rates[-1])}",
                f"{r.wall:.3f}",
                num(r.wall_rate),
                num(r.stats.get("requests", 0)),
                f"{r.requests_per_1000:.1f}",
            )
        )
    section.tables.append(
        table(
            (
                "Handler",
                "Records",
                "CPU s",
                "Records/s (CPU)",
                f"Records/s (CPU), all {repeats} runs",
                "Wall s",
                "Records/s (wall)",
                "HTTP requests",
                "Requests / 1,000 records",
            ),
            rows,
        )
    )
    ratio_rows: list[tuple[str, ...]] = [
        ("Records/s, CPU", f"{ours.cpu_rate / naive.cpu_rate:.1f}x"),
        ("Records/s, wall", f"{ours.wall_rate / naive.wall_rate:.1f}x"),
        ("HTTP requests", f"1/{naive.requests_per_1000 / max(ours.requests_per_1000, 1e-9):,.0f}"),
    ]
    headers = ["Ratio (ddbsearch / naive)", "Unsigned"]
    if signed:
        s_ours, s_naive = best[OURS_SIGNED], best[NAIVE_SIGNED]
        headers.append("SigV4 signed")
        ratio_rows = [
            (*ratio_rows[0], f"{s_ours.cpu_rate / s_naive.cpu_rate:.1f}x"),
            (*ratio_rows[1], f"{s_ours.wall_rate / s_naive.wall_rate:.1f}x"),
            (
                *ratio_rows[2],
                f"1/{s_naive.requests_per_1000 / max(s_ours.requests_per_1000, 1e-9):,.0f}",
            ),
        ]
    section.tables.append(table(headers, ratio_rows))
    mix = {
        n: sum(1 for e in events for r in e["Records"] if r["eventName"] == n)
        for n in ("INSERT", "MODIFY", "REMOVE")
    }
    section.notes += [
        f"{num(records)} records ({mix['INSERT']:,} INSERT, {mix['MODIFY']:,} MODIFY, "
        f"{mix['REMOVE']:,} REMOVE) in Lambda events of `defaults.BATCH_SIZE` = {batch:,} "
        f"records; items of `{data.TABLE}` with nested maps, a list of maps and a string set.",
        f"ddbsearch sent {num(ours.stats.get('bulk_items', 0))} bulk items for "
        f"{num(records)} records: a batch collapses to the last change per key.",
        f"Best (least CPU time) of {repeats} interleaved run(s) (order rotated each round, "
        "`gc.collect()` before each) after one warm-up batch per "
        "handler (cold start: index check, imports, connection). CPU = `time.process_time()` "
        "of the benchmark process; the sink runs in another process.",
        "The sink acknowledges instantly but parses every NDJSON line to answer each item; "
        "wall time therefore includes the sink's parsing (on the other core).",
    ]
    section.metrics = {
        "cpu_rate": ours.cpu_rate,
        "wall_rate": ours.wall_rate,
        "requests_per_1000": ours.requests_per_1000,
        "ratio_cpu": ours.cpu_rate / naive.cpu_rate,
        "ratio_wall": ours.wall_rate / naive.wall_rate,
        "profile_table": profile_table,
        "shares": shares,
    }
    section.targets += [
        Target(
            "Handler records/s on one core (CPU time)",
            num(ours.cpu_rate),
            f">= {num(TARGET_RECORDS_PER_SECOND)}",
            ours.cpu_rate >= TARGET_RECORDS_PER_SECOND,
        ),
        Target(
            "HTTP requests per 1,000 records (default batch size)",
            f"{ours.requests_per_1000:.1f}",
            f"<= {TARGET_REQUESTS_PER_1000:.0f}",
            ours.requests_per_1000 <= TARGET_REQUESTS_PER_1000,
        ),
        Target(
            "Ratio to the naive baseline (records/s, CPU / wall)",
            f"{ours.cpu_rate / naive.cpu_rate:.1f}x / {ours.wall_rate / naive.wall_rate:.1f}x",
            "reported",
            True,
            "reported",
        ),
    ]
    section.seconds = time.perf_counter() - started
    return section
