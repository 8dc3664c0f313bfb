"""Bulk indexing with per-item outcomes, retries with backoff, and a deadline.

Used by the Lambda handler and by backfill alike. One ``_bulk`` request carries
the whole batch unless it would exceed ``max_bytes``. Each item's result is
read: a version conflict means an equal or newer version is already indexed
(success); 429, 5xx, a read-only block and connection failures are transient and
retried with exponential backoff and full jitter until the deadline; anything
else (mapping conflict, too many fields, a value OpenSearch cannot parse) is
permanent and reported with its reason.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ddbsearch.core.defaults import BULK_MAX_BYTES
from ddbsearch.core.documents import Action
from ddbsearch.core.errors import ConfigurationError
from ddbsearch.core.pacing import backoff_delay
from ddbsearch.core.transport import AccessDenied, SearchTransport, TransportError


class Outcome(str, Enum):
    INDEXED = "indexed"
    DELETED = "deleted"
    STALE = "stale"  # an equal or newer version is already there: nothing to do
    TRANSIENT = "transient"  # still failing when the deadline came
    PERMANENT = "permanent"  # retrying cannot help; reason says why

    @property
    def done(self) -> bool:
        return self in (Outcome.INDEXED, Outcome.DELETED, Outcome.STALE)


@dataclass(slots=True)
class ItemResult:
    outcome: Outcome
    reason: str | None = None
    error_type: str | None = None


@dataclass(slots=True)
class BulkReport:
    results: list[ItemResult]
    requests: int = 0
    retries: int = 0
    error_types: dict[str, int] = field(default_factory=dict)
    # Set when the domain refused a request (401/403) and the indexer was asked
    # to report refusals instead of raising them; its hint names the fix.
    refused: AccessDenied | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)


_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_TRANSIENT_TYPES = frozenset(
    {
        "cluster_block_exception",  # read-only after a full disk; clears when space returns
        "es_rejected_execution_exception",
        "opensearch_rejected_execution_exception",
        "circuit_breaking_exception",
        "unavailable_shards_exception",
        "no_shard_available_action_exception",
        "process_cluster_event_timeout_exception",
        "index_not_found_exception",  # recreated before the retry
    }
)
# What a rejected item's reason may say, by construction: the error types, the
# field path and ddbsearch's own words. OpenSearch's reasons quote values (a
# bracketed value in "Failed to parse value [x] ...", "Preview of field's value:
# ...", "For input string: ...", an immense term's prefix, a geohash) and the
# document id (built from key values), so no text of theirs is ever copied.
_FIELD = r"\[([^\[\]]{1,256})\]"  # a field path in brackets
_NAME = r"\[(\w{1,64})\]"  # a type name in brackets
_LIMIT = r"\[(\d{1,9})\]"
_SHAPES = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        # failed to parse field [f] of type [t] in document with id '...'. Preview of ...
        (rf"^failed to parse field {_FIELD} of type {_NAME}", "field '{0}' (mapped as {1}) "
         "cannot take the item's value"),
        # object mapping for [o] tried to parse field [f] as object, but found a concrete value
        (rf"^object mapping for {_FIELD} tried to parse field \[[^\[\]]*\] as object",
         "field '{0}' is an object in the index, the item has a plain value"),
        # mapper [f] cannot be changed from type [a] to [b]
        (rf"^mapper {_FIELD} cannot be changed from type {_NAME} to {_NAME}",
         "field '{0}' is mapped as {1}, the item's value would need {2}"),
        # Document contains at least one immense term in field="f" (whose UTF8 ...
        (r'^Document contains at least one immense term in field="([^"]{1,256})"',
         "field '{0}' has a term longer than 32,766 bytes"),
        # mapping set to strict, dynamic introduction of [f] within [p] is not allowed
        (rf"^mapping set to strict, dynamic introduction of {_FIELD}",
         "field '{0}' is not in the index's strict mapping"),
        (rf"^Limit of total fields {_LIMIT} has been exceeded",
         "the index's limit of {0} fields would be exceeded"),
        (rf"The depth of the field has exceeded the allowed limit of {_LIMIT}",
         "the document nests deeper than the index's limit of {0}"),
        (rf"^Limit of nested fields {_LIMIT} has been exceeded",
         "the index's limit of {0} nested fields would be exceeded"),
    )
)  # fmt: skip
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,80}$")


def _errors(error: Any) -> list[dict[str, Any]]:
    """The error and its caused_by chain, outermost first (bounded)."""
    chain: list[dict[str, Any]] = []
    while isinstance(error, dict) and len(chain) < 5:
        chain.append(error)
        error = error.get("caused_by")
    return chain


def _etype(error: Any, status: int) -> str:
    etype = error.get("type") if isinstance(error, dict) else None
    return etype if isinstance(etype, str) and _TYPE_NAME.match(etype) else f"http_{status}"


def describe_rejection(etype: str, error: Any) -> str:
    """``<type>: <ddbsearch's words about the field>`` for a rejected item.

    Built from parts only: error type names (checked to be identifiers), the
    field path and type names OpenSearch puts in brackets in known message
    shapes, limits (digits), and fixed words. Nothing else of the answer is kept.
    """
    chain = _errors(error)
    causes = [c for c in (_etype(e, 0) for e in chain[1:]) if not c.startswith("http_")]
    words = "OpenSearch refused the document"
    for e in chain:
        reason = e.get("reason")
        if not isinstance(reason, str):
            continue
        found = _known_shape(reason)
        if found is not None:
            words = found
            break
    cause = f" (caused by {', '.join(dict.fromkeys(causes))})" if causes else ""
    return f"{etype}: {words}{cause}"


def _known_shape(reason: str) -> str | None:
    for pattern, words in _SHAPES:
        m = pattern.search(reason)
        if m is not None:
            return words.format(*m.groups())
    return None


class ForbiddenIndex(ConfigurationError):
    """An action names an index outside the stack's own (its name or its generations)."""


