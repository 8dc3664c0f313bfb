"""Drift made on purpose behind the pipeline's back: `verify` finds exactly it while
writes continue, `--repair` fixes it without ever regressing a newer write, and
`explain` gives the right verdict for each case.

Cases: documents deleted (missing), a document with no item (orphan), content altered
in the index and an older version of an item kept by the index (stale), an item the
index rejects (a mapping conflict: dead-lettered by the handler) and one the document
model rejects (a dotted attribute name: dead-lettered too).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

from ddbsearch.core.documents import document_id, to_document
from ddbsearch.ops.explain import explain
from ddbsearch.ops.verify import run_verify

pytestmark = pytest.mark.integration

SETTLE = 1.0  # the local worker's lag is well under a second


def _key(pk: str, sk: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def _item(pk: str, sk: int, text: str, n: int = 1) -> dict[str, Any]:
    return {**_key(pk, sk), "text": {"S": text}, "amount": {"N": str(n)}}


def _id(pk: str, sk: int) -> str:
    return document_id(_key(pk, sk))


def _put_docs(p: Any, items: list[dict[str, Any]]) -> float:
    for item in items:
        p.ddb.put_item(TableName=p.table, Item=item)
    return time.time()


def _doc_path(p: Any, doc_id: str) -> str:
    return f"/{p.index}/_doc/{quote(doc_id, safe='')}"


def _version(p: Any, doc_id: str) -> int:
    return int(p.search.request("GET", _doc_path(p, doc_id)).json()["_version"])


def _tamper(p: Any, doc_id: str, document: dict[str, Any], version: int) -> None:
    resp = p.search.json(
        "PUT",
        _doc_path(p, doc_id) + f"?version={version}&version_type=external_gte&refresh=true",
        document,
    )
    assert resp.status < 300, resp.body


def _wait_until(moment: float) -> None:
    """Repairs are versioned below writes of the last few seconds: let those age."""
    while time.time() < moment:
        time.sleep(min(0.2, moment - time.time()))


@contextmanager
def _live(p: Any, keys: list[tuple[str, int]], pause: float = 0.02) -> Iterator[list[int]]:
    """Keep writing ``keys`` (random updates, new values) with the worker running."""
    stop = threading.Event()
    written = [0]

    def write() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            pk, sk = rng.choice(keys)
            written[0] += 1
            p.ddb.put_item(TableName=p.table, Item=_item(pk, sk, f"live {written[0]}", sk))
            stop.wait(pause)

    def work() -> None:
        while not stop.is_set():
            if not p.worker.step():
                time.sleep(0.01)

    threads = [threading.Thread(target=write, daemon=True), threading.Thread(target=work)]
    for t in threads:
        t.start()
    try:
        yield written
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)


def test_verify_finds_exactly_the_drift_made_on_purpose_and_repairs_it(pipeline: Any) -> None:
    p = pipeline(batch_size=50)
    stable = [_item("user", i, f"purchase {i}", i) for i in range(40)]
    busy_keys = [("busy", i) for i in range(20)]
    _put_docs(p, stable + [_item(pk, sk, "first", sk) for pk, sk in busy_keys])
    conflict = dict(_item("odd", 1, "amount is text"), amount={"S": "not a number"})
    dotted = dict(_item("odd", 2, "dotted name"), **{"a.b": {"S": "x"}})
    last_write = _put_docs(p, [conflict, dotted])
    p.drain()
    assert {m["documentId"] for m in p.dead_letters()} == {_id("odd", 1), _id("odd", 2)}

    # Behind the pipeline's back:
    for i in (0, 1):  # missing
        assert p.search.request("DELETE", _doc_path(p, _id("user", i))).status < 300
    altered = _id("user", 2)  # stale: content altered in the index, at its own version
    _tamper(p, altered, {"pk": "user", "sk": 2, "text": "tampered"}, _version(p, altered))
    older = _id("user", 3)  # stale: the item moves on, the index keeps the old content
    old_doc = to_document(stable[3])
    p.ddb.put_item(TableName=p.table, Item=_item("user", 3, "refunded", 3))
    p.drain()
    _tamper(p, older, old_doc, _version(p, older))
    last_write = time.time()
    ghost = _id("ghost", 9)  # orphan
    _tamper(p, ghost, {"pk": "ghost", "sk": 9, "text": "no item"}, 2)
    expected = {
        "missing": {_id("user", 0), _id("user", 1), _id("odd", 1)},
        "stale": {altered, older},
        "orphan": {ghost},
        "unindexable": {_id("odd", 2)},
    }

    # explain: one verdict per case
    target = p.target()
    verdicts = {
        name: explain(target, [f"pk={pk}", f"sk={sk}"], settle_seconds=SETTLE)
        for name, (pk, sk) in {
            "missing": ("user", 0),
            "stale": ("user", 3),
            "altered": ("user", 2),
            "orphan": ("ghost", 9),
            "conflict": ("odd", 1),
            "dotted": ("odd", 2),
            "fine": ("user", 5),
        }.items()
    }
    assert verdicts["fine"].verdict == "searchable"
    assert verdicts["missing"].state == "missing"
    assert verdicts["stale"].verdict == (
        "stale: the index holds an older version — `ddbsearch verify --repair`"
    )
    assert verdicts["stale"].differing_fields == ["text"]
    assert verdicts["altered"].differing_fields == ["amount", "text"]
    assert verdicts["orphan"].state == "orphan"
    for case in ("conflict", "dotted"):
        assert verdicts[case].state == "dead_lettered", verdicts[case].verdict
        assert verdicts[case].verdict.endswith("then `ddbsearch redrive`")
    assert verdicts["conflict"].verdict == (
        "dead-lettered: mapping conflict on field amount (double) — fix the item or the "
        "mapping, then `ddbsearch redrive`"
    )
    assert "mapper_parsing_exception" in verdicts["conflict"].dead_letters[0]["reason"]
    assert "dot" in verdicts["dotted"].verdict

    _wait_until(last_write + 6.5)
    with _live(p, busy_keys) as written:
        found: dict[str, set[str]] = {}
        report = run_verify(
            target,
            settle_seconds=SETTLE,
            on_difference=lambda d: found.setdefault(d.kind, set()).add(d.doc_id),
        )
        assert found == expected, report.to_json()  # none missed, no false positive
        assert written[0] > 0

        repairs: dict[str, str | None] = {}
        fixed = run_verify(
            target,
            repair=True,
            settle_seconds=SETTLE,
            on_difference=lambda d: repairs.__setitem__(d.doc_id, d.repair),
        )
    assert set(repairs) == set().union(*expected.values())
    for doc_id in expected["missing"] - {_id("odd", 1)} | expected["stale"]:
        assert repairs[doc_id] == "indexed"
    assert repairs[ghost] == "deleted"
    assert (repairs[_id("odd", 1)] or "").startswith("failed: mapper_parsing_exception")
    assert (repairs[_id("odd", 2)] or "").startswith("not repairable")
    assert fixed.result == "drift"
    p.stats["mismatches_made_on_purpose_and_found"] += report.drift

    # The operator fixes the two items; the stream indexes them; all is equal.
    p.ddb.put_item(TableName=p.table, Item=_item("odd", 1, "amount fixed", 1))
    p.ddb.delete_item(TableName=p.table, Key=_key("odd", 2))
    p.drain()
    again = run_verify(target, settle_seconds=SETTLE)
    assert again.result == "equal", again.to_json()
    assert p.diff(exclude=set()).ok


def test_repair_racing_live_writes_never_regresses_a_newer_write(pipeline: Any) -> None:
    p = pipeline(batch_size=50)
    keys = [("race", i) for i in range(40)]
    last_write = _put_docs(p, [_item(pk, sk, "v0", 0) for pk, sk in keys])
    p.drain()
    for pk, sk in keys:  # every document lost
        assert p.search.request("DELETE", _doc_path(p, _id(pk, sk))).status < 300
    _wait_until(last_write + 6.5)
    with _live(p, keys, pause=0.05):
        report = run_verify(p.target(), repair=True, settle_seconds=0.3)
    p.drain()
    # Repairs happened beside writes to the same keys ...
    assert report.repaired > 0, report.to_json()
    # ... and after the last write is indexed every document is the item's newest state:
    # a repair that had overwritten a newer streamed value would still show here.
    result = p.diff()
    assert result.ok, result.summary()
    assert run_verify(p.target(), settle_seconds=SETTLE).result == "equal"


def test_a_stream_write_landing_between_the_repair_read_and_its_write_wins(pipeline: Any) -> None:
    """The worst interleaving, made on purpose: after verify has read the items it will
    repair, newer values are written and indexed by the stream; the repair (versioned
    at its read) must lose to every one of them."""
    p = pipeline(batch_size=50)
    keys = [("late", i) for i in range(10)]
    last_write = _put_docs(p, [_item(pk, sk, "v0", 0) for pk, sk in keys])
    p.drain()
    for pk, sk in keys:
        assert p.search.request("DELETE", _doc_path(p, _id(pk, sk))).status < 300
    _wait_until(last_write + 6.5)

    def newer_writes_land_first(ids: list[str]) -> None:
        assert set(ids) == {_id(pk, sk) for pk, sk in keys}
        _put_docs(p, [_item(pk, sk, "v1 newer", 1) for pk, sk in keys])
        p.drain()

    outcomes: dict[str, str | None] = {}
    report = run_verify(
        p.target(),
        repair=True,
        settle_seconds=0.2,
        before_repair=newer_writes_land_first,
        on_difference=lambda d: outcomes.__setitem__(d.doc_id, d.repair),
    )
    assert set(outcomes.values()) == {"superseded"}, outcomes
    assert report.result == "repaired"
    docs = p.index_documents()
    assert {docs[_id(pk, sk)]["text"] for pk, sk in keys} == {"v1 newer"}
    assert p.diff().ok
