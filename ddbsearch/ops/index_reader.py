"""Read every document of an index once, in pages, with no 10,000-hit limit.

A point in time (``POST /<index>/_search/point_in_time``, OpenSearch 2.4+) freezes
the index, and ``search_after`` pages through it in a stable order: documents
written or deleted during the read neither appear twice nor are skipped. The sort
is ``_doc`` (index order, the cheapest) on a single-shard index; on several shards
Lucene doc numbers repeat across shards, so ``_id`` breaks the ties. Where point in
time is not available (older engines, an emulator without it) the scroll API is
used instead, which also reads a frozen view; :attr:`IndexReader.method` says which.

:class:`PointInTime` is the one point in time reader: ``verify`` reads the whole
index through :class:`IndexReader`, ``search --all`` (:func:`ddbsearch.ops.search.scan`)
reads every hit of a query through the same class, with its own sort and errors.

osmem-server, the local emulator, implements point in time; so does every Amazon
OpenSearch Service domain from 2.5.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote

from ddbsearch.core.errors import DdbsearchError, NotFoundError, UnreachableError
from ddbsearch.core.transport import Response, SearchTransport, TransportError


class Request(Protocol):
    """How :class:`PointInTime` talks to the engine: ``(method, path, body)`` -> the parsed
    JSON answer; a failure raises the caller's own error. ``verify`` passes
    :meth:`IndexReader.request` (the core transport), ``search --all`` its opensearch-py
    client's ``transport.perform_request``: one reader, either transport."""

    def __call__(self, method: str, path: str, payload: Any = None, /) -> Any: ...


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


class NoPointInTime(DdbsearchError):
    """The engine answered the point in time API with "no such API" (``status``)."""

    def __init__(self, index: str, status: int) -> None:
        super().__init__(f"point in time not supported on '{index}' (HTTP {status})")
        self.status = status


class PointInTime:
    """One open point in time on an index, read page by page with ``search_after``.

    The one implementation of OpenSearch's PIT paging (``search --all`` and
    ``verify`` both read through it, each over its own :class:`Request`). Use it as a
    context manager: the PIT is deleted when the block ends, however it ends
    (exhausted, a consumer that stops early and closes its generator, an error,
    Ctrl-C); otherwise it would hold the index's segments until its keep-alive ran
    out. ``search_after`` on a sort that ends in a unique tiebreaker never meets the
    10,000-hit window.
    """

    def __init__(
        self, request: Request, index: str, pit_id: str, *, keep_alive: str = KEEP_ALIVE
    ) -> None:
        self.request = request
        self.index = index
        self.id = pit_id
        self.keep_alive = keep_alive
        self.closed = False

    @classmethod
    def open(cls, request: Request, index: str, *, keep_alive: str = KEEP_ALIVE) -> PointInTime:
        """Opens a PIT on ``index``; a failure is ``request``'s error."""
        path = f"/{quote(index, safe=',*')}/_search/point_in_time?keep_alive={keep_alive}"
        opened = request("POST", path)
        return cls(request, index, str(opened["pit_id"]), keep_alive=keep_alive)

    def __enter__(self) -> PointInTime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pages(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The search responses of ``body`` (which sets ``size`` and a ``sort`` ending in a
        tiebreaker), one page after the other until a short page ends the index."""
        size = int(body.get("size", 10))
        after: list[Any] | None = None
        while True:
            page = {**body, "pit": {"id": self.id, "keep_alive": self.keep_alive}}
            if after is not None:
                page["search_after"] = after
            data: dict[str, Any] = self.request("POST", "/_search", page)
            self.id = str(data.get("pit_id") or self.id)  # the id may change between pages
            hits = data.get("hits", {}).get("hits", [])
            yield data
            if len(hits) < size or not hits or hits[-1].get("sort") is None:
                return
            after = hits[-1]["sort"]

    def close(self) -> None:
        """Deletes the PIT, best effort: one that cannot be deleted expires after its
        keep-alive anyway, and cleaning up must not hide the error that ended the read."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.request("DELETE", "/_search/point_in_time", {"pit_id": [self.id]})


def _index_error(index: str) -> Callable[[str, Response], DdbsearchError]:
    def error(what: str, resp: Response) -> DdbsearchError:
        if resp.status == 404:
            return NotFoundError(
                f"index '{index}' does not exist",
                hint="create it with 'ddbsearch deploy', then fill it with 'ddbsearch backfill'",
            )
        return _fail(what, resp)

    return error


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

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """:class:`PointInTime`'s requests over the core transport, failures as verify
        reports them; "no point in time API" as :class:`NoPointInTime` (verify scrolls)."""
        resp = _call(self.transport, method, path, payload)
        if resp.status < 300:
            return resp.json()
        opening = method == "POST" and "/_search/point_in_time" in path
        if opening and resp.status in _NO_PIT_STATUS:
            raise NoPointInTime(self.index, resp.status)
        what = f"opening a point in time on '{self.index}'" if opening else None
        raise _index_error(self.index)(what or f"reading index '{self.index}'", resp)

    def count(self) -> int:
        resp = _call(self.transport, "GET", self._path("/_count"))
        if resp.status >= 300:
            raise _index_error(self.index)(f"counting index '{self.index}'", resp)
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
        try:
            pit = PointInTime.open(self.request, self.index)
        except NoPointInTime as exc:
            self.method = "scroll"
            self.fallback_reason = f"point in time not supported (HTTP {exc.status})"
            yield from self._scroll()
            return
        with pit:
            body: dict[str, Any] = {
                "size": self.page_size,
                "sort": self.sort(),
                "version": True,
                "track_total_hits": False,
                "query": {"match_all": {}},
            }
            for data in pit.pages(body):
                hits = data.get("hits", {}).get("hits", [])
                if hits:
                    yield [_doc(hit) for hit in hits]

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
