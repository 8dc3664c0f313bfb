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

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ddbsearch.core.bulk import BulkIndexer, BulkReport, Outcome
from ddbsearch.core.defaults import BULK_MAX_BYTES
from ddbsearch.core.documents import (
    Action,
    InvalidDocument,
    action_from_record,
    document_id,
    is_ttl_removal,
    record_version,
)
from ddbsearch.core.errors import ConfigurationError
from ddbsearch.core.generations import GenerationConfig
from ddbsearch.core.lifecycle import (
    LIVE_SET_TTL_SECONDS,
    Generation,
    GenerationError,
    live_generations,
)
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
    ttl_kept: int = 0
    hint: str | None = None
    error_types: dict[str, int] = field(default_factory=dict)
    generations: list[str] = field(default_factory=list)
    per_generation: dict[str, dict[str, int]] = field(default_factory=dict)


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


Slot = tuple[int, int]  # (record position, live-generation position)


class Indexer:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: SearchTransport | None = None,
        dlq: DeadLetterQueue | None = None,
        log: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
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
        self._log = log
        self._clock = clock
        self._live: list[Generation] | None = None
        self._live_until = 0.0

    @classmethod
    def from_environment(cls) -> Indexer:
        return cls(Settings.from_environment())

    # ------------------------------------------------------------------ live set

    def live_generations(self) -> list[Generation]:
        """The generations every change goes to (cached for LIVE_SET_TTL_SECONDS).

        A fresh stack gets its first generation here; an index the read cannot
        describe (an emulator, an index the alias read misses) is written as is.
        """
        now = self._clock()
        if self._live is not None and now < self._live_until:
            return self._live
        index = self.settings.index
        live = live_generations(self.transport, index)
        if not live:
            ensure_index(self.transport, index)
            live = live_generations(self.transport, index) or [
                Generation(index, None, serving=True, building=False, number=0)
            ]
        self._live, self._live_until = live, now + LIVE_SET_TTL_SECONDS
        return live

    def _index_gone(self) -> None:
        # A generation is gone (dropped, or the index deleted): read the aliases
        # again, recreating the index if nothing is left.
        self._live = None
        # On failure the items stay transient; the next attempt or invocation tries again.
        with contextlib.suppress(TransportError, IndexSetupError, GenerationError, AccessDenied):
            self.live_generations()

    # ------------------------------------------------------------------ invoke

    def handle(self, event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
        started = time.monotonic()
        deadline = started + _budget(context)
        records: Sequence[Mapping[str, Any]] = event.get("Records") or []
        counts = _Counts(records=len(records))
        done = [False] * len(records)

        live: list[Generation] | None = None
        if records:
            try:
                live = self.live_generations()
            except TransportError:
                counts.error_types["connection_error"] = 1
            except AccessDenied as exc:
                _refused(counts, exc, len(records))
            except (IndexSetupError, GenerationError) as exc:
                if not exc.transient:
                    raise
                counts.error_types[f"http_{exc.status}"] = 1

        if live:
            counts.generations = [g.name for g in live]
            self._process(records, live, done, counts, deadline)

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
        live: Sequence[Generation],
        done: list[bool],
        counts: _Counts,
        deadline: float,
    ) -> None:
        # 1. Collapse the batch to the last change per item (stream order).
        last_for_key: dict[str, int] = {}
        key_of: list[str] = []
        for i, record in enumerate(records):
            key = document_id(record["dynamodb"]["Keys"])
            key_of.append(key)
            last_for_key[key] = i
        winners = sorted(last_for_key.values())

        # 2. Each winner -> one action per live generation, built with its configuration.
        slots: list[Slot] = []
        actions: list[Action] = []
        planned: dict[Slot, Action] = {}
        rejected: dict[Slot, str] = {}
        ok: dict[Slot, bool] = {}
        for w in winners:
            record = records[w]
            for g, gen in enumerate(live):
                config = gen.config
                if config is not None and config.ttl_deletes == "keep" and is_ttl_removal(record):
                    ok[(w, g)] = True  # an archive generation keeps what TTL deleted
                    counts.ttl_kept += 1
                    continue
                # The collapse key is the key-name id: reuse it where it is the id.
                known = key_of[w] if config is None or config.id_scheme == "key-name" else None
                try:
                    action = action_from_record(record, config, gen.name, doc_id=known)
                except InvalidDocument as exc:
                    rejected[(w, g)] = f"{exc.error_type}: {exc.reason}"
                    counts.error_types[exc.error_type] = (
                        counts.error_types.get(exc.error_type, 0) + 1
                    )
                    ok[(w, g)] = False
                    try:
                        # Index nothing, delete any older copy: the index must not
                        # keep serving a version the table no longer has.
                        action = _delete(record, config, gen.name)
                    except InvalidDocument:
                        continue  # no version to delete with (missing version attribute)
                    planned[(w, g)] = action
                    slots.append((w, g))
                    actions.append(action)
                    continue
                planned[(w, g)] = action
                slots.append((w, g))
                actions.append(action)

        # 3. One bulk for the batch, across generations.
        if actions:
            report = self.bulk.run(actions, deadline=deadline)
            self._add(counts, report, [live[g].name for _, g in slots])
            for n, slot in enumerate(slots):
                result = report.results[n]
                if slot in rejected:
                    continue  # its delete ran; the record is still rejected
                ok[slot] = result.outcome.done
                if result.outcome is Outcome.PERMANENT:
                    rejected[slot] = result.reason or "permanent failure"

        # 4. Records that can never be indexed (in some generation): dead-letter them.
        if rejected:
            ok.update(self._reject(records, live, planned, rejected, counts, deadline))

        for i in range(len(records)):
            w = last_for_key[key_of[i]]
            done[i] = all(ok.get((w, g), False) for g in range(len(live)))

    def _reject(  # noqa: PLR0917 - private, called once
        self,
        records: Sequence[Mapping[str, Any]],
        live: Sequence[Generation],
        planned: Mapping[Slot, Action],
        rejected: Mapping[Slot, str],
        counts: _Counts,
        deadline: float,
    ) -> dict[Slot, bool]:
        """Dead-letter the rejected records; returns which of their slots are now done."""
        slots = sorted(rejected)
        if self.dlq is None:
            return dict.fromkeys(slots, False)
        # Index ops that failed permanently still have an older copy to delete.
        followups = [s for s in slots if s in planned and planned[s].op == "index"]
        deleted_ok = dict.fromkeys(slots, True)
        if followups:
            deletes = [
                Action(
                    "delete",
                    planned[s].doc_id,
                    planned[s].version,
                    None,
                    planned[s].keys,
                    None,
                    planned[s].index,
                )
                for s in followups
            ]
            report = self.bulk.run(deletes, deadline=deadline)
            counts.requests += report.requests
            counts.retries += report.retries
            for n, s in enumerate(followups):
                deleted_ok[s] = report.results[n].outcome.done
        by_record: dict[int, list[Slot]] = {}
        for s in slots:
            by_record.setdefault(s[0], []).append(s)
        positions = sorted(by_record)
        messages = [
            _dead_letter(records[w], live, planned, rejected, by_record[w]) for w in positions
        ]
        unsent = self.dlq.send(messages)
        result: dict[Slot, bool] = {}
        for n, w in enumerate(positions):
            sent = n not in unsent
            counts.dead_lettered += sent
            for s in by_record[w]:
                result[s] = sent and deleted_ok[s]
        return result

    @staticmethod
    def _add(counts: _Counts, report: BulkReport, targets: Sequence[str]) -> None:
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
        if len(set(targets)) > 1:
            for name, result in zip(targets, report.results, strict=True):
                per = counts.per_generation.setdefault(name, {})
                per[result.outcome.value] = per.get(result.outcome.value, 0) + 1

    def _emit(
        self, context: Any, counts: _Counts, started: float, failures: list[dict[str, str]]
    ) -> None:
        line: dict[str, Any] = {
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
        if counts.ttl_kept:
            line["ttl_kept"] = counts.ttl_kept
        if len(counts.generations) > 1:
            line["generations"] = counts.generations
            line["per_generation"] = counts.per_generation
        if counts.hint:
            line["hint"] = counts.hint
        out = self._log or sys.stdout
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
        out.flush()


def _delete(record: Mapping[str, Any], config: GenerationConfig | None, index: str) -> Action:
    ddb = record["dynamodb"]
    keys = ddb["Keys"]
    return Action(
        "delete",
        document_id(keys, config),
        record_version(record, config),
        None,
        keys,
        ddb.get("SequenceNumber"),
        index,
    )


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


def _dead_letter(
    record: Mapping[str, Any],
    live: Sequence[Generation],
    planned: Mapping[Slot, Action],
    rejected: Mapping[Slot, str],
    slots: Sequence[Slot],
) -> dict[str, Any]:
    ddb = record["dynamodb"]
    first = slots[0]
    action = planned.get(first)
    message = {
        "source": "ddbsearch",
        "reason": rejected[first],
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventSourceARN": record.get("eventSourceARN"),
        "sequenceNumber": ddb.get("SequenceNumber"),
        "approximateCreationDateTime": ddb.get("ApproximateCreationDateTime"),
        "keys": ddb["Keys"],
        "documentId": action.doc_id if action else document_id(ddb["Keys"], live[first[1]].config),
        "version": action.version if action else None,
    }
    if len(live) > 1:
        # Which generations refused it, and why (a reindex may index it in one only).
        message["generations"] = {live[g].name: rejected[(w, g)] for w, g in slots}
    return message
