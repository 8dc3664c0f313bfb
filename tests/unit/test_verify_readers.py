"""The index reader (point in time, scroll fallback, sort) and explain's evidence helpers,
against a scripted transport (no emulator)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ddbsearch.core.transport import Response
from ddbsearch.errors import DdbsearchError, NotFoundError
from ddbsearch.ops.explain import differing_fields, short_reason, version_time
from ddbsearch.ops.index_reader import IndexReader, NoPointInTime, PointInTime


class Scripted:
    """Answers requests from a list of (method, path prefix, status, body); records them."""

    base_url = "http://scripted"

    def __init__(self, answers: list[tuple[str, str, int, Any]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, body: bytes | None = None, **_: Any) -> Response:
        payload = json.loads(body) if body else None
        self.seen.append((method, path, payload))
        for i, (m, prefix, status, answer) in enumerate(self.answers):
            if m == method and path.startswith(prefix):
                del self.answers[i]
                return Response(status, json.dumps(answer).encode())
        raise AssertionError(f"unexpected {method} {path}")


def _shards(n: int) -> dict[str, Any]:
    return {"ix": {"settings": {"index": {"number_of_shards": str(n)}}}}


def _hits(*ids: str) -> dict[str, Any]:
    return {
        "hits": {
            "hits": [
                {"_id": i, "_version": 4, "_source": {"n": i}, "sort": [n]}
                for n, i in enumerate(ids)
            ]
        }
    }


def test_point_in_time_pages_with_search_after_and_is_closed() -> None:
    t = Scripted(
        [
            ("POST", "/ix/_search/point_in_time", 200, {"pit_id": "p1"}),
            (
                "GET",
                "/ix/_settings",
                200,
                {"ix": {"settings": {"index": {"number_of_shards": "1"}}}},
            ),
            ("POST", "/_search", 200, {**_hits("a", "b"), "pit_id": "p2"}),
            ("POST", "/_search", 200, _hits("c")),
            ("POST", "/_search", 200, _hits()),
            ("DELETE", "/_search/point_in_time", 200, {}),
        ]
    )
    reader = IndexReader(t, "ix", page_size=2)  # type: ignore[arg-type]
    pages = [[d.doc_id for d in page] for page in reader.documents()]
    assert pages == [["a", "b"], ["c"]]
    assert reader.method == "point in time"
    searches = [p for m, path, p in t.seen if path == "/_search"]
    assert searches[0]["sort"] == [{"_doc": "asc"}]
    assert "search_after" not in searches[0]
    assert searches[1]["pit"]["id"] == "p2"  # the newest id is always used
    assert searches[1]["search_after"] == [1]
    assert t.seen[-1] == ("DELETE", "/_search/point_in_time", {"pit_id": ["p2"]})


def test_several_shards_break_doc_ties_with_the_id() -> None:
    t = Scripted([("GET", "/ix/_settings", 200, _shards(3))])
    assert IndexReader(t, "ix").sort() == [{"_doc": "asc"}, {"_id": "asc"}]  # type: ignore[arg-type]


def test_without_point_in_time_it_scrolls_and_says_so() -> None:
    t = Scripted(
        [
            ("POST", "/ix/_search/point_in_time", 405, {"error": "Incorrect HTTP method"}),
            ("POST", "/ix/_search?scroll=", 200, {**_hits("a"), "_scroll_id": "s1"}),
            ("POST", "/_search/scroll", 200, {**_hits("b"), "_scroll_id": "s2"}),
            ("POST", "/_search/scroll", 200, _hits()),
            ("DELETE", "/_search/scroll", 200, {}),
        ]
    )
    reader = IndexReader(t, "ix")  # type: ignore[arg-type]
    ids = [d.doc_id for page in reader.documents() for d in page]
    assert ids == ["a", "b"]
    assert reader.method == "scroll"
    assert reader.fallback_reason == "point in time not supported (HTTP 405)"
    assert t.seen[-1] == ("DELETE", "/_search/scroll", {"scroll_id": "s2"})


def test_a_missing_index_is_not_found() -> None:
    t = Scripted([("POST", "/ix/_search/point_in_time", 404, {"error": "no such index"})])
    with pytest.raises(NotFoundError, match="index 'ix' does not exist"):
        list(IndexReader(t, "ix").documents())  # type: ignore[arg-type]


def test_the_point_in_time_is_closed_when_the_reader_stops_early() -> None:
    t = Scripted(
        [
            ("POST", "/ix/_search/point_in_time", 200, {"pit_id": "p1"}),
            ("POST", "/_search", 200, _hits("a", "b")),
            ("DELETE", "/_search/point_in_time", 200, {}),
        ]
    )

    def first_page() -> list[str]:
        with PointInTime.open(IndexReader(t, "ix").request, "ix") as pit:  # type: ignore[arg-type]
            for data in pit.pages({"size": 2, "sort": [{"_shard_doc": "asc"}]}):
                return [h["_id"] for h in data["hits"]["hits"]]
        return []

    assert first_page() == ["a", "b"]
    assert t.seen[-1] == ("DELETE", "/_search/point_in_time", {"pit_id": ["p1"]})


def test_a_failed_page_closes_the_point_in_time_and_raises_its_own_error() -> None:
    t = Scripted(
        [
            ("POST", "/ix/_search/point_in_time", 200, {"pit_id": "p1"}),
            ("POST", "/_search", 500, {"error": {"type": "boom", "reason": "shard failed"}}),
            # the DELETE fails too: the page's error is the one raised
            ("DELETE", "/_search/point_in_time", 500, {}),
        ]
    )
    t.answers.insert(1, ("GET", "/ix/_settings", 200, _shards(1)))
    stream = IndexReader(t, "ix").documents()  # type: ignore[arg-type]
    with pytest.raises(DdbsearchError, match=r"reading index 'ix' failed \(HTTP 500: boom"):
        next(stream)
    assert t.seen[-1][0] == "DELETE"


def test_an_engine_without_point_in_time_is_told_apart() -> None:
    t = Scripted([("POST", "/ix/_search/point_in_time", 400, {"error": "no handler"})])
    with pytest.raises(NoPointInTime) as caught:
        PointInTime.open(IndexReader(t, "ix").request, "ix")  # type: ignore[arg-type]
    assert caught.value.status == 400


def test_differing_fields_names_paths_not_values() -> None:
    expected = {"a": 1, "m": {"x": 1, "y": [1, 2]}, "gone": "z", "same": True}
    actual = {"a": 1.5, "m": {"x": 1, "y": [1, 3]}, "extra": 1, "same": True}
    assert differing_fields(expected, actual) == ["a", "extra", "gone", "m.y"]
    assert differing_fields({"b": True}, {"b": 1}) == ["b"]
    assert differing_fields({"b": 1}, {"b": 1}) == []


def test_version_time_tells_stream_from_backfill() -> None:
    assert version_time(1_700_000_000_000 * 2 + 1) == "stream change at 2023-11-14T22:13:20+00:00"
    assert (
        version_time(1_700_000_000_000 * 2) == "backfill/repair read at 2023-11-14T22:13:20+00:00"
    )
    assert version_time(None) is None


def test_short_reason() -> None:
    reason = (
        "mapper_parsing_exception: failed to parse field [amount] of type [double] in "
        "document with id '…'.: For input string: '…'"
    )
    assert short_reason(reason) == "mapping conflict on field amount (double)"
    ours = (
        "mapper_parsing_exception: field 'amount' (mapped as double) cannot take the item's "
        "value (caused by number_format_exception)"
    )
    assert short_reason(ours) == "mapping conflict on field amount (double)"
    assert short_reason("invalid_document: attribute name 'a.b' contains a dot") == (
        "attribute name 'a.b' contains a dot"
    )
