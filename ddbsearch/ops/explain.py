"""Explain: why is this one item searchable, or why not? One verdict and its evidence.

For one key, read consistently: the item (present, attribute count, size; values only
when asked), the document the shared model makes of it (or why the model rejects it),
the document the index holds (present, version, the fields whose values differ),
dead-letter messages for this key (peeked and released at once, never consumed), and
the indexer's lag. A difference is read again after ``settle_seconds`` so a write in
flight is reported as such, not as drift. Item values never appear in the evidence
unless ``show_values`` is set.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from ddbsearch import clients
from ddbsearch.core.documents import InvalidDocument
from ddbsearch.core.transport import SearchTransport
from ddbsearch.errors import DdbsearchError, InputError
from ddbsearch.items import item_from_json, item_size, validate_item
from ddbsearch.ops import deadletters
from ddbsearch.ops.index_reader import IndexDoc, get_documents
from ddbsearch.ops.model import Model
from ddbsearch.ops.partitions import canonical
from ddbsearch.tables import TableInfo, describe_table
from ddbsearch.targets import Target

State = Literal[
    "searchable",
    "absent",
    "orphan",
    "in_flight",
    "dead_lettered",
    "unindexable",
    "missing",
    "stale",
]
DEFAULT_SETTLE_SECONDS = 2.0
MAX_PEEKED_MESSAGES = 1000
LAG_BEHIND_SECONDS = 1.0  # an iterator age above this counts as "behind"
LAG_MAX_SECONDS = 300.0  # status's default threshold (only the measured age is used here)
# Finding the item's last change reads the stream from TRIM_HORIZON (DynamoDB Streams has
# no iterator by time; records are kept 24 hours): bounded by time and by records read.
DEFAULT_STREAM_BUDGET_SECONDS = 5.0
STREAM_BUDGET_RECORDS = 100_000
# DynamoDB Streams may answer GetRecords with an empty page before an open shard's tail
# ("it might take multiple calls to get to a portion of the shard that contains stream
# records"); this many empty pages in a row are taken as the tail on AWS.
AWS_EMPTY_PAGES_AT_TAIL = 3

StreamState = Literal[
    "not_read",  # the indexer has not read the item's last change yet
    "indexed",  # read, and the index holds it (or something newer)
    "read_not_indexed",  # read, but the index does not hold it
    "dead_lettered",  # the handler sent this change to the dead-letter queue
    "discarded",  # the mapping gave this change up (its on-failure record is queued)
    "not_in_stream",  # no change to this key in the stream's retained records
    "not_determined",
]


@dataclass
class ItemChange:
    """The item's last change found in the stream (keys matched by document id; no values)."""

    sequence: str
    shard: str
    event: str  # INSERT, MODIFY or REMOVE
    at: str  # ApproximateCreationDateTime, ISO 8601
    age_seconds: float
    version: int | None  # the external version the indexer writes it at (None: no version)

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "shard": self.shard,
            "event": self.event,
            "at": self.at,
            "age_seconds": round(self.age_seconds, 3),
            "version": self.version,
        }


