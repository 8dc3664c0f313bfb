"""No item contents in logs, at the pipeline level.

A sentinel value sits in every kind of attribute (string, set, list, nested map,
binary) of valid and invalid items; the pipeline then runs through random
faults, a killed invocation, an outage long enough that the worker gives records
up (on-failure destination) and dead-letter traffic. The sentinel must appear in
no line the function logged, no line the worker logged, no on-failure record and
no dead-letter message.

Then, for dead-letter reasons: every parse-error shape osmem-server produces, and
the shapes real OpenSearch answers with, each with the sentinel in the value; the
reason, the dead-letter message and the log must not carry it. And a domain that
refuses the indexer (403) is a counted error with a hint, never an exception.

Elsewhere (not repeated here): tests/unit/test_transport.py proves that signed
requests carry ``Authorization`` (SigV4, service ``es``) and ``X-Amz-Security-Token``;
the Terraform tests hold the IAM and domain-policy assertions (docs/reliability.md).
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from ddbsearch.core.bulk import BulkIndexer, Outcome, describe_rejection
from ddbsearch.core.documents import Action, document_id
from ddbsearch.core.stream import Indexer, Settings
from ddbsearch.core.transport import SearchTransport
from ddbsearch.testing.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.integration

SENTINEL = "S3NT1NEL-security-77ab"
FORMS = (SENTINEL, base64.b64encode(SENTINEL.encode()).decode())


def _item(n: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"user#{n}"},
        "sk": {"N": str(n)},
        "text": {"S": f"hello {SENTINEL}"},
        "tags": {"SS": [SENTINEL, "b"]},
        "mixed": {"L": [{"S": SENTINEL}, {"N": "1"}, {"M": {"x": {"S": SENTINEL}}}]},
        "nested": {"M": {"deeper": {"M": {"s": {"S": SENTINEL}}}}},
        "blob": {"B": SENTINEL.encode()},
        "blobs": {"BS": [SENTINEL.encode(), b"\x00"]},
    }


def _invalid(n: int) -> dict[str, Any]:
    bad = [
        {"a.b": {"S": SENTINEL}},
        {"_id": {"S": SENTINEL}},
        {"m": {"M": {"x.y": {"S": SENTINEL}}}},
    ]
    return {"pk": {"S": f"bad#{n}"}, "sk": {"N": str(n)}, **bad[n % len(bad)]}


def _assert_clean(text: str, where: str) -> None:
    for form in FORMS:
        assert form not in text, f"item contents in {where}"


def test_item_contents_reach_no_log_line_under_faults(pipeline: Any) -> None:
    p = pipeline(batch_size=5, timeout=3.0, worker_settings={"maximum_retry_attempts": 1})
    p.proxy.random_faults(seed=7, probability=0.5)
    for n in range(12):
        p.ddb.put_item(TableName=p.table, Item=_item(n))
        if n % 4 == 0:
            p.ddb.put_item(TableName=p.table, Item=_invalid(n))
    killer, _ = p.kill_function_during_next_bulk()
    p.drain()
    killer.join(timeout=30)

    # A long outage with one retry allowed: records are given up to the on-failure
    # destination (by position, never by content).
    p.proxy.clear()
    p.proxy.inject(*[Fault("status", status=503)] * 10_000)
    for n in range(12, 16):
        p.ddb.put_item(TableName=p.table, Item=_item(n))
    p.drain()
    p.proxy.clear()

    assert p.discarded, "the outage made the worker give records up"
    letters = p.dead_letters()
    assert letters, "invalid items were dead-lettered"
    function_log = p.function_log()
    assert "batch processed" in function_log
    _assert_clean(function_log, "the function's log")
    _assert_clean("\n".join(p.worker_log.lines), "the worker's log")
    _assert_clean(json.dumps(p.discarded), "an on-failure record")
    _assert_clean(json.dumps(letters), "a dead-letter message")
    p.stats["faults"]["records_given_up"] += sum(
        d["DDBStreamBatchInfo"]["batchSize"] for d in p.discarded
    )
    p.stats["tests"]["security"] += 1


# ----------------------------------------------------------------- dead-letter reasons

SHAPES_INDEX_SETTINGS = {"index.mapping.depth.limit": 3, "index.mapping.total_fields.limit": 20}
SHAPES_MAPPING = {
    "flag": {"type": "boolean"},
    "amount": {"type": "double"},
    "count": {"type": "long"},
    "day": {"type": "date"},
    "where": {"type": "geo_point"},
    "meta": {"type": "object"},
    "code": {"type": "keyword"},
    "addr": {"type": "ip"},
}
# One value per parse-error shape, each carrying the sentinel (the depth and the
# field-limit cases carry it in the values of the offending document).
SHAPES: dict[str, dict[str, Any]] = {
    "boolean": {"flag": {"S": SENTINEL}},
    "number": {"amount": {"S": SENTINEL}},
    "long": {"count": {"S": SENTINEL}},
    "number in a list": {"amount": {"L": [{"S": SENTINEL}]}},
    "date": {"day": {"S": SENTINEL}},
    "geo_point geohash": {"where": {"S": SENTINEL}},
    "geo_point object": {"where": {"M": {"lat": {"S": SENTINEL}, "lon": {"N": "1"}}}},
    "object vs concrete": {"meta": {"S": SENTINEL}},
    "concrete vs object": {"code": {"M": {"x": {"S": SENTINEL}}}},
    "boolean vs object": {"flag": {"M": {"x": {"S": SENTINEL}}}},
    "ip": {"addr": {"S": SENTINEL}},
    "depth": {"a": {"M": {"b": {"M": {"c": {"M": {"d": {"S": SENTINEL}}}}}}}},
    "too many fields": {f"f{n}": {"S": SENTINEL} for n in range(30)},
}


@pytest.fixture
def shapes_index(osmem_base: str) -> Iterator[str]:
    search = SearchTransport(osmem_base, sigv4=False)
    index = f"shapes{uuid.uuid4().hex[:8]}"
    created = search.json(
        "PUT",
        f"/{index}",
        {"settings": SHAPES_INDEX_SETTINGS, "mappings": {"properties": SHAPES_MAPPING}},
    )
    assert created.status < 300, created.body
    yield index
    search.request("DELETE", f"/{index}")


class _Letters:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, messages: Sequence[dict[str, Any]]) -> set[int]:
        self.messages.extend(messages)
        return set()


def _record(n: int, attrs: dict[str, Any]) -> dict[str, Any]:
    keys = {"pk": {"S": f"shape#{n}"}}
    return {
        "eventID": f"e{n}",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795780000 + n,
            "Keys": keys,
            "NewImage": {**keys, **attrs},
            "SequenceNumber": str(10**20 + n),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/x",
    }


def test_no_parse_error_osmem_gives_carries_the_value(osmem_base: str, shapes_index: str) -> None:
    names = list(SHAPES)
    letters = _Letters()
    log = io.StringIO()
    indexer = Indexer(
        Settings(osmem_base, shapes_index, "us-east-1", None, sigv4=False),
        dlq=letters,  # type: ignore[arg-type]
        log=log,
    )
    event = {"Records": [_record(n, SHAPES[name]) for n, name in enumerate(names)]}
    assert indexer.handle(event, None) == {"batchItemFailures": []}

    by_id = {m["documentId"]: m for m in letters.messages}
    assert len(by_id) == len(names), "every shape was refused and dead-lettered"
    reasons = {name: by_id[f"shape#{n}"]["reason"] for n, name in enumerate(names)}
    for name, reason in reasons.items():
        assert SENTINEL not in reason, name
    # The reason still says what is wrong and where (the field path, ddbsearch's words).
    assert reasons["boolean"] == (
        "mapper_parsing_exception: field 'flag' (mapped as boolean) cannot take the item's"
        " value (caused by illegal_argument_exception)"
    )
    assert "field 'amount' (mapped as double)" in reasons["number"]
    assert "field 'day' (mapped as date)" in reasons["date"]
    assert "field 'where' (mapped as geo_point)" in reasons["geo_point geohash"]
    assert reasons["object vs concrete"].startswith(
        "mapper_parsing_exception: field 'meta' is an object in the index"
    )
    assert "limit of 3" in reasons["depth"]
    assert "limit of 20 fields" in reasons["too many fields"]
    _assert_clean(json.dumps(letters.messages), "a dead-letter message")
    _assert_clean(log.getvalue(), "the function's log")


def test_bulk_reasons_from_osmem_carry_no_value(osmem_base: str, shapes_index: str) -> None:
    from ddbsearch.core.documents import to_document

    search = SearchTransport(osmem_base, sigv4=False)
    actions = [
        Action("index", f"id{n}", 1, to_document(attrs), {})
        for n, attrs in enumerate(SHAPES.values())
    ]
    report = BulkIndexer(search, shapes_index).run(actions, deadline=float("inf"))
    assert report.count(Outcome.PERMANENT) == len(actions)
    _assert_clean(json.dumps([r.reason for r in report.results]), "a bulk reason")


# Real OpenSearch answers (2.x), with the sentinel where OpenSearch puts the value.
S = SENTINEL
REAL_SHAPES: dict[str, dict[str, Any]] = {
    "boolean": {
        "type": "mapper_parsing_exception",
        "reason": f"failed to parse field [flag] of type [boolean] in document with id '{S}'."
        f" Preview of field's value: '{S}'",
        "caused_by": {
            "type": "illegal_argument_exception",
            "reason": f"Failed to parse value [{S}] as only [true] or [false] are allowed.",
        },
    },
    "number": {
        "type": "mapper_parsing_exception",
        "reason": f"failed to parse field [amount] of type [double] in document with id 'k'."
        f" Preview of field's value: '{S}'",
        "caused_by": {"type": "number_format_exception", "reason": f'For input string: "{S}"'},
    },
    "date": {
        "type": "mapper_parsing_exception",
        "reason": f"failed to parse field [day] of type [date] in document with id 'k'."
        f" Preview of field's value: '{S}'",
        "caused_by": {
            "type": "illegal_argument_exception",
            "reason": f"failed to parse date field [{S}] with format"
            " [strict_date_optional_time||epoch_millis]",
            "caused_by": {
                "type": "date_time_parse_exception",
                "reason": f"Text '{S}' could not be parsed at index 0",
            },
        },
    },
    "geo_point": {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse field [where] of type [geo_point]",
        "caused_by": {
            "type": "parse_exception",
            "reason": f"unsupported symbol [-] in geohash [{S}]",
            "caused_by": {
                "type": "illegal_argument_exception",
                "reason": f"unsupported symbol [-] in geohash [{S}]",
            },
        },
    },
    "object vs concrete": {
        "type": "mapper_parsing_exception",
        "reason": "object mapping for [meta] tried to parse field [meta] as object,"
        " but found a concrete value",
    },
    "too many fields": {
        "type": "illegal_argument_exception",
        "reason": "Limit of total fields [1000] has been exceeded",
    },
    "depth": {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse",
        "caused_by": {
            "type": "parse_exception",
            "reason": "The depth of the field has exceeded the allowed limit of [20]."
            " This limit can be set by changing the [index.mapping.depth.limit] index"
            " level setting.",
        },
    },
    "immense term": {
        "type": "illegal_argument_exception",
        "reason": 'Document contains at least one immense term in field="notes" (whose UTF8'
        " encoding is longer than the max length 32766), all of which were skipped.  Please"
        " correct the analyzer to not produce such terms.  The prefix of the first immense"
        f" term is: '{list(S.encode())}...', original message: bytes can be at most 32766"
        " in length; got 40000",
        "caused_by": {
            "type": "max_bytes_length_exceeded_exception",
            "reason": "bytes can be at most 32766 in length; got 40000",
        },
    },
    "mapper changed": {
        "type": "illegal_argument_exception",
        "reason": "mapper [amount] cannot be changed from type [double] to [text]",
    },
    "unknown shape": {"type": "some_new_exception", "reason": f"value [{S}] is not welcome"},
    "type names are checked": {"type": f"{S}", "reason": f"{S}"},
}


@pytest.mark.parametrize("shape", list(REAL_SHAPES))
def test_no_real_opensearch_reason_shape_carries_the_value(shape: str) -> None:
    error = REAL_SHAPES[shape]
    status = 400

    class Domain:
        timeout = 30.0

        def request(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> Any:
            from ddbsearch.core.transport import Response

            item = {"index": {"_index": "idx", "_id": "k", "status": status, "error": error}}
            return Response(200, json.dumps({"errors": True, "items": [item]}).encode())

    letters = _Letters()
    log = io.StringIO()
    indexer = Indexer(
        Settings("http://domain", "idx", "us-east-1", None, sigv4=False),
        transport=Domain(),  # type: ignore[arg-type]
        dlq=letters,  # type: ignore[arg-type]
        log=log,
    )
    indexer._index_ready = True
    indexer.handle({"Records": [_record(1, {"notes": {"S": SENTINEL}})]}, None)
    assert len(letters.messages) == 1
    reason = letters.messages[0]["reason"]
    _assert_clean(reason, "the reason")
    assert str(list(SENTINEL.encode()))[1:20] not in reason  # the immense term's bytes
    _assert_clean(json.dumps(letters.messages), "a dead-letter message")
    _assert_clean(log.getvalue(), "the function's log")
    assert reason == describe_rejection(
        str(error["type"]) if shape != "type names are checked" else "http_400", error
    )


def test_every_real_shape_keeps_its_field_path_or_limit() -> None:
    expected = {
        "boolean": "field 'flag' (mapped as boolean)",
        "number": "field 'amount' (mapped as double)",
        "date": "field 'day' (mapped as date)",
        "geo_point": "field 'where' (mapped as geo_point)",
        "object vs concrete": "field 'meta' is an object in the index",
        "too many fields": "limit of 1000 fields",
        "depth": "limit of 20",
        "immense term": "field 'notes' has a term longer than",
        "mapper changed": "field 'amount' is mapped as double",
        "unknown shape": "some_new_exception: OpenSearch refused the document",
    }
    for shape, words in expected.items():
        error = REAL_SHAPES[shape]
        assert words in describe_rejection(error["type"], error), shape


# ----------------------------------------------------------------- a refusing domain

FGAC_FORBIDDEN = (
    b'{"error":{"root_cause":[{"type":"security_exception","reason":"no permissions for'
    b" [indices:data/write/bulk] and User [name=arn:aws:iam::123456789012:role/indexer,"
    b' backend_roles=[arn:aws:iam::123456789012:role/indexer], requestedTenant=null]"}],'
    b'"type":"security_exception","reason":"no permissions for [indices:data/write/bulk]"},'
    b'"status":403}'
)


def test_a_domain_refusing_the_indexer_is_a_counted_error_with_a_hint(osmem_base: str) -> None:
    search = SearchTransport(osmem_base, sigv4=False)
    index = f"fgac{uuid.uuid4().hex[:8]}"
    with FaultProxy(osmem_base) as proxy:
        letters = _Letters()
        log = io.StringIO()
        indexer = Indexer(
            Settings(proxy.url, index, "us-east-1", None, sigv4=False),
            dlq=letters,  # type: ignore[arg-type]
            log=log,
        )
        event = {"Records": [_record(n, {"text": {"S": SENTINEL}}) for n in range(3)]}
        # FGAC without a role mapping: every _bulk is answered 403 security_exception.
        proxy.inject(*[Fault("status", status=403, body=FGAC_FORBIDDEN)] * 3)
        response = indexer.handle(event, None)
        assert response == {
            "batchItemFailures": [
                {"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}
            ]
        }
        assert proxy.stats.faults == {"403": 1}, "refused once, not hammered"
        line = json.loads(log.getvalue())
        assert line["level"] == "ERROR"
        assert line["failed"] == 3
        assert line["refused"] == 3
        assert line["error_types"] == {"security_exception": 3}
        assert "role mapping" in line["hint"]
        assert letters.messages == []
        assert "123456789012" not in log.getvalue()
        _assert_clean(log.getvalue(), "the function's log")

        # The mapping applied: Lambda's retry of the same batch indexes it.
        proxy.clear()
        indexer._log = log = io.StringIO()
        assert indexer.handle(event, None) == {"batchItemFailures": []}
        assert json.loads(log.getvalue())["indexed"] == 3
    count = search.request("GET", f"/{index}/_count").json()["count"]
    assert count == 3
    assert document_id(event["Records"][0]["dynamodb"]["Keys"]) == "shape#0"
    search.request("DELETE", f"/{index}")
