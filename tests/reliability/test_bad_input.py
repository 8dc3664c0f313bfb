"""Bad input through the whole pipeline: each bad record gets a clear reason in the
dead-letter queue, the rest of its batch is indexed, and nothing is lost (every
record is either in the index or in the queue; the worker retries nothing and
gives nothing up).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ddbsearch.core.documents import document_id

pytestmark = pytest.mark.integration

SENTINEL = "S3NT1NEL-bad-input-41d2"


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": SENTINEL}
    for _ in range(levels):
        value = {"M": {"k": value}}
    return value


def _keys(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": "1"}}


# (pk, extra attributes, expected reason prefix; None = must be indexed)
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("ok-1", {"amount": {"N": "10"}, "text": {"S": SENTINEL}}, None),
    (
        "conflict",
        {"amount": {"S": f"ten {SENTINEL}"}},
        "mapper_parsing_exception: field 'amount' (mapped as double) cannot take",
    ),
    ("reserved-id", {"_id": {"S": SENTINEL}}, "invalid_document: reserved field name '_id'"),
    (
        "reserved-source",
        {"_source": {"S": SENTINEL}},
        "invalid_document: reserved field name '_source'",
    ),
    ("dotted", {"a.b": {"S": SENTINEL}}, "invalid_document: attribute name 'a.b' contains a dot"),
    (
        "dotted-nested",
        {"m": {"M": {"x.y": {"N": "1"}}}},
        "invalid_document: attribute name 'm.x.y' contains a dot",
    ),
    ("ok-2", {"amount": {"N": "1E-130"}, "m": {"M": {"x": {"N": "2"}}}}, None),
    # Deeper than this index accepts (it was created with depth limit 5)...
    (
        "deep-for-index",
        {"deep": _nested(8)},
        "mapper_parsing_exception: the document nests deeper than the index's limit of 5",
    ),
    # ... and deeper than ddbsearch's model allows at all (DynamoDB stops at 32).
    ("deep-for-model", {"deep": _nested(40)}, "invalid_document: attribute 'deep.k.k"),
    (
        "too-many-fields",
        {f"f{i}": {"N": str(i)} for i in range(1001)},
        "illegal_argument_exception: the index's limit of 1000 fields would be exceeded",
    ),
    # A key at DynamoDB's 2,048-byte limit: a hashed _id, not an error.
    ("x" * 2048, {"amount": {"N": "3"}}, None),
    ("ok-3", {"text": {"S": "after the bad ones"}}, None),
]


def test_bad_records_are_dead_lettered_with_reasons_and_the_batch_proceeds(
    pipeline: Any,
) -> None:
    p = pipeline(
        batch_size=100,
        mapping={"amount": {"type": "double"}},
        index_settings={"index.mapping.depth.limit": 5},
    )
    # A valid document under a key that later turns bad: its old copy must go.
    p.ddb.put_item(TableName=p.table, Item={**_keys("conflict"), "amount": {"N": "1"}})
    p.drain()
    assert document_id(_keys("conflict")) in p.index_documents()

    for pk, extra, _ in CASES:
        p.ddb.put_item(TableName=p.table, Item={**_keys(pk), **extra})
    p.drain()

    # One invocation for the whole batch: no retries, no bisection, nothing given up.
    assert p.worker.stats.invocations == 2
    assert p.worker.stats.partial_failures == 0
    assert p.worker.stats.function_errors == 0
    assert p.discarded == []

    good = {document_id(_keys(pk)) for pk, _, reason in CASES if reason is None}
    bad = {document_id(_keys(pk)): reason for pk, _, reason in CASES if reason is not None}
    assert any(i.startswith("sha256:") for i in good)
    index_ids = set(p.index_documents())
    assert index_ids == good, "bad records, and older copies of them, are not in the index"
    diff = p.diff(exclude=set(bad))
    assert diff.ok, diff.summary()

    letters = {d["documentId"]: d for d in p.dead_letters()}
    assert set(letters) == set(bad), "every bad record is dead-lettered, once"
    for doc_id, reason in bad.items():
        assert letters[doc_id]["reason"].startswith(reason), letters[doc_id]["reason"]
        assert letters[doc_id]["eventName"] in ("INSERT", "MODIFY")
        assert letters[doc_id]["sequenceNumber"]
    assert SENTINEL not in p.function_log(), "no item contents in the function's log"
    assert SENTINEL not in "\n".join(p.worker_log.lines)
    # Reasons name the problem, not the data (the mapping conflict: see the next test).
    for doc_id, letter in letters.items():
        if doc_id != document_id(_keys("conflict")):
            assert SENTINEL not in json.dumps(letter)
    p.stats["tests"]["bad_input"] += 1
    p.stats["operations"]["put_bad_input"] += len(CASES)


def test_a_mapping_conflict_reason_does_not_carry_the_value(pipeline: Any) -> None:
    p = pipeline(mapping={"amount": {"type": "double"}})
    p.ddb.put_item(TableName=p.table, Item={**_keys("c"), "amount": {"S": f"ten {SENTINEL}"}})
    p.drain()
    (letter,) = p.dead_letters()
    assert letter["reason"].startswith(
        "mapper_parsing_exception: field 'amount' (mapped as double) cannot take"
    )
    assert SENTINEL not in json.dumps(letter)
