"""Verify: compare the whole table with the serving index, item by item, and repair.

1. **Read both sides at once.** A paced parallel Scan (eventually consistent: half
   the read capacity of a consistent one) turns every item into the document the
   shared model makes of it, and the index is read once through a point in time
   (:mod:`ddbsearch.ops.index_reader`). Each side writes ``(id, fingerprint,
   version)`` records into on-disk partitions (:mod:`ddbsearch.ops.partitions`), so
   memory stays bounded whatever the table's size.
2. **Compare partition by partition**: missing documents, orphans (no item),
   stale documents (other content than the model makes of the item), older versions
   (when both versions are known) and unindexable items (the model rejects them).
3. **Re-check every difference** before reporting it. Each one is read again, the
   item with a consistent GetItem and the document with a real-time ``_mget``;
   what now agrees was a write in flight. What still differs is read again after
   ``settle_seconds`` (longer than the pipeline's lag): it is drift only if the item
   did not change in between and the document still differs. An item that changes
   at every re-check is counted as *unsettled*, not as drift.
4. **Repair** (``repair=True``) each confirmed difference through the shared model,
   with the backfill's version rule: a missing or stale document is indexed from the
   item just read, at ``backfill_version(read time)``, which loses to any stream
   write made after that read; an orphan is deleted at that version only if the
   consistent read found no item. Nothing is written without ``repair``.

The result (counts, duration, outcome) is saved for ``status``
(:mod:`ddbsearch.ops.verify_record`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ddbsearch import clients
from ddbsearch.core.bulk import BulkIndexer, Outcome
from ddbsearch.core.documents import (
    Action,
    InvalidDocument,
    backfill_version,
)
from ddbsearch.core.pacing import Pacer
from ddbsearch.core.transport import SearchTransport
from ddbsearch.errors import Aborted, InputError
from ddbsearch.ops.backfill import default_segments, read_budget
from ddbsearch.ops.index_reader import IndexDoc, IndexReader, get_documents
from ddbsearch.ops.keys import decode_keys, encode_keys, keys_from_source
from ddbsearch.ops.model import Model
from ddbsearch.ops.partitions import (
    INVALID_PREFIX,
    Candidate,
    Kind,
    PartitionStore,
    classify,
    fingerprint,
    invalid_marker,
    partition_count,
)
from ddbsearch.ops.verify_record import VerifyRecord, save_last_verify
from ddbsearch.tables import TableInfo, describe_table
from ddbsearch.targets import Target, state_home

KINDS: tuple[Kind, ...] = ("missing", "orphan", "stale", "older", "unindexable")
DEFAULT_SETTLE_SECONDS = 5.0
DEFAULT_ROUNDS = 3
DEFAULT_SAMPLE = 10
RECHECK_BATCH = 100  # BatchGetItem takes at most 100 keys
REPAIR_DEADLINE_SECONDS = 120.0
MAX_WORKERS = 64

Result = Literal["equal", "drift", "repaired"]


@dataclass(frozen=True, slots=True)
class Difference:
    """One confirmed difference (ids and reasons only: never item contents)."""

    kind: Kind
    doc_id: str
    reason: str | None = None  # why the model rejects the item (unindexable / its stale doc)
    doc_version: int | None = None
    repair: str | None = None  # what --repair did: indexed, deleted, superseded, failed: ...

    @property
    def repaired(self) -> bool:
        return self.repair in ("indexed", "deleted", "superseded")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "id": self.doc_id}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.doc_version is not None:
            out["doc_version"] = self.doc_version
        if self.repair is not None:
            out["repair"] = self.repair
        return out


@dataclass
class VerifyReport:
    table: str
    index: str
    segments: int = 0
    partitions: int = 0
    index_read: str = "point in time"
    index_read_note: str | None = None
    estimated_items: int = 0
    index_documents: int = 0  # the index's count when the run started
    items: int = 0  # items read from the table
    documents: int = 0  # documents read from the index
    candidates: int = 0  # differences before the re-check
    in_flight: int = 0  # differences that a re-check found resolved (writes in flight)
    unsettled: int = 0  # items that changed at every re-check: not reported as drift
    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    repair: bool = False
    repairs: Counter[str] = field(default_factory=Counter)  # outcome -> count
    consumed_rcu: float = 0.0
    seconds: float = 0.0
    finished_at: float = 0.0

    @property
    def drift(self) -> int:
        return sum(self.counts.values())

    @property
    def repaired(self) -> int:
        return sum(n for k, n in self.repairs.items() if k in ("indexed", "deleted", "superseded"))

    @property
    def unrepaired(self) -> int:
        return self.drift - self.repaired

    @property
    def result(self) -> Result:
        if not self.drift:
            return "equal"
        if self.repair and not self.unrepaired:
            return "repaired"
        return "drift"

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "index": self.index,
            "result": self.result,
            "drift": self.drift,
            "counts": {k: self.counts.get(k, 0) for k in KINDS},
            "samples": {k: v for k, v in self.samples.items() if v},
            "items": self.items,
            "documents": self.documents,
            "candidates": self.candidates,
            "in_flight": self.in_flight,
            "unsettled": self.unsettled,
            "repair": self.repair,
            "repairs": dict(self.repairs),
            "repaired": self.repaired,
            "unrepaired": self.unrepaired if self.repair else None,
            "segments": self.segments,
            "partitions": self.partitions,
            "index_read": self.index_read,
            "index_read_note": self.index_read_note,
            "consumed_rcu": round(self.consumed_rcu, 1),
            "seconds": round(self.seconds, 3),
        }


ProgressFn = Callable[[str, int], None]  # (side: "table" | "index" | "recheck", count)


# --------------------------------------------------------------------------- reading


@dataclass
class _Run:
    target: Target
    table: TableInfo
    ddb: Any
    transport: SearchTransport
    store: PartitionStore
    pacer: Pacer
    report: VerifyReport
    stop: threading.Event
    on_progress: ProgressFn | None
    page_size: int | None
    model: Model
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def read_index_name(self) -> str:
        """Where single documents are read: the serving generation (``_mget`` needs one index)."""
        return self.model.serving or self.target.index

    def progress(self, side: str, n: int) -> None:
        if self.on_progress is not None and n:
            self.on_progress(side, n)

    def scan_segment(self, segment: int) -> None:
        """Scan one segment; each page is fingerprinted while the next one is read."""
        start_key: dict[str, Any] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix=f"verify-{segment}") as digest:
            pending: Future[None] | None = None
            try:
                while not self.stop.is_set():
                    self.pacer.wait(self.stop)
                    if self.stop.is_set():
                        return
                    kwargs: dict[str, Any] = {
                        "TableName": self.table.name,
                        # Eventually consistent: every difference is re-read consistently.
                        "ConsistentRead": False,
                        "ReturnConsumedCapacity": "TOTAL",
                    }
                    if self.report.segments > 1:  # one segment is a plain Scan (moto hashes
                        # every item's key per page for a segmented one)
                        kwargs.update(Segment=segment, TotalSegments=self.report.segments)
                    if start_key:
                        kwargs["ExclusiveStartKey"] = start_key
                    if self.page_size:
                        kwargs["Limit"] = self.page_size
                    with clients.aws_errors(f"scanning table '{self.table.name}'"):
                        page = self.ddb.scan(**kwargs)
                    units = float((page.get("ConsumedCapacity") or {}).get("CapacityUnits", 0.0))
                    self.pacer.spend(units)
                    if pending is not None:
                        pending.result()  # one page in hand at most: memory stays bounded
                    pending = digest.submit(self._record_page, page.get("Items", []), units)
                    start_key = page.get("LastEvaluatedKey")
                    if not start_key:
                        return
            finally:
                if pending is not None:
                    pending.result()

    def _record_page(self, items: list[dict[str, Any]], units: float) -> None:
        for item in items:
            doc_id, fp, version, keys = table_record(item, self.model)
            self.store.add("table", doc_id, fp, version, encode_keys(keys))
        with self.lock:
            self.report.items += len(items)
            self.report.consumed_rcu += units
        self.progress("table", len(items))

    def read_index(self) -> None:
        reader = IndexReader(self.transport, self.target.index)
        try:
            for page in reader.documents():
                for doc in page:
                    self.store.add("index", doc.doc_id, fingerprint(doc.source), doc.version)
                with self.lock:
                    self.report.documents += len(page)
                self.progress("index", len(page))
                if self.stop.is_set():
                    return
        finally:
            self.report.index_read = reader.method
            self.report.index_read_note = reader.fallback_reason


def table_record(
    item: Mapping[str, Any], model: Model
) -> tuple[str, str, int | None, dict[str, Any]]:
    """(document id, fingerprint or "!reason", the item's version if known, key) of one item,
    through the shared document model."""
    keys = model.keys_of(item)
    try:
        doc_id, document, version = model.document(item)
    except InvalidDocument as exc:
        return model.doc_id(keys), invalid_marker(exc.reason), None, keys
    return doc_id, fingerprint(document), version, keys


def _execute(tasks: list[Callable[[], None]], stop: threading.Event) -> None:
    """Run the readers; the first error (or Ctrl-C) stops the others."""
    pool = ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="verify")
    futures: list[Future[None]] = [pool.submit(task) for task in tasks]
    try:
        pending: set[Future[None]] = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                stop.set()
    except KeyboardInterrupt:
        stop.set()
        wait(futures)
        raise
    finally:
        pool.shutdown(wait=True)
    for f in futures:
        exc = f.exception()
        if exc is not None:
            raise exc


# --------------------------------------------------------------------------- re-check


@dataclass
class _Recheck:
    """Reads candidates again, consistently, and decides which are drift."""

    run: _Run
    key_types: dict[str, str]
    repair: bool
    bulk: BulkIndexer | None
    on_difference: Callable[[Difference], None] | None
    sample: int
    before_repair: Callable[[list[str]], None] | None = None

    def batch(self, candidates: list[Candidate], *, final: bool) -> Iterator[Candidate]:
        """Re-read a batch; yield what still differs (to re-check later) unless ``final``.

        With ``final`` (a later round) a difference whose item has not changed since
        the previous round is confirmed, reported and, with repair, repaired.
        """
        ids = [c.doc_id for c in candidates]
        docs = get_documents(self.run.transport, self.run.read_index_name, ids)
        keys_by_id: dict[str, dict[str, Any]] = {}
        for c in candidates:
            keys = self._keys(c, docs.get(c.doc_id))
            if keys is not None:
                keys_by_id[c.doc_id] = keys
        read_at = time.time()  # before the reads: the repair version must lose to later writes
        items = self._get_items(list(keys_by_id.values()))
        model = self.run.model
        confirmed: list[tuple[Candidate, Mapping[str, Any] | None]] = []
        for c in candidates:
            doc = docs.get(c.doc_id)
            keys = keys_by_id.get(c.doc_id)
            item = items.get(c.doc_id)
            if keys is None:
                # An orphan whose document does not name a key we can read back: the
                # table cannot hold it under this id (ids come from keys); never deleted.
                now = classify(c.doc_id, None, _index_record(doc), None)
            else:
                current = None
                if item is not None:
                    _id, fp, version, _keys = table_record(item, model)
                    current = (fp, version)
                now = classify(c.doc_id, current, _index_record(doc), encode_keys(keys))
            if now is None:
                self.run.report.in_flight += 1
                continue
            if not final:
                yield now
                continue
            if now.table_fingerprint == c.table_fingerprint and now.kind == c.kind:
                confirmed.append((now, item))
            else:
                yield now  # the item changed since the last look: still in flight
        if confirmed:
            self._confirm(confirmed, read_at)

    def _keys(self, c: Candidate, doc: IndexDoc | None) -> dict[str, Any] | None:
        if c.keys is not None:
            return decode_keys(c.keys)
        if doc is None:
            return None
        keys = keys_from_source(doc.source, self.key_types)
        if keys is None:
            return None
        try:
            same = self.run.model.doc_id(keys) == c.doc_id
        except (InvalidDocument, ArithmeticError, ValueError):
            same = False
        return keys if same else None

    def _get_items(self, keys: list[dict[str, Any]]) -> dict[str, Mapping[str, Any]]:
        """Consistent BatchGetItem; by document id. Unprocessed keys are retried."""
        out: dict[str, Mapping[str, Any]] = {}
        model = self.run.model
        request: dict[str, Any] = (
            {self.run.table.name: {"Keys": keys, "ConsistentRead": True}} if keys else {}
        )
        delay = 0.05
        while request:
            with clients.aws_errors(f"reading table '{self.run.table.name}'"):
                resp = self.run.ddb.batch_get_item(RequestItems=request)
            for item in resp.get("Responses", {}).get(self.run.table.name, []):
                out[model.doc_id(model.keys_of(item))] = item
            request = resp.get("UnprocessedKeys") or {}
            if request:
                time.sleep(delay)
                delay = min(2.0, delay * 2)
        return out

    def _confirm(
        self, confirmed: list[tuple[Candidate, Mapping[str, Any] | None]], read_at: float
    ) -> None:
        outcomes: dict[str, str] = {}
        if self.repair and self.bulk is not None:
            if self.before_repair is not None:
                self.before_repair([c.doc_id for c, _ in confirmed])
            outcomes = self._repair(confirmed, read_at)
        report = self.run.report
        for c, _item in confirmed:
            reason = None
            if c.table_fingerprint is not None and _rejected(c):
                reason = c.table_fingerprint[len(INVALID_PREFIX) :]
            diff = Difference(
                kind=c.kind,
                doc_id=c.doc_id,
                reason=reason,
                doc_version=c.index_version,
                repair=outcomes.get(c.doc_id),
            )
            report.counts[c.kind] += 1
            shown = report.samples.setdefault(c.kind, [])
            if len(shown) < self.sample:
                shown.append(c.doc_id)
            if diff.repair is not None:
                key = diff.repair.split(":", 1)[0]
                report.repairs[key] += 1
            if self.on_difference is not None:
                self.on_difference(diff)

    def _repair(
        self, confirmed: list[tuple[Candidate, Mapping[str, Any] | None]], read_at: float
    ) -> dict[str, str]:
        version = backfill_version(read_at)
        actions: list[Action] = []
        outcomes: dict[str, str] = {}
        for c, item in confirmed:
            if c.kind == "unindexable":
                outcomes[c.doc_id] = (
                    "not repairable: the model rejects the item; fix it in the table "
                    "(the stream then indexes it)"
                )
                continue
            if c.kind == "orphan" and c.keys is None:
                outcomes[c.doc_id] = "not repairable: the document names no readable key"
                continue
            if c.index_version is not None and c.index_version >= version:
                outcomes[c.doc_id] = (
                    "not repaired: the index holds a version written after this read; "
                    "run verify again in a few seconds"
                )
                continue
            if item is None or _rejected(c):
                keys = decode_keys(c.keys) if c.keys is not None else {}
                actions.append(Action("delete", c.doc_id, version, None, keys))
            else:
                actions.append(self.run.model.action(item, version))
        if not actions:
            return outcomes
        assert self.bulk is not None
        result = self.bulk.run(actions, deadline=time.monotonic() + REPAIR_DEADLINE_SECONDS)
        for action, r in zip(actions, result.results, strict=True):
            if r.outcome is Outcome.INDEXED:
                outcomes[action.doc_id] = "indexed"
            elif r.outcome is Outcome.DELETED:
                outcomes[action.doc_id] = "deleted"
            elif r.outcome is Outcome.STALE:
                # A stream write made after our read is indexed: it is newer than the repair.
                outcomes[action.doc_id] = "superseded"
            else:
                outcomes[action.doc_id] = f"failed: {r.reason or r.outcome.value}"
        return outcomes


def _rejected(c: Candidate) -> bool:
    """The model rejects the item (its document, if any, must go)."""
    return c.table_fingerprint is not None and c.table_fingerprint.startswith(INVALID_PREFIX)


def _index_record(doc: IndexDoc | None) -> tuple[str, int | None] | None:
    if doc is None:
        return None
    return fingerprint(doc.source), doc.version


class _CandidateFile:
    """Candidates on disk between re-check rounds (drift can be as large as the table)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._out = path.open("w", encoding="utf-8")

    def add(self, c: Candidate) -> None:
        self._out.write(json.dumps(c.to_json(), ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        self._out.close()

    def batches(self, size: int) -> Iterator[list[Candidate]]:
        batch: list[Candidate] = []
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                batch.append(Candidate.from_json(json.loads(line)))
                if len(batch) >= size:
                    yield batch
                    batch = []
        if batch:
            yield batch


def _recheck(
    run: _Run,
    checker: _Recheck,
    first: _CandidateFile,
    *,
    settle_seconds: float,
    rounds: int,
) -> None:
    current = first
    for round_no in range(1, rounds + 1):
        if not current.count:
            return
        if round_no > 1 and run.stop.wait(settle_seconds):
            raise Aborted("verify interrupted while re-checking differences")
        nxt = _CandidateFile(run.store.directory / f"recheck-{round_no}.jsonl")
        try:
            for batch in current.batches(RECHECK_BATCH):
                if run.stop.is_set():
                    raise Aborted("verify interrupted while re-checking differences")
                for survivor in checker.batch(batch, final=round_no > 1):
                    nxt.add(survivor)
                run.progress("recheck", len(batch))
        finally:
            nxt.close()
        current = nxt
    run.report.unsettled += current.count


# --------------------------------------------------------------------------- entry point


def run_verify(
    target: Target,
    *,
    repair: bool = False,
    segments: int | None = None,
    max_rcu: float | None = None,
    rcu_fraction: float | None = None,
    page_size: int | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    rounds: int = DEFAULT_ROUNDS,
    sample: int = DEFAULT_SAMPLE,
    on_start: Callable[[VerifyReport], None] | None = None,
    on_progress: ProgressFn | None = None,
    on_difference: Callable[[Difference], None] | None = None,
    stop: threading.Event | None = None,
    transport: SearchTransport | None = None,
    workdir: Path | None = None,
    before_repair: Callable[[list[str]], None] | None = None,
) -> VerifyReport:
    """Compare the target's table with its index; see the module docstring.

    ``on_start(report)`` is called once the plan is known (``report.estimated_items``
    and ``report.index_documents`` size a progress bar); ``on_progress(side, n)`` as
    items (``"table"``), documents (``"index"``) and re-checked differences
    (``"recheck"``) are done; ``on_difference`` once per confirmed difference, as it
    is found; ``before_repair(ids)`` between the reads a repair is based on and its
    write (a test seam for the worst interleaving with live writes). Returns the
    report; raises Aborted when stopped (or on Ctrl-C).
    """
    if segments is not None and not 1 <= segments <= MAX_WORKERS:
        raise InputError(f"--segments must be between 1 and {MAX_WORKERS}")
    if page_size is not None and page_size < 1:
        raise InputError("--page-size must be positive")
    if settle_seconds < 0:
        raise InputError("--settle must not be negative")
    if rounds < 2:
        raise InputError("rounds must be at least 2 (a first re-check and a confirmation)")
    started = time.monotonic()
    ddb = clients.client(target, "dynamodb", max_connections=MAX_WORKERS + 2)
    table = describe_table(ddb, target.table)
    budget = read_budget(table, max_rcu=max_rcu, rcu_fraction=rcu_fraction)
    transport = transport or clients.search_transport(target)
    index_documents = IndexReader(transport, target.index).count()
    # The serving generation's configuration, so every document is built as it expects.
    model = Model.load(transport, target.index, table.key_names)
    report = VerifyReport(
        table=table.name,
        index=target.index,
        segments=segments or default_segments(table),
        estimated_items=table.item_count,
        index_documents=index_documents,
        repair=repair,
    )
    report.partitions = partition_count(max(table.item_count, index_documents))
    if on_start is not None:
        on_start(report)
    stop = stop or threading.Event()
    parent = workdir or state_home() / "verify"
    with PartitionStore(parent, report.partitions) as store:
        run = _Run(
            target=target,
            table=table,
            ddb=ddb,
            transport=transport,
            store=store,
            pacer=Pacer(budget),
            report=report,
            stop=stop,
            on_progress=on_progress,
            page_size=page_size,
            model=model,
        )
        tasks: list[Callable[[], None]] = [run.read_index]
        tasks += [lambda s=s: run.scan_segment(s) for s in range(report.segments)]  # type: ignore[misc]
        try:
            _execute(tasks, stop)
        except KeyboardInterrupt:
            raise Aborted("verify interrupted; nothing was written") from None
        if stop.is_set():
            raise Aborted("verify stopped before both sides were read; nothing was written")
        store.finish()
        candidates = _CandidateFile(store.directory / "candidates.jsonl")
        try:
            for c in store.compare():
                candidates.add(c)
        finally:
            candidates.close()
        report.candidates = candidates.count
        checker = _Recheck(
            run=run,
            key_types={k.name: k.type for k in table.keys},
            repair=repair,
            bulk=BulkIndexer(transport, model.serving or target.index) if repair else None,
            on_difference=on_difference,
            sample=sample,
            before_repair=before_repair,
        )
        try:
            _recheck(run, checker, candidates, settle_seconds=settle_seconds, rounds=rounds)
        except KeyboardInterrupt:
            raise Aborted("verify interrupted while re-checking differences") from None
    report.seconds = time.monotonic() - started
    report.finished_at = time.time()
    save_last_verify(target, VerifyRecord.from_report(report))
    return report