class BulkIndexer:
    """Writes actions to one index (or its generations) through ``_bulk``; reports each outcome.

    Bulks are POSTed to ``/<index>/_bulk``. An action may name its own target
    (``Action.index``, for writing several generations in one request), but only
    ``<index>`` itself or a generation ``<index>-NNNNNN``; anything else is refused
    with :class:`ForbiddenIndex` before a byte is sent, so neither a bug nor a
    crafted value can make the indexer write another index.

    A 401/403 from the domain raises :class:`~ddbsearch.core.transport.AccessDenied`
    (backfill, redrive: the command stops with the hint). With
    ``report_refusals=True`` (the stream handler) it instead marks the items not
    done, not retried within the run, and keeps the error in ``BulkReport.refused``.
    """

    def __init__(
        self,
        transport: SearchTransport,
        index: str,
        *,
        max_bytes: int = BULK_MAX_BYTES,
        refresh: bool = False,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        on_missing_index: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        report_refusals: bool = False,
    ) -> None:
        self.transport = transport
        self.index = index
        self.max_bytes = max_bytes
        self._path = f"/{index}/_bulk" + ("?refresh=true" if refresh else "")
        self._targets = re.compile(re.escape(index) + r"(?:-[0-9]{6})?")
        self._report_refusals = report_refusals
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._on_missing_index = on_missing_index
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock

    def allowed_target(self, name: str) -> bool:
        """True for the index itself and its generations ``<index>-NNNNNN``."""
        return self._targets.fullmatch(name) is not None

    def encode(self, action: Action) -> bytes:
        target = action.index or self.index
        if not self.allowed_target(target):
            raise ForbiddenIndex(
                f"refusing to write index {target!r}: the indexer writes only "
                f"{self.index!r} and its generations {self.index}-NNNNNN"
            )
        meta = {
            action.op: {
                "_index": target,
                "_id": action.doc_id,
                "version": action.version,
                # external_gte: a redelivered record (same version) is applied
                # again, harmlessly; two changes in the same second apply in
                # stream order. See documents.py for the version scheme.
                "version_type": "external_gte",
            }
        }
        line = json.dumps(meta, separators=(",", ":"))
        if action.op == "delete":
            return (line + "\n").encode()
        doc = json.dumps(action.document, separators=(",", ":"), ensure_ascii=False)
        return (line + "\n" + doc + "\n").encode()

    def run(self, actions: Sequence[Action], *, deadline: float) -> BulkReport:
        encoded = [self.encode(a) for a in actions]
        report = BulkReport([ItemResult(Outcome.TRANSIENT, "not attempted") for _ in actions])
        pending = list(range(len(actions)))
        attempt = 0
        while pending:
            retry: list[int] = []
            for chunk in self._chunks(pending, encoded):
                retry.extend(self._send(chunk, actions, encoded, report, deadline))
            if not retry:
                break
            attempt += 1
            delay = backoff_delay(
                attempt, base=self._backoff_base, cap=self._backoff_cap, jitter=self._jitter
            )
            if self._clock() + delay >= deadline:
                break
            self._sleep(delay)
            report.retries += 1
            pending = retry
        for r in report.results:
            if r.error_type:
                report.error_types[r.error_type] = report.error_types.get(r.error_type, 0) + 1
        return report

    def _chunks(self, pending: list[int], encoded: list[bytes]) -> Iterator[list[int]]:
        chunk: list[int] = []
        size = 0
        for i in pending:
            n = len(encoded[i])
            if chunk and size + n > self.max_bytes:
                yield chunk
                chunk, size = [], 0
            chunk.append(i)
            size += n
        if chunk:
            yield chunk

    def _send(  # noqa: PLR0911, PLR0912 - one return per way a bulk request can end
        self,
        chunk: list[int],
        actions: Sequence[Action],
        encoded: list[bytes],
        report: BulkReport,
        deadline: float,
    ) -> list[int]:
        """Send one request; record outcomes; return the indexes to retry."""
        if report.refused is not None:  # refused once: the rest would be refused too
            return self._mark(chunk, report, Outcome.TRANSIENT, "", report.refused.error_type)[:0]
        remaining = deadline - self._clock()
        if remaining <= 0:
            return chunk
        body = b"".join(encoded[i] for i in chunk)
        report.requests += 1
        try:
            resp = self.transport.request(
                "POST",
                self._path,
                body,
                content_type="application/x-ndjson",
                timeout=min(self.transport.timeout, remaining),
            )
        except TransportError as exc:
            return self._mark(chunk, report, Outcome.TRANSIENT, str(exc), "connection_error")
        except AccessDenied as exc:
            if not self._report_refusals:
                raise
            # Not retried now: a role mapping or a policy does not change within
            # seconds. The items stay not done; Lambda retries the batch.
            report.refused = exc
            return self._mark(chunk, report, Outcome.TRANSIENT, exc.message, exc.error_type)[:0]
        if resp.status == 413:
            if len(chunk) == 1:
                return self._mark(
                    chunk, report, Outcome.PERMANENT, "document too large", "request_too_large"
                )
            half = len(chunk) // 2
            return self._send(chunk[:half], actions, encoded, report, deadline) + self._send(
                chunk[half:], actions, encoded, report, deadline
            )
        if resp.status in _TRANSIENT_STATUS:
            return self._mark(chunk, report, Outcome.TRANSIENT, f"HTTP {resp.status}", "http_error")
        if resp.status >= 300:
            return self._mark(
                chunk,
                report,
                Outcome.PERMANENT,
                f"bulk request failed: HTTP {resp.status}",
                "http_error",
            )
        try:
            items = resp.json()["items"]
        except (ValueError, KeyError, TypeError):
            return self._mark(
                chunk, report, Outcome.TRANSIENT, "unreadable bulk response", "bad_response"
            )
        retry: list[int] = []
        missing_index = False
        for i, item in zip(chunk, items, strict=False):  # length checked below
            ((op, res),) = item.items()
            result = self._classify(op, res)
            report.results[i] = result
            if result.outcome is Outcome.TRANSIENT:
                retry.append(i)
                missing_index |= result.error_type == "index_not_found_exception"
        if len(items) < len(chunk):  # never seen, but never silently "succeed"
            retry.extend(
                self._mark(
                    chunk[len(items) :], report, Outcome.TRANSIENT, "no result", "bad_response"
                )
            )
        if missing_index and self._on_missing_index is not None:
            self._on_missing_index()
        return retry

    @staticmethod
    def _classify(op: str, res: dict[str, Any]) -> ItemResult:
        status = int(res.get("status", 0))
        if status < 300:
            return ItemResult(Outcome.DELETED if op == "delete" else Outcome.INDEXED)
        if op == "delete" and status == 404 and "error" not in res:
            return ItemResult(Outcome.DELETED)  # already gone; the tombstone keeps its version
        error = res.get("error") or {}
        etype = _etype(error, status)
        if status == 409 or etype == "version_conflict_engine_exception":
            return ItemResult(Outcome.STALE)
        reason = describe_rejection(etype, error)
        if status in _TRANSIENT_STATUS or etype in _TRANSIENT_TYPES:
            return ItemResult(Outcome.TRANSIENT, reason, etype)
        return ItemResult(Outcome.PERMANENT, reason, etype)

    @staticmethod
    def _mark(
        chunk: list[int], report: BulkReport, outcome: Outcome, reason: str, etype: str
    ) -> list[int]:
        for i in chunk:
            report.results[i] = ItemResult(outcome, reason, etype)
        return chunk if outcome is Outcome.TRANSIENT else []
