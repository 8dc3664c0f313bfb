"""Backfill: index the rows a table already holds, through the handler's own path.

A parallel Scan (``TotalSegments`` workers, one thread each) reads the table with
strongly consistent reads; every row becomes an :class:`~ddbsearch.core.documents.Action`
through :func:`~ddbsearch.core.documents.action_from_item` at
``backfill_version(read_started_at)``, where ``read_started_at`` is taken just before
each Scan page is requested, and is written by :class:`~ddbsearch.core.bulk.BulkIndexer`
like a stream batch. A backfill version always loses to the stream's version of any
change made after the read, so a backfill running beside live traffic never overwrites
a newer streamed value and never brings a deleted item back (docs/document-model.md).
Consistent reads matter: an eventually consistent page could miss a write made just
before the read, and its higher version would then put the older value back.

Pacing: reads are charged against a read-capacity budget (``--max-rcu``, or a fraction
of the table's provisioned RCU) using the ``ConsumedCapacity`` each Scan returns.

Resumability: after each page is indexed, its segment's ``LastEvaluatedKey`` is saved
in a checkpoint file under the state directory, keyed by target, table and index.
``resume=True`` continues from there without rescanning finished segments; otherwise a
run starts from scratch. A page whose documents still fail transiently after the
page's retry deadline is not checkpointed: the run stops and ``--resume`` retries it.
A run holds an exclusive lock on its checkpoint (``flock`` on a ``.lock`` file beside
it, released by the kernel however the process ends): a second run on the same
checkpoint fails at once with :class:`~ddbsearch.errors.BusyError` instead of
overwriting the first one's progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddbsearch import clients, files
from ddbsearch.core.bulk import BulkIndexer, Outcome
from ddbsearch.core.documents import (
    Action,
    InvalidDocument,
    action_from_item,
    backfill_version,
    document_id,
)
from ddbsearch.core.generations import GenerationConfig
from ddbsearch.core.pacing import Pacer
from ddbsearch.errors import Aborted, BusyError, DdbsearchError, InputError, PartialFailure
from ddbsearch.ops.keys import decode_keys, encode_keys
from ddbsearch.tables import TableInfo, describe_table
from ddbsearch.targets import Target, state_home

# The DynamoDB Developer Guide suggests starting parallel scans at one segment per
# 2 GB of table data. Item count also matters here: each worker indexes what it
# reads, so bulk throughput, not Scan, is usually the limit; one worker per 100,000
# items keeps a million-item table at ten concurrent bulk streams. 64 is the default
# ceiling because more concurrent _bulk requests than that get 429-rejected by the
# write queues of small domains; --segments can still ask for more.
SEGMENT_BYTES = 2 * 1024**3
SEGMENT_ITEMS = 100_000
MAX_DEFAULT_SEGMENTS = 64
MAX_SEGMENTS = 1000
MAX_WORKERS = 64
# Bulk retries for one page end after this; the page is then left for --resume.
PAGE_DEADLINE_SECONDS = 120.0
CHECKPOINT_FORMAT = 1
MAX_FAILED_SAMPLES = 5

_log = logging.getLogger(__name__)


def _item_id(
    item: Mapping[str, Any], key_names: Sequence[str], config: GenerationConfig | None
) -> str:
    try:
        return document_id({k: item[k] for k in key_names}, config)
    except (KeyError, InvalidDocument):
        return "(no key)"


def default_segments(table: TableInfo) -> int:
    by_size = math.ceil(table.size_bytes / SEGMENT_BYTES)
    by_items = math.ceil(table.item_count / SEGMENT_ITEMS)
    return max(1, min(MAX_DEFAULT_SEGMENTS, max(by_size, by_items)))


def read_budget(
    table: TableInfo, *, max_rcu: float | None, rcu_fraction: float | None
) -> float | None:
    """Read capacity units per second the backfill may use; None means unpaced."""
    if max_rcu is not None and rcu_fraction is not None:
        raise InputError("give --max-rcu or --rcu-fraction, not both")
    if max_rcu is not None:
        if max_rcu <= 0:
            raise InputError("--max-rcu must be positive")
        return max_rcu
    if rcu_fraction is not None:
        if not 0 < rcu_fraction <= 1:
            raise InputError("--rcu-fraction must be in (0, 1]")
        if table.read_capacity <= 0:
            raise InputError(
                f"table '{table.name}' is on-demand (no provisioned read capacity)",
                hint="use --max-rcu to cap the backfill's reads",
            )
        return table.read_capacity * rcu_fraction
    return None


# --------------------------------------------------------------------------- checkpoints


def checkpoint_path(target: Target) -> Path:
    identity = [
        target.kind, target.name, target.region, target.aws_endpoint,
        target.table, target.search_endpoint, target.index,
    ]  # fmt: skip
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    safe = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in f"{target.table}-{target.index}"
    )
    return state_home() / "backfill" / f"{safe}-{digest}.json"


class Checkpoint:
    """Per-segment progress of one backfill, saved atomically after every page."""

    def __init__(self, path: Path, total_segments: int) -> None:
        self.path = path
        self.total_segments = total_segments
        self.segments: dict[int, dict[str, Any]] = {
            s: {"done": False, "last_key": None, "scanned": 0} for s in range(total_segments)
        }
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        data = files.read_json(path)
        if data is None or data.get("format") != CHECKPOINT_FORMAT:
            return None
        cp = cls(path, int(data["total_segments"]))
        for key, seg in data["segments"].items():
            cp.segments[int(key)] = seg
        return cp

    def start_key(self, segment: int) -> dict[str, Any] | None:
        key = self.segments[segment]["last_key"]
        return decode_keys(key) if key else None

    def done(self, segment: int) -> bool:
        return bool(self.segments[segment]["done"])

    @property
    def scanned(self) -> int:
        return sum(int(s["scanned"]) for s in self.segments.values())

    @property
    def finished_segments(self) -> int:
        return sum(1 for s in self.segments.values() if s["done"])

    def advance(self, segment: int, last_key: Mapping[str, Any] | None, scanned: int) -> None:
        with self._lock:
            seg = self.segments[segment]
            seg["scanned"] = int(seg["scanned"]) + scanned
            seg["last_key"] = encode_keys(last_key) if last_key else None
            seg["done"] = last_key is None
            self._save()

    def _save(self) -> None:
        data = {
            "format": CHECKPOINT_FORMAT,
            "total_segments": self.total_segments,
            "segments": {str(k): v for k, v in sorted(self.segments.items())},
            "saved_at": time.time(),
        }
        files.write_json(self.path, data, indent=None)  # an interrupted save leaves the last one

    def save(self) -> None:
        with self._lock:
            self._save()


def lock_path(checkpoint: Path) -> Path:
    """The lock file a run holds while it owns ``checkpoint`` (beside it, never removed)."""
    return checkpoint.with_name(checkpoint.name + ".lock")


@contextlib.contextmanager
def run_lock(path: Path, *, what: str, again: str) -> Iterator[None]:
    """Own the state file at ``path`` (a checkpoint) for the block, or raise BusyError at once."""
    with contextlib.ExitStack() as stack:
        try:
            unlocked = stack.enter_context(files.exclusive_lock(lock_path(path)))
        except files.LockHeld as held:
            pid = f"pid {held.pid}" if held.pid is not None else "pid unknown"
            raise BusyError(
                f"another {what} is already running ({pid})",
                hint=f"wait for it to finish, or stop it (Ctrl-C) and {again}",
            ) from None
        if unlocked is not None:
            _log.warning(
                "%s: a second %s at the same time would not be refused; run one at a time",
                unlocked,
                what.split(" ", 1)[0],
            )
        yield


# --------------------------------------------------------------------------- run


@dataclass
class BackfillSummary:
    table: str
    index: str
    segments: int
    scanned: int = 0
    indexed: int = 0
    stale: int = 0  # an equal or newer version (a stream write) was already indexed
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # "PERMANENT: reason" -> count
    resumed: bool = False
    skipped_segments: int = 0  # finished in an earlier run (--resume)
    consumed_rcu: float = 0.0
    seconds: float = 0.0
    estimated_items: int = 0  # DescribeTable's approximate ItemCount
    complete: bool = False
    checkpoint: str = ""
    # The first rows that failed: (document id, reason), for a one-line report.
    failed_samples: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "index": self.index,
            "segments": self.segments,
            "scanned": self.scanned,
            "indexed": self.indexed,
            "stale": self.stale,
            "failed": self.failed,
            "failures": dict(self.failures),
            "resumed": self.resumed,
            "skipped_segments": self.skipped_segments,
            "consumed_rcu": round(self.consumed_rcu, 1),
            "seconds": round(self.seconds, 3),
            "estimated_items": self.estimated_items,
            "complete": self.complete,
            "failed_samples": [list(s) for s in self.failed_samples],
        }


_DOC_ID_IN_REASON = re.compile(r" in document with id '[^']*'")


def _general(reason: str | None) -> str:
    """The reason without the document id OpenSearch puts in it, so that counts group."""
    return _DOC_ID_IN_REASON.sub("", reason or "unknown")


_END = object()  # the reader has no more pages


def _offer(pages: queue.Queue[Any], entry: Any, quit_reading: threading.Event) -> bool:
    """Put ``entry`` for the indexing side; False if it stopped listening."""
    while not quit_reading.is_set():
        try:
            pages.put(entry, timeout=0.1)
        except queue.Full:
            continue
        return True
    return False


class _PageFailed(DdbsearchError):
    """Documents of a page still failed transiently at the page deadline."""


@dataclass
class _Run:
    target: Target
    table: TableInfo
    ddb: Any
    checkpoint: Checkpoint
    pacer: Pacer
    summary: BackfillSummary
    stop: threading.Event
    on_progress: Callable[[int], None] | None
    after_read: Callable[[int, Mapping[str, Any]], None] | None
    page_size: int | None
    page_deadline: float = PAGE_DEADLINE_SECONDS
    # The generation written and its configuration (None: the target's index, original model).
    generation: str | None = None
    config: GenerationConfig | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def segment(self, segment: int) -> None:
        """Scan one segment and index it, reading the next page while one is indexed.

        A reader thread keeps one page ahead (a bounded queue of one), so Scan and
        _bulk overlap instead of taking turns; pages are still indexed, and the
        checkpoint advanced, strictly in order. On a stop the reader reads no more,
        and the pages already read are indexed, as before.
        """
        indexer = BulkIndexer(clients.search_transport(self.target), self.target.index)
        pages: queue.Queue[Any] = queue.Queue(maxsize=1)
        quit_reading = threading.Event()
        reader = threading.Thread(
            target=self._read,
            args=(segment, pages, quit_reading),
            name=f"scan-{segment}-read",
            daemon=True,
        )
        reader.start()
        try:
            while True:
                entry = pages.get()
                if entry is _END:
                    return
                if isinstance(entry, BaseException):
                    raise entry
                page, version, units = entry
                items: list[dict[str, Any]] = page.get("Items", [])
                self._index(indexer, items, version, units)
                self.checkpoint.advance(segment, page.get("LastEvaluatedKey"), len(items))
                if self.on_progress is not None and items:
                    self.on_progress(len(items))
        finally:
            quit_reading.set()
            reader.join()

    def _read(self, segment: int, pages: queue.Queue[Any], quit_reading: threading.Event) -> None:
        start_key = self.checkpoint.start_key(segment)
        try:
            while not (self.stop.is_set() or quit_reading.is_set()):
                self.pacer.wait(self.stop)
                if self.stop.is_set():
                    break
                kwargs: dict[str, Any] = {
                    "TableName": self.table.name,
                    "Segment": segment,
                    "TotalSegments": self.checkpoint.total_segments,
                    "ConsistentRead": True,
                    "ReturnConsumedCapacity": "TOTAL",
                }
                if start_key:
                    kwargs["ExclusiveStartKey"] = start_key
                if self.page_size:
                    kwargs["Limit"] = self.page_size
                read_started_at = time.time()  # before the request: see backfill_version
                with clients.aws_errors(f"scanning table '{self.table.name}'"):
                    page = self.ddb.scan(**kwargs)
                units = float((page.get("ConsumedCapacity") or {}).get("CapacityUnits", 0.0))
                self.pacer.spend(units)
                if self.after_read is not None:
                    self.after_read(segment, page)
                if not _offer(
                    pages, (page, backfill_version(read_started_at), units), quit_reading
                ):
                    return
                start_key = page.get("LastEvaluatedKey")
                if not start_key:
                    break
        except Exception as exc:  # handed to the indexing side, which raises it in order
            _offer(pages, exc, quit_reading)
            return
        _offer(pages, _END, quit_reading)

    def _index(
        self, indexer: BulkIndexer, items: list[dict[str, Any]], version: int, units: float
    ) -> None:
        actions: list[Action] = []
        failures: Counter[str] = Counter()
        samples: list[tuple[str, str]] = []
        for item in items:
            try:
                actions.append(
                    action_from_item(
                        item, self.table.key_names, version, self.config, self.generation
                    )
                )
            except InvalidDocument as exc:
                failures[f"PERMANENT: {exc.reason}"] += 1
                samples.append((_item_id(item, self.table.key_names, self.config), exc.reason))
        counts: Counter[Outcome] = Counter()
        transient: list[str] = []
        if actions:
            report = indexer.run(actions, deadline=time.monotonic() + self.page_deadline)
            for action, result in zip(actions, report.results, strict=True):
                counts[result.outcome] += 1
                if result.outcome is Outcome.PERMANENT:
                    failures[f"PERMANENT: {_general(result.reason)}"] += 1
                    samples.append((action.doc_id, _general(result.reason)))
                elif result.outcome is Outcome.TRANSIENT:
                    transient.append(result.reason or "unknown")
        if transient:
            # Leave the page for --resume rather than count its rows as lost.
            raise _PageFailed(
                f"{len(transient)} document(s) still failing after "
                f"{self.page_deadline:.0f} s of retries (TRANSIENT: {transient[0]})",
                hint="fix the search domain, then run 'ddbsearch backfill --resume'",
            )
        with self.lock:
            s = self.summary
            s.scanned += len(items)
            s.indexed += counts[Outcome.INDEXED]
            s.stale += counts[Outcome.STALE]
            s.failed += sum(failures.values())
            s.failures.update(failures)
            s.consumed_rcu += units
            s.failed_samples.extend(samples[: max(0, MAX_FAILED_SAMPLES - len(s.failed_samples))])


def run_backfill(
    target: Target,
    *,
    segments: int | None = None,
    max_rcu: float | None = None,
    rcu_fraction: float | None = None,
    resume: bool = False,
    page_size: int | None = None,
    page_deadline: float = PAGE_DEADLINE_SECONDS,
    on_start: Callable[[BackfillSummary, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    after_read: Callable[[int, Mapping[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
    generation: str | None = None,
    config: GenerationConfig | None = None,
    checkpoint_file: Path | None = None,
) -> BackfillSummary:
    """Backfill the target's index from its table; see the module docstring.

    ``on_start(summary, already_scanned)`` is called once the plan is known (for a
    progress bar); ``after_read(segment, page)`` after each Scan page is read and
    before it is indexed (a test seam for concurrent writes). Setting ``stop`` (or Ctrl-C in
    the calling thread) ends the run after the pages in flight are indexed and
    checkpointed, and raises :class:`~ddbsearch.errors.Aborted`.

    Returns the summary, also when some rows failed (``summary.failed``: the caller
    decides what that means). Raises Aborted when stopped and PartialFailure when a
    page still failed transiently at its deadline; the summary object handed to
    ``on_start`` then holds what was done.

    ``generation`` and ``config`` make it write one generation of the index with
    that generation's document model (reindex fills a new generation this way,
    with its own ``checkpoint_file``); by default it writes the target's index
    with the serving generation's configuration.
    """
    if segments is not None and not 1 <= segments <= MAX_SEGMENTS:
        raise InputError(f"--segments must be between 1 and {MAX_SEGMENTS}")
    if page_size is not None and page_size < 1:
        raise InputError("--page-size must be positive")
    path = checkpoint_file or checkpoint_path(target)
    if checkpoint_file is None:
        what = f"backfill of table '{target.table}' into index '{target.index}'"
        again = "run 'ddbsearch backfill --resume'"
    else:
        what = f"fill of '{generation or target.index}' from table '{target.table}'"
        again = "run the same command again: it continues from the checkpoint"
    # Held until the run ends, the checkpoint's removal included: two runs on one
    # checkpoint would overwrite each other's progress, and a resume could then skip
    # pages that neither of them indexed.
    with run_lock(path, what=what, again=again):
        # One pooled connection per worker thread (they share the client).
        ddb = clients.client(target, "dynamodb", max_connections=MAX_WORKERS + 2)
        table = describe_table(ddb, target.table)
        budget = read_budget(table, max_rcu=max_rcu, rcu_fraction=rcu_fraction)
        _check_index(target, generation)
        if generation is None:
            generation, config = _serving(target)

        checkpoint = Checkpoint.load(path) if resume else None
        if checkpoint is not None and segments not in (None, checkpoint.total_segments):
            raise InputError(
                f"the interrupted backfill used {checkpoint.total_segments} segments, "
                f"not {segments}",
                hint="drop --segments to resume it, or run without --resume to start over",
            )
        resumed = checkpoint is not None
        if checkpoint is None:
            checkpoint = Checkpoint(path, segments or default_segments(table))
            checkpoint.save()
        summary = BackfillSummary(
            table=table.name,
            index=target.index,
            segments=checkpoint.total_segments,
            resumed=resumed,
            skipped_segments=checkpoint.finished_segments,
            estimated_items=table.item_count,
            checkpoint=str(path),
        )
        if on_start is not None:
            on_start(summary, checkpoint.scanned)
        stop = stop or threading.Event()
        run = _Run(
            target=target,
            table=table,
            ddb=ddb,
            checkpoint=checkpoint,
            # The cost of a page is known only afterwards (ConsumedCapacity): a page may
            # overdraw the bucket, and the next request waits the debt off.
            pacer=Pacer(budget),
            summary=summary,
            stop=stop,
            on_progress=on_progress,
            after_read=after_read,
            page_size=page_size,
            page_deadline=page_deadline,
            generation=generation,
            config=config,
        )
        started = time.monotonic()
        todo = [s for s in range(checkpoint.total_segments) if not checkpoint.done(s)]
        try:
            _execute(run, todo)
        finally:
            summary.seconds = time.monotonic() - started
        summary.complete = checkpoint.finished_segments == checkpoint.total_segments
        if summary.complete:
            path.unlink(missing_ok=True)  # nothing left to resume
        return summary


def _serving(target: Target) -> tuple[str | None, GenerationConfig | None]:
    """The serving generation and its configuration (None, None: write the index as is)."""
    from ddbsearch.core.lifecycle import GenerationError, live_generations

    try:
        live = live_generations(clients.search_transport(target), target.index)
    except GenerationError:
        return None, None
    serving = next((g for g in live if g.serving and not g.legacy), None)
    return (serving.name, serving.config) if serving is not None else (None, None)


def _check_index(target: Target, generation: str | None = None) -> None:
    """The index must exist (deploy creates it with ddbsearch's template)."""
    from ddbsearch.core.transport import TransportError
    from ddbsearch.errors import NotFoundError, UnreachableError

    transport = clients.search_transport(target)
    try:
        head = transport.request("HEAD", f"/{generation or target.index}")
    except TransportError:
        raise UnreachableError(
            f"cannot reach the search endpoint {target.search_endpoint}",
            hint="is the local stack running ('ddbsearch deploy --local') / is the network up?",
        ) from None
    if head.status == 404:
        raise NotFoundError(
            f"index '{generation or target.index}' does not exist on {target.search_endpoint}",
            hint="deploy creates it; check --index",
        )


def _execute(run: _Run, todo: Sequence[int]) -> None:
    if not todo:
        return
    pool = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(todo)), thread_name_prefix="scan")
    futures: list[Future[None]] = [pool.submit(run.segment, s) for s in todo]
    try:
        pending: set[Future[None]] = set(futures)
        while pending:
            # Short waits keep the main thread responsive to Ctrl-C.
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    run.stop.set()
        interrupted = run.stop.is_set()
    except KeyboardInterrupt:
        run.stop.set()
        interrupted = True
        wait(futures)  # let pages in flight finish and checkpoint
    finally:
        pool.shutdown(wait=True)
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        err = errors[0]
        if isinstance(err, _PageFailed):
            raise PartialFailure(err.message, hint=err.hint) from None
        raise err  # type: ignore[misc]
    if interrupted:
        done_segments = run.checkpoint.finished_segments
        raise Aborted(
            f"backfill interrupted after {run.summary.scanned} rows "
            f"({done_segments} of {run.checkpoint.total_segments} segments finished)",
            hint="run 'ddbsearch backfill --resume' to continue",
        )
