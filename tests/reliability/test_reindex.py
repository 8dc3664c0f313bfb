"""A reindex in one history with random writes and bulk faults, the stream dual-writing.

The round, on one pipeline (table -> stream -> worker -> the Lambda zip -> fault proxy
-> osmem), with a writer thread, the stream worker and a prober running all along:

1. a reindex whose new mapping conflicts with the data stops before the swap
   (BuildFailed), and ``abort`` drops the building generation: the serving one is
   exactly the table (oracle);
2. a reindex with a mapping change (date, english text, an excluded nested path)
   is interrupted during its fill, then run again: it resumes from the fill's
   checkpoints, verifies, swaps, and drops the old generation;
3. at the end the oracle compares the alias with the table under the new
   generation's configuration: same ids, same documents.

The prober searches through the alias (straight to osmem, not through the fault
proxy: the faults are the pipeline's, not the reader's) every few milliseconds
and asserts that no search fails and no item that was in the table and indexed
before the reindex began is ever missing. The settle and retire waits are the
real ones (the handler's live-set cache plus the function timeout).
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from ddbsearch.core.lifecycle import LIVE_SET_TTL_SECONDS, list_generations
from ddbsearch.errors import Aborted
from ddbsearch.ops.reindex import BuildFailed, ReindexEvents, abort_reindex, run_reindex
from ddbsearch.testing import oracle

from .conftest import RUN_STATS

TIMEOUT = 5.0  # the function's timeout in this pipeline
GRACE = LIVE_SET_TTL_SECONDS + TIMEOUT + 1
PRE_EXISTING = 60


def item(n: int, rng: random.Random) -> dict[str, Any]:
    return {
        "pk": {"S": f"k{n}"},
        "sk": {"N": str(n)},
        "note": {"S": rng.choice(["running shoes", "ran quickly", "books and tea"]) + f" {n}"},
        "createdAt": {"S": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z"},
        "amount": {"N": str(rng.choice([rng.randint(1, 2**62), rng.randint(1, 999) / 100]))},
        "blob": {"M": {"raw": {"S": "x" * rng.randint(1, 50)}, "kind": {"S": "a"}}},
    }


class Prober(threading.Thread):
    """Searches the alias continuously; records failures and pre-existing items missed."""

    def __init__(self, p: Any, expected: set[str], deleted: set[str]) -> None:
        super().__init__(daemon=True)
        self.p, self.expected, self.deleted = p, expected, deleted
        self.stop = threading.Event()
        self.searches = 0
        self.failures: list[str] = []
        self.misses: list[str] = []

    def run(self) -> None:
        body = {"size": 10_000, "_source": ["pk"], "query": {"match_all": {}}}
        while not self.stop.is_set():
            resp = self.p.search.json("POST", f"/{self.p.index}/_search", body)
            self.searches += 1
            if resp.status != 200:
                self.failures.append(f"{resp.status}: {resp.body[:200]!r}")
                continue
            found = {h["_source"]["pk"] for h in resp.json()["hits"]["hits"]}
            missing = self.expected - found - self.deleted
            if missing:
                self.misses.append(sorted(missing)[0])
            time.sleep(0.02)


def test_reindex_with_a_mapping_change_under_writes_faults_abort_and_resume(
    pipeline: Any,
) -> None:
    rng = random.Random(11)
    p = pipeline(batch_size=20, timeout=TIMEOUT)
    target = p.target()
    try:
        for n in range(PRE_EXISTING):
            p.ddb.put_item(TableName=p.table, Item=item(n, rng))
        p.drain()
        assert p.diff().ok
        # Indexed (refreshed) before the reindex begins: these must never be missed.
        p.search.request("POST", f"/{p.index}/_refresh")
        pre_existing = {f"k{n}" for n in range(PRE_EXISTING)}

        stop = threading.Event()
        deleted: set[str] = set()
        writes = {"put": 0, "update": 0, "delete": 0}

        def work() -> None:
            while not stop.is_set():
                if not p.worker.step():
                    time.sleep(0.01)

        def write() -> None:
            wrng = random.Random(12)
            next_key = PRE_EXISTING
            while not stop.is_set():
                roll = wrng.random()
                if roll < 0.4:
                    p.ddb.put_item(TableName=p.table, Item=item(next_key, wrng))
                    next_key += 1
                    writes["put"] += 1
                elif roll < 0.85:
                    n = wrng.randrange(next_key)
                    if f"k{n}" not in deleted:
                        p.ddb.put_item(TableName=p.table, Item=item(n, wrng))
                        writes["update"] += 1
                elif next_key > PRE_EXISTING:
                    # Only items made during the history are deleted: the prober's
                    # promise is about the ones indexed before the reindex.
                    n = wrng.randrange(PRE_EXISTING, next_key)
                    key = {"pk": {"S": f"k{n}"}, "sk": {"N": str(n)}}
                    p.ddb.delete_item(TableName=p.table, Key=key)
                    deleted.add(f"k{n}")
                    writes["delete"] += 1
                time.sleep(0.03)

        worker = threading.Thread(target=work, daemon=True)
        writer = threading.Thread(target=write, daemon=True)
        prober = Prober(p, pre_existing, deleted)
        p.proxy.random_faults(13, 0.15)
        worker.start()
        writer.start()
        prober.start()
        try:
            # 1. A mapping the data contradicts: stopped before the swap, then aborted.
            with pytest.raises(BuildFailed) as failed:
                run_reindex(
                    target,
                    mapping={"note": "long"},
                    segments=2,
                    page_size=7,
                    settle_seconds=GRACE,
                    retire_seconds=GRACE,
                )
            assert "field 'note' (mapped as long)" in failed.value.message
            aborted = abort_reindex(target, retire_seconds=GRACE)
            assert aborted.dropped == [f"{p.index}-000002"]

            # 2. The mapping change, interrupted during the fill, then resumed.
            interrupt = threading.Event()
            events = ReindexEvents(progress=lambda n: interrupt.set())
            change = {
                "mapping": {"createdAt": "date", "note": {"type": "text", "analyzer": "english"}},
                "exclude": ["blob.raw"],
            }
            with pytest.raises(Aborted):
                run_reindex(
                    target,
                    **change,  # type: ignore[arg-type]
                    segments=2,
                    page_size=7,
                    settle_seconds=GRACE,
                    retire_seconds=GRACE,
                    events=events,
                    stop=interrupt,
                )
            summary = run_reindex(target, page_size=7, settle_seconds=GRACE, retire_seconds=GRACE)
            assert summary.resumed
            assert summary.swapped
            assert summary.fill is not None
            assert summary.fill.resumed
            assert summary.dropped == [f"{p.index}-000001"]
            assert summary.verify is not None
            assert summary.verify.ok
        finally:
            stop.set()
            writer.join()
            prober.stop.set()
            prober.join()
            worker.join()
        p.proxy.clear()
        p.drain()

        assert prober.failures == [], prober.failures[:3]
        assert prober.misses == [], prober.misses[:3]
        assert prober.searches > 100
        gens = {g.name: g for g in list_generations(p.search, p.index)}
        # The aborted generation's number is free again: the next one takes it.
        final = f"{p.index}-000002"
        assert list(gens) == [final]
        config = gens[final].config
        assert config is not None
        assert config.exclude == ("blob.raw",)
        diff = oracle.diff_index(p.ddb, p.table, p.search, p.index, config=config)
        RUN_STATS["comparisons"] += 1
        RUN_STATS["documents_compared"] += diff.compared
        RUN_STATS["mismatches"] += diff.mismatches
        assert diff.ok, diff.summary()
        assert diff.compared >= PRE_EXISTING
        docs = oracle.index_documents(p.search, p.index)
        assert all("raw" not in d.get("blob", {}) for d in docs.values())
        mapping = p.search.request("GET", f"/{final}/_mapping").json()
        props = mapping[final]["mappings"]["properties"]
        assert props["createdAt"]["type"] == "date"
        RUN_STATS["operations"]["reindex_writes"] += sum(writes.values())
        RUN_STATS["operations"]["reindex_probes"] += prober.searches
        RUN_STATS["operations"]["reindexes"] += 2
        RUN_STATS["operations"]["reindex_aborts"] += 1
        RUN_STATS["operations"]["reindex_resumes"] += 1
        RUN_STATS["tests"]["reindex"] += 1
        assert writes["put"] > 0
        assert writes["update"] > 0
    finally:
        p.search.request("DELETE", f"/{p.index}-*")
