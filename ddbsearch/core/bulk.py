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
from ddbsearch.core.pacing import backoff_delay
from ddbsearch.core.transport import SearchTransport, TransportError


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
# OpenSearch quotes offending values in some reasons ("Preview of field's value: ...",
# "For input string: ...", an immense term's prefix); none of it may reach logs or
# queues. Trailing value reports are cut and every quoted string is blanked.
_VALUE_TAIL = re.compile(
    r"\s*(Preview of field's value|The prefix of the first immense term is)\b.*$", re.DOTALL
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _sanitize(reason: str) -> str:
    return _QUOTED.sub("'…'", _VALUE_TAIL.sub("", reason))[:500]


class BulkIndexer:
    """Writes actions to one index through ``_bulk`` and reports each one's outcome."""

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
    ) -> None:
        self.transport = transport
        self.index = index
        self.max_bytes = max_bytes
        self._path = "/_bulk?refresh=true" if refresh else "/_bulk"
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._on_missing_index = on_missing_index
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock

    def encode(self, action: Action) -> bytes:
        meta = {
            action.op: {
                "_index": self.index,
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

    def _send(  # noqa: PLR0911 - one return per way a bulk request can end
        self,
        chunk: list[int],
        actions: Sequence[Action],
        encoded: list[bytes],
        report: BulkReport,
        deadline: float,
    ) -> list[int]:
        """Send one request; record outcomes; return the indexes to retry."""
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
        etype = str(error.get("type", f"http_{status}")) if isinstance(error, dict) else "error"
        if status == 409 or etype == "version_conflict_engine_exception":
            return ItemResult(Outcome.STALE)
        reason = _sanitize(str(error.get("reason", "")) if isinstance(error, dict) else str(error))
        if isinstance(error, dict) and isinstance(error.get("caused_by"), dict):
            reason = f"{reason}: {_sanitize(str(error['caused_by'].get('reason', '')))}"
        if status in _TRANSIENT_STATUS or etype in _TRANSIENT_TYPES:
            return ItemResult(Outcome.TRANSIENT, f"{etype}: {reason}", etype)
        return ItemResult(Outcome.PERMANENT, f"{etype}: {reason}", etype)

    @staticmethod
    def _mark(
        chunk: list[int], report: BulkReport, outcome: Outcome, reason: str, etype: str
    ) -> list[int]:
        for i in chunk:
            report.results[i] = ItemResult(outcome, reason, etype)
        return chunk if outcome is Outcome.TRANSIENT else []
