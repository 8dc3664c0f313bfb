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
    out.state, out.verdict = _verdict(reads, out)
    return out


def _verdict(reads: _Reads, e: Explanation) -> tuple[State, str]:  # noqa: PLR0911
    behind = e.lag_seconds is not None and e.lag_seconds > LAG_BEHIND_SECONDS
    lag_text = f"the indexer is {e.lag_seconds:,.0f} s behind" if behind else ""
    if reads.item is None:
        if reads.doc is None:
            return "absent", "not in the table: no item has this key, and the index has no document"
        if behind:
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
    if reads.model_error is not None:
        return (
            "unindexable",
            f"cannot be indexed: {reads.model_error} — fix the item in the table "
            "(the stream then indexes it)",
        )
    if behind:
        return "in_flight", f"not yet indexed: {lag_text}"
    if reads.doc is None:
        return (
            "missing",
            "missing: the index has no document for this item — `ddbsearch verify --repair`",
        )
    return "stale", "stale: the index holds an older version — `ddbsearch verify --repair`"
