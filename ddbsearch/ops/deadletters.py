"""Look into the dead-letter queue without consuming it (``explain`` and ``status``).

The queue holds two kinds of message: ddbsearch's own (``"source": "ddbsearch"``: one
item the handler could not index, with its keys, document id and reason; ``redrive``
re-indexes them) and the event source mapping's on-failure records (a range of the
stream given up after the retries; they name no item, and the stream keeps records
only 24 hours, so what they covered is repaired from the table: ``verify --repair``
or ``backfill``).

Messages are received with a short visibility timeout and made visible again at once
(ChangeMessageVisibility 0), so a redrive running meanwhile waits seconds at most.
Receiving does count towards each message's ApproximateReceiveCount.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ddbsearch import clients
from ddbsearch.targets import Target

PEEK_VISIBILITY_SECONDS = 30  # the longest a peeked message can stay hidden (released at once)


@dataclass
class DeadLetters:
    items: list[dict[str, Any]] = field(default_factory=list)  # ddbsearch's messages
    batch_records: int = 0  # the mapping's on-failure records (stream ranges)
    # (shard id, first sequence number, last sequence number) of each on-failure record
    batch_ranges: list[tuple[str, str, str]] = field(default_factory=list)
    other: int = 0  # messages neither of the two
    scanned: int = 0
    truncated: bool = False  # the queue held more than ``limit`` messages

    def for_document(self, doc_id: str) -> list[dict[str, Any]]:
        return [m for m in self.items if m.get("documentId") == doc_id]


def _sent_at(message: dict[str, Any]) -> str | None:
    sent = message.get("Attributes", {}).get("SentTimestamp")
    if not sent:
        return None
    return datetime.fromtimestamp(int(sent) / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def peek(target: Target, *, limit: int = 1000) -> DeadLetters:
    """Up to ``limit`` messages of the target's dead-letter queue, left in the queue."""
    out = DeadLetters()
    if not target.dlq_url:
        return out
    sqs = clients.client(target, "sqs")
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    try:
        while len(seen) < limit:
            with clients.aws_errors("dead-letter queue"):
                got = sqs.receive_message(
                    QueueUrl=target.dlq_url,
                    MaxNumberOfMessages=min(10, limit - len(seen)),
                    VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
                    WaitTimeSeconds=0,
                    AttributeNames=["SentTimestamp"],
                ).get("Messages", [])
            if not got:
                break
            for message in got:
                seen.setdefault(message["MessageId"], message)
                handles.append(message["ReceiptHandle"])
        else:
            out.truncated = True
    finally:
        for start in range(0, len(handles), 10):
            entries = [
                {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for n, h in enumerate(handles[start : start + 10])
            ]
            with clients.aws_errors("dead-letter queue"):
                sqs.change_message_visibility_batch(QueueUrl=target.dlq_url, Entries=entries)
    out.scanned = len(seen)
    for message in seen.values():
        _sort(out, message)
    return out


def _sort(out: DeadLetters, message: dict[str, Any]) -> None:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    if not isinstance(body, dict):
        out.other += 1
    elif body.get("source") == "ddbsearch":
        out.items.append(
            {
                "documentId": body.get("documentId"),
                "reason": body.get("reason"),
                "eventName": body.get("eventName"),
                "sequenceNumber": body.get("sequenceNumber"),
                "version": body.get("version"),
                "sent_at": _sent_at(message),
            }
        )
    elif "DDBStreamBatchInfo" in body or "requestContext" in body:
        out.batch_records += 1
        info = body.get("DDBStreamBatchInfo")
        if isinstance(info, dict):
            shard, first, last = (
                info.get("shardId"),
                info.get("startSequenceNumber"),
                info.get("endSequenceNumber"),
            )
            if isinstance(shard, str) and isinstance(first, str) and isinstance(last, str):
                out.batch_ranges.append((shard, first, last))
    else:
        out.other += 1
