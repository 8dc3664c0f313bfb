"""The stream indexer: one Lambda invocation's batch of DynamoDB stream records in,
``{"batchItemFailures": [...]}`` out.

Rules (the event source mapping restarts the shard from the lowest reported
sequence number, so every step is idempotent):
- INSERT and MODIFY index the new image, REMOVE deletes; the batch collapses to
  the last change per key (stream order), and one ``_bulk`` carries it.
- A record that can never be indexed (reserved or dotted name, too deep, mapping
  conflict, ...) goes to the dead-letter queue with its reason, keys and sequence
  number, any older copy of its document is deleted (versioned), and the batch
  goes on. Without a dead-letter queue such a record is reported as failed.
- Transient failures are retried inside the time the invocation has left; what
  is still failing is reported from the first record not done.
- The domain refusing access (401/403: fine-grained access control without a
  role mapping, an access policy without the role) is not an exception: the
  batch is reported through ``batchItemFailures`` (Lambda retries it), and the
  log line counts the refusal and carries a hint naming the fix.
- One JSON log line per invocation: counts, duration, ids; never item contents.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ddbsearch.core.bulk import BulkIndexer, BulkReport, Outcome
from ddbsearch.core.defaults import BULK_MAX_BYTES
from ddbsearch.core.documents import (
    Action,
    InvalidDocument,
    action_from_record,
    document_id,
    stream_version,
)
from ddbsearch.core.errors import ConfigurationError
from ddbsearch.core.template import IndexSetupError, ensure_index
from ddbsearch.core.transport import AccessDenied, SearchTransport, TransportError

# Used when there is no Lambda context (tests, local tools).
DEFAULT_BUDGET_SECONDS = 30.0
SQS_BATCH = 10


@dataclass(frozen=True)
class Settings:
    endpoint: str
    index: str
    region: str | None
    dlq_url: str | None
    sigv4: bool = True
    max_bytes: int = BULK_MAX_BYTES

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Settings:
        missing = [n for n in ("OPENSEARCH_ENDPOINT", "INDEX_NAME") if not env.get(n)]
        if missing:
            raise ConfigurationError(f"missing environment variable(s): {', '.join(missing)}")
        auth = env.get("OPENSEARCH_AUTH", "sigv4").lower()
        if auth not in ("sigv4", "none"):
            raise ConfigurationError("OPENSEARCH_AUTH must be 'sigv4' or 'none'")
        return cls(
            endpoint=env["OPENSEARCH_ENDPOINT"],
            index=env["INDEX_NAME"],
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            dlq_url=env.get("DLQ_URL") or None,
            sigv4=auth == "sigv4",
            max_bytes=int(env.get("BULK_MAX_BYTES", BULK_MAX_BYTES)),
        )

    def to_environment(self) -> dict[str, str]:
        """The function environment :meth:`from_environment` reads back (deploy writes it)."""
        env = {
            "OPENSEARCH_ENDPOINT": self.endpoint,
            "INDEX_NAME": self.index,
            "OPENSEARCH_AUTH": "sigv4" if self.sigv4 else "none",
        }
        if self.region:
            env["AWS_REGION"] = self.region
        if self.dlq_url:
            env["DLQ_URL"] = self.dlq_url
        if self.max_bytes != BULK_MAX_BYTES:
            env["BULK_MAX_BYTES"] = str(self.max_bytes)
        return env


@dataclass
class _Counts:
    records: int = 0
    indexed: int = 0
    deleted: int = 0
    stale: int = 0
    failed: int = 0
    dead_lettered: int = 0
    retries: int = 0
    requests: int = 0
    refused: int = 0
    hint: str | None = None
    error_types: dict[str, int] = field(default_factory=dict)


class DeadLetterQueue:
    """Sends records that cannot be indexed to SQS; returns the ones it could not send."""

    def __init__(self, url: str, region: str | None) -> None:
        self.url = url
        self._region = region
        self._client: Any = None

    def send(self, messages: Sequence[dict[str, Any]]) -> set[int]:
        if self._client is None:
            import boto3  # in the Lambda runtime; imported only when first needed

            self._client = boto3.client("sqs", region_name=self._region)
        failed: set[int] = set()
        for start in range(0, len(messages), SQS_BATCH):
            part = messages[start : start + SQS_BATCH]
            entries = [
                {"Id": str(start + n), "MessageBody": json.dumps(m, separators=(",", ":"))}
                for n, m in enumerate(part)
            ]
            try:
                resp = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
            except Exception:  # any SQS failure: those records stay not done, Lambda retries
                failed.update(range(start, start + len(part)))
                continue
            failed.update(int(f["Id"]) for f in resp.get("Failed", []))
        return failed


class Indexer:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: SearchTransport | None = None,
        dlq: DeadLetterQueue | None = None,
        log: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport or SearchTransport(
            settings.endpoint, region=settings.region, sigv4=settings.sigv4
        )
        self.dlq = dlq or (
            DeadLetterQueue(settings.dlq_url, settings.region) if settings.dlq_url else None
        )
        self.bulk = BulkIndexer(
            self.transport,
            settings.index,
            max_bytes=settings.max_bytes,
            on_missing_index=self._index_gone,
            report_refusals=True,
        )
        self._index_ready = False
        self._log = log

    @classmethod
    def from_environment(cls) -> Indexer:
        return cls(Settings.from_environment())

    def _index_gone(self) -> None:
        self._index_ready = False
        try:
            ensure_index(self.transport, self.settings.index)
            self._index_ready = True
        except (TransportError, IndexSetupError, AccessDenied):
            pass  # the items stay transient; the next attempt or invocation tries again

    # ------------------------------------------------------------------ invoke

    def handle(self, event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
        started = time.monotonic()
        deadline = started + _budget(context)
        records: Sequence[Mapping[str, Any]] = event.get("Records") or []
        counts = _Counts(records=len(records))
        done = [False] * len(records)

        if records and not self._index_ready:
            try:
                ensure_index(self.transport, self.settings.index)
                self._index_ready = True
            except TransportError:
                counts.error_types["connection_error"] = 1
            except AccessDenied as exc:
                _refused(counts, exc, len(records))
            except IndexSetupError as exc:
                if not exc.transient:
                    raise
                counts.error_types[f"http_{exc.status}"] = 1

        if self._index_ready:
            self._process(records, done, counts, deadline)

        failures = []
        first = next((i for i, ok in enumerate(done) if not ok), None)
        if first is not None:
            counts.failed = len(done) - sum(done)
            failures = [{"itemIdentifier": str(records[first]["dynamodb"]["SequenceNumber"])}]
        self._emit(context, counts, started, failures)
        return {"batchItemFailures": failures}

    def _process(
        self,
        records: Sequence[Mapping[str, Any]],
        done: list[bool],
        counts: _Counts,
        deadline: float,
    ) -> None:
        # 1. Records -> actions; collapse to the last change per document.
        last_for_id: dict[str, int] = {}
        actions: dict[int, Action] = {}
        invalid: dict[int, str] = {}
        for i, record in enumerate(records):
            try:
                action = action_from_record(record)
            except InvalidDocument as exc:
                ddb = record["dynamodb"]
                # Index nothing, delete any older copy: the index must not keep
                # serving a version the table no longer has.
                action = Action(
                    "delete",
                    document_id(ddb["Keys"]),
                    _version_of(record),
                    None,
                    ddb["Keys"],
                    ddb.get("SequenceNumber"),
                )
                invalid[i] = f"invalid_document: {exc.reason}"
            actions[i] = action
            last_for_id[action.doc_id] = i
        winners = sorted(last_for_id.values())
        covered_by = {i: last_for_id[a.doc_id] for i, a in actions.items()}

        # 2. One bulk for the batch.
        report = self.bulk.run([actions[i] for i in winners], deadline=deadline)
        self._add(counts, report)
        ok = {w: report.results[n].outcome.done for n, w in enumerate(winners)}

        # 3. Records that can never be indexed: dead-letter them, delete older copies.
        rejected: dict[int, str] = {w: invalid[w] for w in winners if w in invalid}
        for n, w in enumerate(winners):
            result = report.results[n]
            if result.outcome is Outcome.PERMANENT:
                rejected[w] = result.reason or "permanent failure"
        if rejected:
            ok.update(self._reject(records, actions, rejected, counts, deadline))

        for i in range(len(records)):
            done[i] = ok.get(covered_by[i], False)

    def _reject(
        self,
        records: Sequence[Mapping[str, Any]],
        actions: Mapping[int, Action],
        rejected: Mapping[int, str],
        counts: _Counts,
        deadline: float,
    ) -> dict[int, bool]:
        """Dead-letter the rejected records; returns which of them are now done."""
        positions = sorted(rejected)
        if self.dlq is None:
            return dict.fromkeys(positions, False)
        # Index ops that failed permanently still have an older copy to delete.
        followups = [i for i in positions if actions[i].op == "index"]
        deleted_ok = {i: True for i in positions}
        if followups:
            deletes = [
                Action("delete", actions[i].doc_id, actions[i].version, None, actions[i].keys)
                for i in followups
            ]
            report = self.bulk.run(deletes, deadline=deadline)
            counts.requests += report.requests
            counts.retries += report.retries
            for n, i in enumerate(followups):
                deleted_ok[i] = report.results[n].outcome.done
        messages = [_dead_letter(records[i], actions[i], rejected[i]) for i in positions]
        unsent = self.dlq.send(messages)
        result = {}
        for n, i in enumerate(positions):
            sent = n not in unsent
            counts.dead_lettered += sent
            result[i] = sent and deleted_ok[i]
        return result

    @staticmethod
    def _add(counts: _Counts, report: BulkReport) -> None:
        counts.indexed += report.count(Outcome.INDEXED)
        counts.deleted += report.count(Outcome.DELETED)
        counts.stale += report.count(Outcome.STALE)
        counts.retries += report.retries
        counts.requests += report.requests
        for k, v in report.error_types.items():
            counts.error_types[k] = counts.error_types.get(k, 0) + v
        if report.refused is not None:
            counts.refused += sum(
                1 for r in report.results if r.error_type == report.refused.error_type
            )
            counts.hint = report.refused.hint

    def _emit(
        self, context: Any, counts: _Counts, started: float, failures: list[dict[str, str]]
    ) -> None:
        line = {
            "level": "ERROR" if failures else "INFO",
            "message": "batch processed",
            "request_id": getattr(context, "aws_request_id", None),
            "index": self.settings.index,
            "records": counts.records,
            "indexed": counts.indexed,
            "deleted": counts.deleted,
            "stale": counts.stale,
            "failed": counts.failed,
            "dead_lettered": counts.dead_lettered,
            "retries": counts.retries,
            "requests": counts.requests,
            "refused": counts.refused,
            "error_types": counts.error_types,
            "first_failed_sequence_number": failures[0]["itemIdentifier"] if failures else None,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }
        if counts.hint:
            line["hint"] = counts.hint
        out = self._log or sys.stdout
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
        out.flush()


def _refused(counts: _Counts, exc: AccessDenied, records: int) -> None:
    counts.refused += records
    counts.error_types[exc.error_type] = counts.error_types.get(exc.error_type, 0) + records
    counts.hint = exc.hint


def _budget(context: Any) -> float:
    """Seconds the batch may spend, leaving room to dead-letter and answer."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return DEFAULT_BUDGET_SECONDS
    remaining = float(remaining_ms()) / 1000.0
    return max(0.0, remaining - max(1.0, min(5.0, remaining * 0.1)))


def _version_of(record: Mapping[str, Any]) -> int:
    return stream_version(float(record["dynamodb"]["ApproximateCreationDateTime"]))


def _dead_letter(record: Mapping[str, Any], action: Action, reason: str) -> dict[str, Any]:
    ddb = record["dynamodb"]
    return {
        "source": "ddbsearch",
        "reason": reason,
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventSourceARN": record.get("eventSourceARN"),
        "sequenceNumber": ddb.get("SequenceNumber"),
        "approximateCreationDateTime": ddb.get("ApproximateCreationDateTime"),
        "keys": ddb["Keys"],
        "documentId": action.doc_id,
        "version": action.version,
    }