@dataclass
class StreamPosition:
    """Where the item's last change is relative to the indexer."""

    state: StreamState
    summary: str
    change: ItemChange | None = None
    checkpoint: str | None = None  # the indexer's position in the change's shard (local)
    checkpoint_source: str | None = None  # where positions came from
    records_scanned: int = 0
    shards_scanned: int = 0
    complete: bool = False  # every shard was read to its end within the budget
    seconds: float = 0.0

    @property
    def determined(self) -> bool:
        return self.state != "not_determined"

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "determined": self.determined,
            "summary": self.summary,
            "change": self.change.to_json() if self.change else None,
            "indexer_checkpoint": self.checkpoint,
            "checkpoint_source": self.checkpoint_source,
            "records_scanned": self.records_scanned,
            "shards_scanned": self.shards_scanned,
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Explanation:
    verdict: str
    state: State
    doc_id: str
    keys: dict[str, Any]
    item_present: bool = False
    item_attributes: int = 0
    item_size_bytes: int = 0
    item_values: dict[str, Any] | None = None  # only with show_values
    model_error: str | None = None  # why the document model rejects the item
    doc_present: bool = False
    doc_version: int | None = None
    doc_version_time: str | None = None  # when the indexed change was made / read
    differing_fields: list[str] = field(default_factory=list)
    generation: str = "no include/exclude configuration: every attribute is indexed"
    excluded: list[str] = field(default_factory=list)  # attributes the configuration leaves out
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    batch_records: int = 0  # on-failure records of the mapping (stream ranges, not keys)
    dead_letters_scanned: int = 0
    dead_letter_note: str | None = None
    lag_seconds: float | None = None
    lag_note: str | None = None
    stream: StreamPosition | None = None  # where the item's last change is (None: not looked)
    settled: bool = False  # the first reads differed and a second read agreed

    @property
    def searchable(self) -> bool:
        return self.state == "searchable"

    @property
    def consistent(self) -> bool:
        """Index and table agree on this key (searchable, or absent from both)."""
        return self.state in ("searchable", "absent")

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "state": self.state,
            "searchable": self.searchable,
            "id": self.doc_id,
            "keys": self.keys,
            "item": {
                "present": self.item_present,
                "attributes": self.item_attributes,
                "size_bytes": self.item_size_bytes,
                **({"values": self.item_values} if self.item_values is not None else {}),
                "model_error": self.model_error,
            },
            "document": {
                "present": self.doc_present,
                "version": self.doc_version,
                "version_time": self.doc_version_time,
                "differing_fields": self.differing_fields,
            },
            "generation": self.generation,
            "excluded_attributes": self.excluded,
            "dead_letters": self.dead_letters,
            "dead_letter_batch_records": self.batch_records,
            "dead_letters_scanned": self.dead_letters_scanned,
            "dead_letter_note": self.dead_letter_note,
            "lag_seconds": self.lag_seconds,
            "lag_note": self.lag_note,
            "stream": self.stream.to_json() if self.stream else None,
            "settled": self.settled,
        }


# --------------------------------------------------------------------------- keys


def parse_key(args: Sequence[str], table: TableInfo) -> dict[str, Any]:
    """``NAME=VALUE`` pairs (typed by the key schema) or one JSON object -> the item's key."""
    if not args:
        raise InputError(
            "give the item's key: "
            + " ".join(f"{k.name}=VALUE" for k in table.keys)
            + " (or one JSON object)"
        )
    if len(args) == 1 and args[0].lstrip().startswith("{"):
        from ddbsearch.items import parse_item

        keys: dict[str, Any] = parse_item(args[0])
    else:
        types = {k.name: k.type for k in table.keys}
        raw: dict[str, Any] = {}
        for arg in args:
            name, sep, value = arg.partition("=")
            if not sep:
                raise InputError(f"{arg!r} is not NAME=VALUE")
            if name not in types:
                raise InputError(
                    f"{name!r} is not a key attribute of table '{table.name}' "
                    f"(its key: {', '.join(f'{k.name} ({k.type})' for k in table.keys)})"
                )
            if name in raw:
                raise InputError(f"key attribute {name} given twice")
            raw[name] = {types[name]: value}
        keys = item_from_json(raw, "key")
    extra = sorted(set(keys) - set(table.key_names))
    if extra:
        raise InputError(
            f"{', '.join(extra)} {'is' if len(extra) == 1 else 'are'} not key attribute(s) "
            f"of table '{table.name}' (its key: {', '.join(table.key_names)})"
        )
    validate_item(keys, table, "key")
    return keys


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_plain(v) for v in value]
    return value


