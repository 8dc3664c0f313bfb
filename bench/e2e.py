"""Benchmark 3: put-to-searchable latency on the local stack.

A stack of the benchmark's own (``ddbsearch.local.start_stack`` on a temporary
root: supervisor, moto, osmem-server, stream worker, the built zip in the local
Lambda runtime) with the default mapping. Each put is timed from just before
``PutItem`` until a ``_search`` for its document id returns it (polled every
5 ms); puts are sequential, so each measures an idle pipeline picking up one write.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import data
from bench.report import Section, Target, num, table
from ddbsearch.core.documents import document_id
from ddbsearch.core.transport import SearchTransport

PUTS = 200
QUICK_PUTS = 30
TARGET_P99_SECONDS = 2.0
POLL_SECONDS = 0.005
PUT_TIMEOUT_SECONDS = 30.0
IDLE_POLL_SECONDS = 0.25  # MappingConfig.poll_interval_seconds


def _searchable(transport: SearchTransport, index: str, doc_id: str, marker: str) -> bool:
    query = {
        "query": {
            "bool": {
                "filter": [
                    {"ids": {"values": [doc_id]}},
                    {"term": {"shortDescription.keyword": marker}},
                ]
            }
        }
    }
    resp = transport.json("POST", f"/{index}/_search", query).json()
    total = resp.get("hits", {}).get("total", 0)
    return bool(total.get("value", 0) if isinstance(total, dict) else total)


def _put_and_wait(ddb: Any, transport: SearchTransport, index: str, item: dict[str, Any]) -> float:
    keys = {k: item[k] for k in data.KEY_NAMES}
    doc_id = document_id(keys)
    marker = item["shortDescription"]["S"]
    t0 = time.perf_counter()
    ddb.put_item(TableName=data.TABLE, Item=item)
    deadline = t0 + PUT_TIMEOUT_SECONDS
    while not _searchable(transport, index, doc_id, marker):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"document {doc_id} not searchable after {PUT_TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)
    return time.perf_counter() - t0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def run(quick: bool = False, *, puts: int | None = None) -> Section:
    from ddbsearch.local.deploy import deploy_table
    from ddbsearch.local.stack import start_stack, stop_stack

    started = time.perf_counter()
    count = puts or (QUICK_PUTS if quick else PUTS)
    section = Section("e2e", "3. End-to-end: put-to-searchable latency (local stack)")
    rng = random.Random(5)
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ddbsearch-bench-stack-") as tmp:
        root = Path(tmp) / "stack"
        t0 = time.perf_counter()
        stack = start_stack(root)
        try:
            target = deploy_table(stack, table=data.TABLE, index="e2e")
            ready_s = time.perf_counter() - t0
            ddb = stack.client("dynamodb")
            transport = SearchTransport(stack.osmem_url, sigv4=False)
            # The first put pays the function's cold start; reported apart.
            first = data.item(rng, 1, 0)
            first["shortDescription"] = {"S": "bench-warmup"}
            cold = _put_and_wait(ddb, transport, target.index, first)
            for n in range(count):
                # A random pause, so that puts land at random points of the worker's
                # 250 ms poll cycle instead of locking onto its phase.
                time.sleep(rng.uniform(0, IDLE_POLL_SECONDS))
                item = data.item(rng, 1 + n % 50, 1 + n)
                item["shortDescription"] = {"S": f"bench-{n}"}
                try:
                    latencies.append(_put_and_wait(ddb, transport, target.index, item))
                except TimeoutError as exc:
                    status = stack.mapping_status(data.TABLE)
                    stats = status.stats if status is not None else None
                    log = stack.function_log(data.TABLE)
                    tail = log.read_text()[-800:] if log.exists() else ""
                    raise TimeoutError(
                        f"{exc}; put {n + 1} of {count}; worker: "
                        f"{json.dumps(stats)[:800]}; function log tail: {tail}"
                    ) from None
        finally:
            stop_stack(root)
    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    section.tables.append(
        table(
            (
                "Puts",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "mean ms",
                "first put (cold start) ms",
            ),
            [
                (
                    num(count),
                    ms(p50),
                    ms(p95),
                    ms(p99),
                    ms(max(latencies)),
                    ms(statistics.fmean(latencies)),
                    ms(cold),
                )
            ],
        )
    )
    section.notes += [
        "Stack start + deploy (supervisor, moto, osmem-server, table, index, mapping): "
        f"{ready_s:.1f} s.",
        "Latency = from just before `PutItem` until `_search` (ids + term filter on the new "
        "value) returns the document; polled every 5 ms. One put at a time, after a random "
        "pause of 0-250 ms.",
        "Mapping defaults: batch size 1,000, batching window 0 s; the local worker polls an "
        "idle shard every 250 ms, as Lambda does, so about half of that is the expected floor.",
    ]
    section.metrics = {"p50": p50, "p95": p95, "p99": p99}
    section.targets.append(
        Target(
            "Put-to-searchable p99 (local stack)",
            f"{p99 * 1000:,.0f} ms",
            f"< {TARGET_P99_SECONDS * 1000:,.0f} ms",
            p99 < TARGET_P99_SECONDS,
        )
    )
    section.seconds = time.perf_counter() - started
    return section
