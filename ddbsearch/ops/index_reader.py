"""Read every document of an index once, in pages, with no 10,000-hit limit.

A point in time (``POST /<index>/_search/point_in_time``, OpenSearch 2.4+) freezes
the index, and ``search_after`` pages through it in a stable order: documents
written or deleted during the read neither appear twice nor are skipped. The sort
is ``_doc`` (index order, the cheapest) on a single-shard index; on several shards
Lucene doc numbers repeat across shards, so ``_id`` breaks the ties. Where point in
time is not available (older engines, an emulator without it) the scroll API is
used instead, which also reads a frozen view; :attr:`IndexReader.method` says which.

osmem-server, the local emulator, implements point in time; so does every Amazon
OpenSearch Service domain from 2.5.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from ddbsearch.core.errors import DdbsearchError, NotFoundError, UnreachableError
from ddbsearch.core.transport import Response, SearchTransport, TransportError

PAGE_SIZE = 1000
KEEP_ALIVE = "5m"
# Answers that mean "this engine has no point in time" (not "this index is missing").
_NO_PIT_STATUS = frozenset({400, 405, 501})


@dataclass(frozen=True, slots=True)
class IndexDoc:
    doc_id: str
    version: int | None
    source: dict[str, Any]


def _call(transport: SearchTransport, method: str, path: str, payload: Any = None) -> Response:
    body = None if payload is None else json.dumps(payload).encode()
    try:
        return transport.request(method, path, body)
    except TransportError:
        raise UnreachableError(
            f"cannot reach the search endpoint {transport.base_url}",
            hint="is the local stack running ('ddbsearch deploy --local') / is the network up?",
        ) from None


def _fail(what: str, resp: Response) -> DdbsearchError:
    try:
        error = resp.json().get("error")
    except ValueError:
        error = None
    reason = ""
    if isinstance(error, dict):
        reason = f": {error.get('type', '')} {error.get('reason', '')}".rstrip()
    elif isinstance(error, str):
        reason = f": {error[:200]}"
    return DdbsearchError(f"{what} failed (HTTP {resp.status}{reason})")


class IndexReader:
    """Pages through one index (or alias); iterate :meth:`documents` once."""

    def __init__(
        self, transport: SearchTransport, index: str, *, page_size: int = PAGE_SIZE
    ) -> None:
        self.transport = transport
        self.index = index
        self.page_size = page_size
        self.method: Literal["point in time", "scroll"] = "point in time"
        self.fallback_reason: str | None = None

    def _path(self, suffix: str) -> str:
        return f"/{quote(self.index, safe=',*')}{suffix}"

    def count(self) -> int:
        resp = _call(self.transport, "GET", self._path("/_count"))
        if resp.status == 404:
            raise NotFoundError(
                f"index '{self.index}' does not exist",
                hint="create it with 'ddbsearch deploy', then fill it with 'ddbsearch backfill'",
            )
        if resp.status >= 300:
            raise _fail(f"counting index '{self.index}'", resp)
        return int(resp.json().get("count", 0))

    def shards(self) -> int:
        resp = _call(self.transport, "GET", self._path("/_settings/index.number_of_shards"))
        if resp.status >= 300:
            return 1
        total = 0
        for settings in resp.json().values():
            try:
                total = max(total, int(settings["settings"]["index"]["number_of_shards"]))
            except (KeyError, TypeError, ValueError):
                continue
        return total or 1

    def sort(self) -> list[Any]:
        if self.shards() == 1:
            return [{"_doc": "asc"}]
        return [{"_doc": "asc"}, {"_id": "asc"}]

    def documents(self) -> Iterator[list[IndexDoc]]:
        """Pages of documents until the index is exhausted."""
        resp = _call(
            self.transport, "POST", self._path(f"/_search/point_in_time?keep_alive={KEEP_ALIVE}")
        )
        if resp.status == 404:
            raise NotFoundError(
                f"index '{self.index}' does not exist",
                hint="create it with 'ddbsearch deploy', then fill it with 'ddbsearch backfill'",
            )
        if resp.status in _NO_PIT_STATUS:
            self.method = "scroll"
            self.fallback_reason = f"point in time not supported (HTTP {resp.status})"
            yield from self._scroll()
            return
        if resp.status >= 300:
            raise _fail(f"opening a point in time on '{self.index}'", resp)
        yield from self._pit(str(resp.json()["pit_id"]))

    def _pit(self, pit_id: str) -> Iterator[list[IndexDoc]]:
        sort = self.sort()
        after: list[Any] | None = None
        try:
            while True:
                body: dict[str, Any] = {
                    "size": self.page_size,
                    "pit": {"id": pit_id, "keep_alive": KEEP_ALIVE},
                    "sort": sort,
                    "version": True,
                    "track_total_hits": False,
                    "query": {"match_all": {}},
                }
                if after is not None:
                    body["search_after"] = after
                resp = _call(self.transport, "POST", "/_search", body)
                if resp.status >= 300:
                    raise _fail(f"reading index '{self.index}'", resp)
                data = resp.json()
                pit_id = str(data.get("pit_id") or pit_id)  # may change between pages
                hits = data.get("hits", {}).get("hits", [])
                if not hits:
                    return
                yield [_doc(hit) for hit in hits]
                after = hits[-1]["sort"]
        finally:
            _call(self.transport, "DELETE", "/_search/point_in_time", {"pit_id": [pit_id]})

    def _scroll(self) -> Iterator[list[IndexDoc]]:
        resp = _call(
            self.transport,
            "POST",
            self._path(f"/_search?scroll={KEEP_ALIVE}"),
            {"size": self.page_size, "sort": ["_doc"], "version": True},
        )
        if resp.status == 404:
            raise NotFoundError(f"index '{self.index}' does not exist")
        if resp.status >= 300:
            raise _fail(f"reading index '{self.index}'", resp)
        data = resp.json()
        scroll_id = data.get("_scroll_id")
        try:
            while True:
                hits = data.get("hits", {}).get("hits", [])
                if not hits:
                    return
                yield [_doc(hit) for hit in hits]
                resp = _call(
                    self.transport,
                    "POST",
                    "/_search/scroll",
                    {"scroll": KEEP_ALIVE, "scroll_id": scroll_id},
                )
                if resp.status >= 300:
                    raise _fail(f"scrolling index '{self.index}'", resp)
                data = resp.json()
                scroll_id = data.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                _call(self.transport, "DELETE", "/_search/scroll", {"scroll_id": scroll_id})


def _doc(hit: dict[str, Any]) -> IndexDoc:
    version = hit.get("_version")
    return IndexDoc(
        str(hit["_id"]),
        int(version) if isinstance(version, int) else None,
        hit.get("_source") or {},
    )


def get_documents(transport: SearchTransport, index: str, ids: list[str]) -> dict[str, IndexDoc]:
    """The current documents for ``ids`` (real time: no refresh needed), by id."""
    if not ids:
        return {}
    resp = _call(transport, "POST", f"/{quote(index, safe='')}/_mget", {"ids": ids})
    if resp.status == 404:
        raise NotFoundError(f"index '{index}' does not exist")
    if resp.status >= 300:
        raise _fail(f"reading documents of '{index}'", resp)
    out: dict[str, IndexDoc] = {}
    for doc in resp.json().get("docs", []):
        if doc.get("found"):
            out[str(doc["_id"])] = _doc(doc)
    return out
