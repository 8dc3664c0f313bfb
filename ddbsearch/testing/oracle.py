"""The oracle: does the index hold exactly what the table says it should?

The table is the source of truth. For every item, the expected document is
``to_document(item)`` under ``document_id(keys)`` (the one model the stream
handler and backfill share); an item the model rejects is expected to be absent
from the index (it is dead-lettered instead). :func:`diff_index` reads both
sides completely (a consistent Scan, a scroll over the refreshed index) and
returns what differs, naming documents by id only, never by content, so a
diff's summary can go into logs and reports.

Used by the reliability suite (tests/reliability); it is meant for tables and
indexes that fit in memory (tests, small demos), not for production-sized ones.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddbsearch.core.documents import InvalidDocument, document_id, to_document
from ddbsearch.core.generations import GenerationConfig
from ddbsearch.core.transport import SearchTransport
from ddbsearch.errors import DdbsearchError, NotFoundError

SCROLL_PAGE = 500
SCROLL_KEEPALIVE = "1m"


def canonical(document: Any) -> str:
    """A document as the index stores it (a JSON round trip), in one comparable text.

    Comparing this text, not Python values, keeps ``True`` apart from ``1`` and
    ``1`` apart from ``"1"``; the round trip makes floats compare as the index
    keeps them.
    """
    return json.dumps(
        json.loads(json.dumps(document, ensure_ascii=False)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


@dataclass(frozen=True)
class Expected:
    """What the index should hold for a set of items."""

    documents: dict[str, dict[str, Any]]
    # Items the document model rejects: id -> reason (they must not be in the index).
    invalid: dict[str, str] = field(default_factory=dict)


def expected_documents(
    items: Iterable[Mapping[str, Any]],
    key_names: Sequence[str],
    config: GenerationConfig | None = None,
) -> Expected:
    """``config``: the configuration of the generation compared (None: the original model)."""
    documents: dict[str, dict[str, Any]] = {}
    invalid: dict[str, str] = {}
    for item in items:
        keys = {name: item[name] for name in key_names}
        doc_id = document_id(keys, config)
        try:
            documents[doc_id] = to_document(item, config, key_names)
        except InvalidDocument as exc:
            invalid[doc_id] = exc.reason
    return Expected(documents, invalid)


@dataclass(frozen=True)
class IndexDiff:
    """The difference between the expected documents and the index's (ids only)."""

    compared: int
    missing: tuple[str, ...] = ()  # expected, not in the index
    unexpected: tuple[str, ...] = ()  # in the index, not expected
    different: tuple[str, ...] = ()  # in both, with other content

    @property
    def mismatches(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.different)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def summary(self, limit: int = 5) -> str:
        if self.ok:
            return f"{self.compared} documents compared, 0 mismatches"
        parts = [f"{self.compared} documents compared, {self.mismatches} mismatches"]
        for label, ids in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("different", self.different),
        ):
            if ids:
                shown = ", ".join(repr(i[:80]) for i in ids[:limit])
                more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
                parts.append(f"{label}: {shown}{more}")
        return "; ".join(parts)


def compare(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> IndexDiff:
    """Compare two id -> document maps exactly (see :func:`canonical`)."""
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    different = sorted(
        i for i in set(expected) & set(actual) if canonical(expected[i]) != canonical(actual[i])
    )
    return IndexDiff(
        compared=len(set(expected) | set(actual)),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        different=tuple(different),
    )


def scan_items(ddb: Any, table: str) -> Iterator[dict[str, Any]]:
    """Every item of the table (consistent, paginated Scan; low-level DynamoDB JSON)."""
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        yield from page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def key_names(ddb: Any, table: str) -> list[str]:
    from ddbsearch.tables import key_names as table_key_names

    return table_key_names(ddb, table)


def index_documents(transport: SearchTransport, index: str) -> dict[str, dict[str, Any]]:
    """Every document of the index, by id (refreshes first; scrolls through all of it)."""
    refreshed = transport.request("POST", f"/{index}/_refresh")
    if refreshed.status == 404:
        raise NotFoundError(f"index {index!r} does not exist")
    resp = transport.json(
        "POST",
        f"/{index}/_search?scroll={SCROLL_KEEPALIVE}",
        {"size": SCROLL_PAGE, "sort": ["_doc"], "query": {"match_all": {}}},
    )
    if resp.status >= 300:
        raise DdbsearchError(f"could not read index {index!r} ({resp.status})")
    out: dict[str, dict[str, Any]] = {}
    body = resp.json()
    scroll_id = body.get("_scroll_id")
    try:
        while True:
            hits = body.get("hits", {}).get("hits", [])
            if not hits:
                return out
            for hit in hits:
                out[hit["_id"]] = hit.get("_source", {})
            more = transport.json(
                "POST",
                "/_search/scroll",
                {"scroll": SCROLL_KEEPALIVE, "scroll_id": scroll_id},
            )
            if more.status >= 300:
                raise DdbsearchError(f"could not scroll index {index!r} ({more.status})")
            body = more.json()
            scroll_id = body.get("_scroll_id", scroll_id)
    finally:
        if scroll_id:
            transport.json("DELETE", "/_search/scroll", {"scroll_id": scroll_id})


def diff_index(
    ddb: Any,
    table: str,
    transport: SearchTransport,
    index: str,
    *,
    exclude: Collection[str] = (),
    config: GenerationConfig | None = None,
) -> IndexDiff:
    """Read the whole table and the whole index and compare them.

    ``exclude``: ids expected to be absent although the model accepts their item
    (the index rejected them, e.g. a mapping conflict, and they were dead-lettered).
    """
    expected = expected_documents(scan_items(ddb, table), key_names(ddb, table), config)
    wanted = {i: d for i, d in expected.documents.items() if i not in exclude}
    return compare(wanted, index_documents(transport, index))