def _key_display(keys: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in keys.items():
        ((tag, inner),) = value.items()
        out[name] = _plain(inner) if tag != "N" else inner
    return out


# --------------------------------------------------------------------------- evidence


def differing_fields(expected: Any, actual: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two documents (names only, no values)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for name in sorted(set(expected) | set(actual)):
            path = f"{prefix}.{name}" if prefix else name
            if name not in expected or name not in actual:
                out.append(path)
            else:
                out.extend(differing_fields(expected[name], actual[name], path))
        return out
    if canonical(expected) != canonical(actual):
        return [prefix or "(document)"]
    return []


def version_time(version: int | None) -> str | None:
    """When the change an external version stands for was made (stream) or read (backfill)."""
    if version is None or version <= 0:
        return None
    seconds = (version // 2) / 1000
    kind = "stream change" if version % 2 else "backfill/repair read"
    try:
        stamp = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return f"{kind} at {stamp.isoformat(timespec='seconds')}"


def indexer_lag(target: Target) -> tuple[float | None, str]:
    """The indexer's iterator age in seconds (None when unknown) and how it was measured."""
    from ddbsearch.ops.status import aws as on_aws
    from ddbsearch.ops.status import local as on_local

    backend = on_local if target.kind == "local" else on_aws
    try:
        checks = backend.pipeline_checks(target, None, LAG_MAX_SECONDS, datetime.now(timezone.utc))
        lag = next(c for c in checks if c.name == "lag")
    except (DdbsearchError, StopIteration) as exc:
        return None, f"lag unknown: {exc}"
    age = lag.data.get("iterator_age_s")
    return (float(age) if isinstance(age, (int, float)) else None), lag.summary


# --------------------------------------------------------------------------- stream position


@dataclass
class _Scan:
    last: tuple[str, dict[str, Any]] | None = None  # (shard, Lambda-shaped record)
    records: int = 0
    shards: int = 0
    complete: bool = True
    error: str | None = None


def _indexer_positions(target: Target, stream_arn: str) -> tuple[dict[str, Any] | None, str]:
    """The indexer's per-shard checkpoints (local stream worker's report), or None on AWS.

    AWS does not expose an event source mapping's position in the stream.
    """
    if target.kind != "local":
        return None, "AWS does not expose the event source mapping's position in the stream"
    from pathlib import Path

    from ddbsearch.local import state

    root = Path(target.root) if target.root else state.default_root()
    report = state.read_mapping_status(root, target.table)
    if report is None:
        return None, "no report from the local stream worker"
    if report.stream_arn != stream_arn:
        return None, "the local stream worker reads another stream of this table"
    return report.checkpoints, "the local stream worker's checkpoints"


def _shard_order(shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parents before children (a key's later changes are in the child shards)."""

    def start(shard: dict[str, Any]) -> int:
        text = (shard.get("SequenceNumberRange") or {}).get("StartingSequenceNumber")
        return int(text) if isinstance(text, str) and text.isdigit() else 0

    return sorted(shards, key=start)


def _scan_stream(
    streams: Any,
    stream_arn: str,
    *,
    model: Model,
    doc_id: str,
    deadline: float,
    max_records: int,
    empty_pages_at_tail: int,
) -> _Scan:
    """Read every shard from TRIM_HORIZON within the budget; keep the key's last record."""
    from ddbsearch.local.worker import lambda_record

    scan = _Scan()
    shards: list[dict[str, Any]] = []
    start: str | None = None
    while True:
        kwargs: dict[str, Any] = {"StreamArn": stream_arn}
        if start:
            kwargs["ExclusiveStartShardId"] = start
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        shards.extend(description.get("Shards", []))
        start = description.get("LastEvaluatedShardId")
        if not start:
            break
    for shard in _shard_order(shards):
        shard_id = shard["ShardId"]
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        ).get("ShardIterator")
        scan.shards += 1
        empty = 0
        while iterator:
            if time.monotonic() > deadline or scan.records >= max_records:
                scan.complete = False
                return scan
            page = streams.get_records(
                ShardIterator=iterator, Limit=min(1000, max_records - scan.records)
            )
            records = page.get("Records", [])
            iterator = page.get("NextShardIterator")
            if not records:
                empty += 1
                if empty >= empty_pages_at_tail:
                    break  # the open shard's tail (a closed shard ends without an iterator)
                continue
            empty = 0
            scan.records += len(records)
            for raw in records:
                record = lambda_record(raw, stream_arn)
                try:
                    matches = model.doc_id(record["dynamodb"].get("Keys") or {}) == doc_id
                except InvalidDocument:
                    continue
                if matches:
                    scan.last = (shard_id, record)
    return scan


def _after(sequence: str, checkpoint: Any) -> bool:
    try:
        return int(sequence) > int(str(checkpoint))
    except ValueError:
        return str(sequence) > str(checkpoint)


def _in_range(sequence: str, first: str, last: str) -> bool:
    try:
        return int(first) <= int(sequence) <= int(last)
    except ValueError:
        return False


def stream_position(
    target: Target,
    table: TableInfo,
    *,
    model: Model,
    doc_id: str,
    doc: IndexDoc | None,
    doc_matches: bool,
    letters: deadletters.DeadLetters | None,
    lag_seconds: float | None,
    budget_seconds: float = DEFAULT_STREAM_BUDGET_SECONDS,
    max_records: int = STREAM_BUDGET_RECORDS,
) -> StreamPosition:
    """Find the item's last change in the stream and say where it is relative to the indexer.

    Records are matched by document id (made from ``dynamodb.Keys``); no value is kept.
    ``doc_matches``: the index's document equals what the model makes of the item now.
    The work is bounded (``budget_seconds``, ``max_records``); when the budget runs out
    before every shard's end the answer is "not determined".
    """
    stream_arn = table.stream_arn or target.stream_arn
    if not stream_arn:
        return StreamPosition("not_determined", "not determined: the table has no stream")
    started = time.monotonic()
    streams = clients.client(target, "dynamodbstreams")
    empty_pages = 1 if target.kind == "local" else AWS_EMPTY_PAGES_AT_TAIL
    try:
        with clients.aws_errors(f"reading the stream of table '{table.name}'"):
            scan = _scan_stream(
                streams,
                stream_arn,
                model=model,
                doc_id=doc_id,
                deadline=started + budget_seconds,
                max_records=max_records,
                empty_pages_at_tail=empty_pages,
            )
    except DdbsearchError as exc:
        return StreamPosition(
            "not_determined", f"not determined: {exc}", seconds=time.monotonic() - started
        )
    checkpoints, source = _indexer_positions(target, stream_arn)
    out = StreamPosition(
        "not_determined",
        "",
        checkpoint_source=source,
        records_scanned=scan.records,
        shards_scanned=scan.shards,
        complete=scan.complete,
        seconds=time.monotonic() - started,
    )
    scanned = f"{scan.records:,} record(s) in {scan.shards} shard(s)"
    if scan.last is None:
        if scan.complete:
            out.state = "not_in_stream"
            out.summary = (
                f"no change to this key in the stream's retained records ({scanned}; "
                "the stream keeps 24 hours)"
            )
        else:
            out.summary = (
                f"not determined: no change to this key in the first {scanned} read within "
                f"the budget ({budget_seconds:g} s, {max_records:,} records)"
            )
        return out
    shard_id, record = scan.last
    out.change = _change(shard_id, record, model)
    _classify(
        out,
        doc_id=doc_id,
        doc=doc,
        doc_matches=doc_matches,
        letters=letters,
        checkpoints=checkpoints,
        lag_seconds=lag_seconds,
    )
    if not scan.complete:
        out.state = "not_determined"
        out.summary = (
            f"not determined: the budget ran out after {scanned}; the last change found "
            f"({out.change.event} at {out.change.at}) may not be the latest"
        )
    return out


def _change(shard_id: str, record: dict[str, Any], model: Model) -> ItemChange:
    from ddbsearch.core.documents import MissingVersion, record_version

    ddb = record["dynamodb"]
    created = float(ddb.get("ApproximateCreationDateTime") or 0)
    try:
        version: int | None = record_version(record, model.config)
    except (MissingVersion, KeyError, ValueError):
        version = None
    return ItemChange(
        sequence=str(ddb["SequenceNumber"]),
        shard=shard_id,
        event=str(record.get("eventName") or "?"),
        at=datetime.fromtimestamp(created, tz=timezone.utc).isoformat(timespec="seconds"),
        age_seconds=max(0.0, time.time() - created),
        version=version,
    )


def _dead_lettered(
    out: StreamPosition, change: ItemChange, doc_id: str, letters: deadletters.DeadLetters
) -> bool:
    what = _what(change)
    if any(str(m.get("sequenceNumber")) == change.sequence for m in letters.for_document(doc_id)):
        out.state, out.summary = "dead_lettered", f"{what} is in the dead-letter queue"
        return True
    if any(
        shard == change.shard and _in_range(change.sequence, first, last)
        for shard, first, last in letters.batch_ranges
    ):
        out.state = "discarded"
        out.summary = (
            f"{what} was given up by the event source mapping "
            "(its on-failure record is in the dead-letter queue)"
        )
        return True
    return False


def _what(change: ItemChange) -> str:
    return f"its last change ({change.event}, sequence {change.sequence}, at {change.at})"


def _indexer_read(
    out: StreamPosition, change: ItemChange, checkpoints: dict[str, Any] | None
) -> bool | None:
    """Has the indexer read ``change``? (None: unknown, no checkpoints)."""
    if checkpoints is None:
        return None
    done = checkpoints.get(change.shard) or {}
    sequence = done.get("sequence")
    out.checkpoint = sequence if isinstance(sequence, str) else None
    if done.get("ended"):
        return True
    if out.checkpoint is None:
        return False
    return not _after(change.sequence, out.checkpoint)


def _classify(
    out: StreamPosition,
    *,
    doc_id: str,
    doc: IndexDoc | None,
    doc_matches: bool,
    letters: deadletters.DeadLetters | None,
    checkpoints: dict[str, Any] | None,
    lag_seconds: float | None,
) -> None:
    change = out.change
    assert change is not None
    what = _what(change)
    if letters is not None and _dead_lettered(out, change, doc_id, letters):
        return
    # Versions cannot tell: two changes in one second carry equal stream versions. The
    # document holds the change when it equals what the model makes of the item's
    # current image (which this last change produced), or is gone after a REMOVE.
    indexed = doc is None if change.event == "REMOVE" else doc_matches
    read = _indexer_read(out, change, checkpoints)
    if read is False:
        where = f"sequence {out.checkpoint}" if out.checkpoint else "the shard's start"
        out.state = "not_read"
        out.summary = f"{what} is not yet read by the indexer (its checkpoint: {where})"
    elif indexed:
        out.state = "indexed"
        out.summary = (
            f"{what} is read and applied: the document is deleted"
            if doc is None
            else f"{what} is read and indexed (document version {doc.version})"
        )
    elif read:
        out.state = "read_not_indexed"
        out.summary = f"{what} was read by the indexer, but the index does not hold it"
    elif lag_seconds is not None and change.age_seconds <= lag_seconds + LAG_BEHIND_SECONDS:
        out.state = "not_read"
        out.summary = (
            f"{what} is most likely not yet read: it is {change.age_seconds:,.0f} s old and "
            f"the indexer is {lag_seconds:,.0f} s behind"
        )
    else:
        out.state = "not_determined"
        out.summary = (
            f"{what} is not in the index; whether the indexer has read it is not determined "
            f"({out.checkpoint_source})"
        )


# --------------------------------------------------------------------------- verdict

_MAPPING_CONFLICT = (
    re.compile(r"field '([^']+)' \(mapped as ([^)]+)\)"),  # ddbsearch's own wording
    re.compile(r"failed to parse field \[([^\]]+)\] of type \[([^\]]+)\]"),  # OpenSearch's
)


def short_reason(reason: str) -> str:
    """A dead-letter reason in a few words (the full one stays in the evidence)."""
    for pattern in _MAPPING_CONFLICT:
        match = pattern.search(reason)
        if match:
            return f"mapping conflict on field {match.group(1)} ({match.group(2)})"
    if reason.startswith("invalid_document: "):
        return reason[len("invalid_document: ") :]
    return reason.split(" in document with id", 1)[0]


@dataclass
class _Reads:
    item: dict[str, Any] | None
    doc: IndexDoc | None
    expected: dict[str, Any] | None
    model_error: str | None

    @property
    def agree(self) -> bool:
        if self.item is None or self.model_error is not None:
            return self.doc is None
        return self.doc is not None and canonical(self.expected) == canonical(self.doc.source)


def _read(
    ddb: Any,
    table: TableInfo,
    *,
    model: Model,
    keys: Mapping[str, Any],
    transport: SearchTransport,
    index: str,
) -> _Reads:
    doc_id = model.doc_id(keys)
    with clients.aws_errors(f"reading table '{table.name}'"):
        item = ddb.get_item(TableName=table.name, Key=dict(keys), ConsistentRead=True).get("Item")
    doc = get_documents(transport, index, [doc_id]).get(doc_id)
    expected, error = None, None
    if item is not None:
        try:
            _id, expected, _version = model.document(item)
        except InvalidDocument as exc:
            error = exc.reason
    return _Reads(item, doc, expected, error)


def explain(
    target: Target,
    key_args: Sequence[str],
    *,
    show_values: bool = False,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    stream_budget_seconds: float = DEFAULT_STREAM_BUDGET_SECONDS,
    transport: SearchTransport | None = None,
) -> Explanation:
    """One verdict for one key, with its evidence (see the module docstring)."""
    ddb = clients.client(target, "dynamodb")
    table = describe_table(ddb, target.table)
    keys = parse_key(key_args, table)
    transport = transport or clients.search_transport(target)
    model = Model.load(transport, target.index, table.key_names)
    doc_id = model.doc_id(keys)
    index = model.serving or target.index
    reads = _read(ddb, table, model=model, keys=keys, transport=transport, index=index)
    settled = False
    if not reads.agree and settle_seconds > 0:
        time.sleep(settle_seconds)  # a write in flight reaches the index within the lag
        again = _read(ddb, table, model=model, keys=keys, transport=transport, index=index)
        settled = again.agree
        reads = again
    out = Explanation(verdict="", state="searchable", doc_id=doc_id, keys=_key_display(keys))
    out.settled = settled
    out.generation = model.configuration
    if reads.item is not None:
        out.item_present = True
        out.item_attributes = len(reads.item)
        out.item_size_bytes = item_size(reads.item)
        out.excluded = model.excluded(reads.item)
        if show_values:
            out.item_values = _plain(reads.expected) if reads.expected else _plain(reads.item)
    out.model_error = reads.model_error
    if reads.doc is not None:
        out.doc_present = True
        out.doc_version = reads.doc.version
        out.doc_version_time = version_time(reads.doc.version)
        if reads.expected is not None:
            out.differing_fields = differing_fields(reads.expected, reads.doc.source)
    letters: deadletters.DeadLetters | None = None
    if target.dlq_url:
        letters = deadletters.peek(target, limit=MAX_PEEKED_MESSAGES)
        out.dead_letters = [
            {k: v for k, v in m.items() if k != "documentId"} for m in letters.for_document(doc_id)
        ]
        out.batch_records = letters.batch_records
        out.dead_letters_scanned = letters.scanned
        if letters.truncated:
            out.dead_letter_note = f"only the first {MAX_PEEKED_MESSAGES} messages were read"
    else:
        out.dead_letter_note = "no dead-letter queue recorded for this target"
    out.lag_seconds, out.lag_note = indexer_lag(target)
    if stream_budget_seconds > 0:
        out.stream = stream_position(
            target,
            table,
            model=model,
            doc_id=doc_id,
            doc=reads.doc,
            doc_matches=reads.item is not None and reads.model_error is None and reads.agree,
            letters=letters,
            lag_seconds=out.lag_seconds,
            budget_seconds=stream_budget_seconds,
        )
    out.state, out.verdict = _verdict(reads, out)
    return out


def _verdict(reads: _Reads, e: Explanation) -> tuple[State, str]:  # noqa: PLR0911
    behind = e.lag_seconds is not None and e.lag_seconds > LAG_BEHIND_SECONDS
    lag_text = f"the indexer is {e.lag_seconds:,.0f} s behind" if behind else ""
    pos = e.stream
    change = pos.change if pos is not None else None
    unread = pos is not None and pos.state == "not_read" and change is not None
    # A determined position overrides the general lag: a change already read does not
    # wait on the indexer, however far behind it is on other items.
    waiting = unread or (behind and (pos is None or not pos.determined))
    if unread and change is not None:
        lag_text = f"its last change (at {change.at}) is not yet read by the indexer" + (
            f"; the indexer is {e.lag_seconds:,.0f} s behind" if behind else ""
        )
    if reads.item is None:
        if reads.doc is None:
            return "absent", "not in the table: no item has this key, and the index has no document"
        if waiting:
            return "in_flight", f"not yet removed from the index: {lag_text}"
        return (
            "orphan",
            "orphan: the index holds a document for an item that is not in the table "
            "— `ddbsearch verify --repair`",
        )
    if reads.model_error is None and reads.agree:
        return "searchable", "searchable"
    if e.dead_letters:
        reason = short_reason(str(e.dead_letters[-1].get("reason") or "no reason recorded"))
        return (
            "dead_lettered",
            f"dead-lettered: {reason} — fix the item or the mapping, then `ddbsearch redrive`",
        )
    if pos is not None and pos.state == "discarded":
        return (
            "dead_lettered",
            "dead-lettered: the event source mapping gave up its last change (the stream "
            "range is in the dead-letter queue) — `ddbsearch verify --repair`",
        )
    if reads.model_error is not None:
        return (
            "unindexable",
            f"cannot be indexed: {reads.model_error} — fix the item in the table "
            "(the stream then indexes it)",
        )
    if waiting:
        return "in_flight", f"not yet indexed: {lag_text}"
    if reads.doc is None:
        return (
            "missing",
            "missing: the index has no document for this item — `ddbsearch verify --repair`",
        )
    return "stale", "stale: the index holds an older version — `ddbsearch verify --repair`"
