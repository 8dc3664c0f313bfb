"""Redrive the dead-letter queue: re-index the *current* state of each dead-lettered item.

A dead-lettered record holds the item's keys, not a copy to replay. Redrive reads the
item again (consistent read) and indexes what the table holds now, at a backfill
version (read time minus the skew margin), so an old record can never overwrite a
newer document, whatever happened since. An item deleted since is deleted from the
index. A message is removed from the queue only once its item is indexed (or found
already newer in the index); an item that still cannot be indexed stays in the queue
with its new reason. Messages that are not ddbsearch's (the event source mapping's
on-failure records, which name a range of the stream, not items) are left alone and
counted: the stream range they name is repaired by ``ddbsearch backfill``.

Like the stream handler, redrive writes every live generation of the index (the
serving one and, during a reindex, the one being built), each with the ids and
document model of its own configuration; a message is resolved only when its item is
done in all of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ddbsearch import clients
from ddbsearch.core.bulk import BulkIndexer, Outcome
from ddbsearch.core.documents import (
    Action,
    InvalidDocument,
    action_from_item,
    backfill_version,
    document_id,
)
from ddbsearch.core.generations import GenerationConfig
from ddbsearch.core.transport import SearchTransport
from ddbsearch.errors import ConfigurationError
from ddbsearch.tables import describe_table
from ddbsearch.targets import Target

# Long enough that one run never sees the same message twice.
VISIBILITY_TIMEOUT_SECONDS = 300
BULK_DEADLINE_SECONDS = 120.0


@dataclass
class RedriveReport:
    received: int = 0
    indexed: int = 0
    deleted: int = 0
    stale: int = 0
    batch_records: int = 0  # on-failure records of the event source mapping, left in place
    still_failing: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "indexed": self.indexed,
            "deleted": self.deleted,
            "stale": self.stale,
            "batch_records": self.batch_records,
            "still_failing": self.still_failing,
        }


def key_names(target: Target) -> list[str]:
    if target.key_names:
        return list(target.key_names)
    return describe_table(clients.client(target, "dynamodb"), target.table).key_names


def redrive(
    target: Target,
    *,
    max_messages: int | None = None,
    dry_run: bool = False,
    transport: SearchTransport | None = None,
) -> RedriveReport:
    if not target.dlq_url:
        raise ConfigurationError("this target has no dead-letter queue to redrive")
    sqs = clients.client(target, "sqs")
    search = transport or clients.search_transport(target)
    run = _Redrive(
        table=target.table,
        names=key_names(target),
        ddb=clients.client(target, "dynamodb"),
        bulk=BulkIndexer(search, target.index),
        generations=_live(search, target.index),
    )
    kept: list[dict[str, Any]] = []
    while max_messages is None or run.report.received < max_messages:
        want = 10 if max_messages is None else min(10, max_messages - run.report.received)
        with clients.aws_errors("dead-letter queue"):
            messages = sqs.receive_message(
                QueueUrl=target.dlq_url,
                MaxNumberOfMessages=want,
                VisibilityTimeout=VISIBILITY_TIMEOUT_SECONDS,
                WaitTimeSeconds=0,
            ).get("Messages", [])
        if not messages:
            break
        run.report.received += len(messages)
        if dry_run:
            run.plan(messages)
            kept.extend(messages)
            continue
        done = run.apply(messages)
        kept.extend(m for m in messages if m not in done)
        _batched(sqs.delete_message_batch, target.dlq_url, done, {})
    # What stays in the queue becomes visible again at once, not in five minutes.
    _batched(sqs.change_message_visibility_batch, target.dlq_url, kept, {"VisibilityTimeout": 0})
    return run.report


def _batched(
    call: Any, queue_url: str, messages: Sequence[dict[str, Any]], extra: dict[str, Any]
) -> None:
    for start in range(0, len(messages), 10):
        entries = [
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], **extra}
            for n, m in enumerate(messages[start : start + 10])
        ]
        with clients.aws_errors("dead-letter queue"):
            call(QueueUrl=queue_url, Entries=entries)


# (concrete index to write, its configuration); (None, None): the index as it is.
_Live = tuple[str | None, GenerationConfig | None]


def _live(transport: SearchTransport, index: str) -> list[_Live]:
    """The generations a change goes to, as the stream handler finds them."""
    from ddbsearch.core.lifecycle import GenerationError, live_generations

    try:
        gens = live_generations(transport, index)
    except GenerationError:
        gens = []
    live: list[_Live] = [(g.name, g.config) for g in gens if g.live]
    return live or [(None, None)]


@dataclass
class _Redrive:
    table: str
    names: Sequence[str]
    ddb: Any
    bulk: BulkIndexer
    generations: Sequence[_Live] = ((None, None),)
    report: RedriveReport = field(default_factory=RedriveReport)

    def plan(self, messages: Sequence[dict[str, Any]]) -> list[tuple[list[Action], dict[str, Any]]]:
        """The actions (one per live generation) each ddbsearch message's item needs now."""
        planned = []
        for message in messages:
            try:
                body = json.loads(message["Body"])
            except ValueError:
                body = None
            if (
                not isinstance(body, dict)
                or body.get("source") != "ddbsearch"
                or "keys" not in body
            ):
                self.report.batch_records += 1
                continue
            actions = self._current(body["keys"])
            if actions:
                planned.append((actions, message))
        return planned

    def _current(self, keys: dict[str, Any]) -> list[Action]:
        read_at = time.time()
        with clients.aws_errors("table"):
            item = self.ddb.get_item(TableName=self.table, Key=keys, ConsistentRead=True).get(
                "Item"
            )
        version = backfill_version(read_at)
        actions = []
        for index, config in self.generations:
            try:
                if item is None:
                    doc_id = document_id(keys, config)
                    actions.append(Action("delete", doc_id, version, None, keys, None, index))
                else:
                    actions.append(action_from_item(item, self.names, version, config, index))
            except InvalidDocument as exc:
                self.report.still_failing.append(
                    {"documentId": document_id(keys, config), "reason": exc.reason}
                )
                return []
        return actions

    def apply(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Index the current state of each message's item; return the messages now resolved."""
        planned = self.plan(messages)
        if not planned:
            return []
        actions = [a for group, _ in planned for a in group]
        result = self.bulk.run(actions, deadline=time.monotonic() + BULK_DEADLINE_SECONDS)
        outcomes = iter(result.results)
        done: list[dict[str, Any]] = []
        for group, message in planned:
            # The first generation's outcome stands for the item in the counts; the
            # message is resolved only when every generation has the item.
            results = [next(outcomes) for _ in group]
            failed = [(a, r) for a, r in zip(group, results, strict=True) if not r.outcome.done]
            if failed:
                action, outcome = failed[0]
                self.report.still_failing.append(
                    {"documentId": action.doc_id, "reason": outcome.reason or outcome.outcome.value}
                )
                continue
            done.append(message)
            if results[0].outcome is Outcome.STALE:
                self.report.stale += 1
            elif group[0].op == "delete":
                self.report.deleted += 1
            else:
                self.report.indexed += 1
        return done
