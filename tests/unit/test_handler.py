"""The stream handler and its bulk path, against a scripted search backend.

Each test states what the backend answers and asserts the exact Lambda response,
what reached the index, what was dead-lettered and what was logged.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ddbsearch.core.bulk import BulkIndexer, ForbiddenIndex, Outcome
from ddbsearch.core.documents import Action
from ddbsearch.core.stream import Indexer, Settings
from ddbsearch.core.transport import Response, TransportError, access_denied
from ddbsearch.errors import AuthError, ConfigurationError

Reply = Callable[[list[dict[str, Any]]], Any]


class FakeSearch:
    """A small domain: indices with aliases and ``_meta``, and ``_bulk`` answered by a script.

    A script entry is a function of the bulk ops that returns a Response, a list
    of per-item (status, error_type) tuples, or raises TransportError. Without a
    script every item succeeds. ``docs`` holds (index, id) -> (version, source).
    """

    def __init__(self, script: Sequence[Reply] = (), index: str = "idx") -> None:
        self.timeout = 30.0
        self.script = list(script)
        self.bulks: list[list[dict[str, Any]]] = []
        self.calls: list[str] = []
        self.base = index
        # name -> {"aliases": set of alias names, "meta": the mapping's _meta or None}
        self.indices: dict[str, dict[str, Any]] = {index: {"aliases": set(), "meta": None}}
        self.docs_by_index: dict[str, dict[str, tuple[int, Any]]] = {}

    @property
    def index_exists(self) -> bool:
        return bool(self.indices)

    @index_exists.setter
    def index_exists(self, value: bool) -> None:
        if not value:
            self.indices.clear()

    @property
    def docs(self) -> dict[str, tuple[int, Any]]:
        """Documents of the legacy index (or of the only index there is)."""
        return self.docs_by_index.setdefault(self.base, {})

    def json(self, method: str, path: str, payload: Any = None) -> Response:
        return self.request(method, path, json.dumps(payload).encode())

    def _resolve(self, name: str) -> list[str]:
        if name in self.indices:
            return [name]
        return [n for n, i in self.indices.items() if name in i["aliases"]]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Response:
        self.calls.append(f"{method} {path}")
        route = path.split("?", maxsplit=1)[0]
        if method == "HEAD":
            return Response(200 if self._resolve(route.strip("/")) else 404, b"")
        if method == "GET":
            found = {
                n: {
                    "aliases": {a: {} for a in self.indices[n]["aliases"]},
                    "mappings": {"_meta": self.indices[n]["meta"]}
                    if self.indices[n]["meta"]
                    else {},
                }
                for expr in route.strip("/").split(",")
                for n in (
                    [x for x in self.indices if x.startswith(expr[:-1])]
                    if expr.endswith("*")
                    else self._resolve(expr)
                )
            }
            return Response(200, json.dumps(found).encode())
        if method == "PUT" and route.startswith("/_index_template/"):
            return Response(200, b"{}")
        if method == "PUT":
            name = route.strip("/")
            if name in self.indices:
                return Response(400, b'{"error":{"type":"resource_already_exists_exception"}}')
            spec = json.loads(body or b"{}")
            self.indices[name] = {
                "aliases": set(spec.get("aliases") or {}),
                "meta": (spec.get("mappings") or {}).get("_meta"),
            }
            return Response(200, b"{}")
        if method == "DELETE":
            return Response(200 if self.indices.pop(route.strip("/"), None) else 404, b"{}")
        if method == "POST" and route == "/_aliases":
            for action in json.loads(body or b"{}")["actions"]:
                ((op, spec),) = action.items()
                if op == "add":
                    self.indices[spec["index"]]["aliases"].add(spec["alias"])
                elif op == "remove":
                    self.indices[spec["index"]]["aliases"].discard(spec["alias"])
                else:
                    self.indices.pop(spec["index"])
            return Response(200, b"{}")
        assert route == f"/{self.base}/_bulk", path
        assert body is not None
        ops = _parse_bulk(body)
        self.bulks.append(ops)
        if self.script:
            answer = self.script.pop(0)(ops)
            if isinstance(answer, Response):
                return answer
            items = [
                {
                    op["op"]: {
                        "status": st,
                        **({"error": {"type": et, "reason": "why"}} if et else {}),
                    }
                }
                for op, (st, et) in zip(ops, answer, strict=True)
            ]
            self._apply([op for op, (st, _) in zip(ops, answer, strict=True) if st < 300])
            return Response(200, json.dumps({"errors": True, "items": items}).encode())
        self._apply(ops)
        return Response(
            200,
            json.dumps(
                {"errors": False, "items": [{op["op"]: {"status": 200}} for op in ops]}
            ).encode(),
        )

    def _apply(self, ops: list[dict[str, Any]]) -> None:
        for op in ops:
            targets = self._resolve(op["_index"])
            target = targets[0] if targets else op["_index"]  # auto-created, as OpenSearch does
            docs = self.docs_by_index.setdefault(target, {})
            if op["op"] == "delete":
                docs.pop(op["_id"], None)
            else:
                docs[op["_id"]] = (op["version"], op["doc"])


def _parse_bulk(body: bytes) -> list[dict[str, Any]]:
    lines = body.decode().splitlines()
    ops = []
    i = 0
    while i < len(lines):
        meta = json.loads(lines[i])
        ((op, m),) = meta.items()
        entry = {"op": op, **m}
        if op != "delete":
            i += 1
            entry["doc"] = json.loads(lines[i])
        ops.append(entry)
        i += 1
    return ops


class FakeDLQ:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail = fail

    def send(self, messages: Sequence[dict[str, Any]]) -> set[int]:
        if self.fail:
            return set(range(len(messages)))
        self.messages.extend(messages)
        return set()


class Context:
    aws_request_id = "req-1"
    function_name = "indexer"

    def __init__(self, remaining_ms: int = 20_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def make_indexer(search: FakeSearch, dlq: FakeDLQ | None = None) -> tuple[Indexer, io.StringIO]:
    log = io.StringIO()
    settings = Settings(endpoint="http://search", index="idx", region="us-east-1", dlq_url=None)
    indexer = Indexer(settings, transport=search, dlq=dlq, log=log)  # type: ignore[arg-type]
    # No real waiting in unit tests: backoff sleeps are recorded, not slept.
    indexer.bulk._sleep = lambda _s: None
    return indexer, log


def seqs(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]


def test_happy_batch_is_one_bulk_and_collapses_per_key(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    search = FakeSearch()
    indexer, log = make_indexer(search)
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    assert len(search.bulks) == 1
    # The INSERT of 51|3 collapsed into its MODIFY; 7|4 ends deleted.
    assert [(o["op"], o["_id"]) for o in search.bulks[0]] == [("index", "51|3"), ("delete", "7|4")]
    assert search.docs["51|3"][1]["amount"] == 13
    assert all(o["version_type"] == "external_gte" for o in search.bulks[0])
    line = json.loads(log.getvalue())
    assert line["records"] == 4
    assert line["indexed"] == 1
    assert line["deleted"] == 1
    assert line["failed"] == 0


def test_version_conflict_counts_as_done(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    search = FakeSearch([lambda ops: [(409, "version_conflict_engine_exception")] * len(ops)])
    indexer, log = make_indexer(search)
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    assert json.loads(log.getvalue())["stale"] == 2


def test_transient_item_errors_are_retried(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    search = FakeSearch(
        [
            lambda ops: [(429, "es_rejected_execution_exception"), (200, None)],
            lambda ops: [(503, "unavailable_shards_exception")],
        ]
    )
    indexer, log = make_indexer(search)
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    assert [len(b) for b in search.bulks] == [2, 1, 1]
    assert json.loads(log.getvalue())["retries"] == 2


def test_whole_request_failures_are_retried(load_event: Any) -> None:
    event = load_event("insert_modify_remove")

    def refuse(ops: Any) -> Any:
        raise TransportError("POST /_bulk: ProtocolError")

    search = FakeSearch([lambda ops: Response(503, b"busy"), refuse])
    indexer, _ = make_indexer(search)
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    assert len(search.bulks) == 3
    assert "51|3" in search.docs


def test_still_failing_at_the_deadline_reports_the_first_record_not_done(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    # 51|3 (records 0 and 2) keeps failing; 7|4 (records 1 and 3) is done.
    search = FakeSearch(
        [lambda ops: [(503, "x") if o["_id"] == "51|3" else (200, None) for o in ops]] * 1000
    )
    indexer, log = make_indexer(search)
    response = indexer.handle(event, Context(remaining_ms=1500))
    assert response == {"batchItemFailures": [{"itemIdentifier": seqs(event)[0]}]}
    line = json.loads(log.getvalue())
    assert line["level"] == "ERROR"
    assert line["failed"] == 2
    assert line["first_failed_sequence_number"] == seqs(event)[0]


def test_a_later_record_failing_is_reported_from_its_own_position(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    search = FakeSearch(
        [lambda ops: [(503, "x") if o["_id"] == "7|4" else (200, None) for o in ops]] * 1000
    )
    indexer, _ = make_indexer(search)
    response = indexer.handle(event, Context(remaining_ms=1500))
    # Record 1 (INSERT 7|4) is covered by the failing REMOVE of the same key.
    assert response == {"batchItemFailures": [{"itemIdentifier": seqs(event)[1]}]}


def test_permanent_failure_goes_to_the_dlq_and_the_batch_proceeds(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    search = FakeSearch(
        [
            lambda ops: [
                (400, "mapper_parsing_exception") if o["_id"] == "51|3" else (200, None)
                for o in ops
            ]
        ]
    )
    dlq = FakeDLQ()
    indexer, log = make_indexer(search, dlq)
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    assert len(dlq.messages) == 1
    msg = dlq.messages[0]
    assert msg["reason"].startswith("mapper_parsing_exception")
    assert msg["keys"] == {"userId": {"N": "3"}, "transactionId": {"N": "51"}}
    assert msg["sequenceNumber"] == seqs(event)[2]
    assert msg["documentId"] == "51|3"
    # A versioned delete removes any older copy of the document.
    assert search.bulks[1] == [
        {
            "op": "delete",
            "_index": "idx",
            "_id": "51|3",
            "version": msg["version"],
            "version_type": "external_gte",
        }
    ]
    assert json.loads(log.getvalue())["dead_lettered"] == 1


def test_permanent_failure_without_dlq_is_reported(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    search = FakeSearch([lambda ops: [(400, "mapper_parsing_exception")] * len(ops)])
    indexer, _ = make_indexer(search, None)
    assert indexer.handle(event, Context()) == {
        "batchItemFailures": [{"itemIdentifier": seqs(event)[0]}]
    }


def test_dlq_send_failure_keeps_the_record_failed(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    search = FakeSearch([lambda ops: [(400, "mapper_parsing_exception")] * len(ops)])
    indexer, _ = make_indexer(search, FakeDLQ(fail=True))
    assert indexer.handle(event, Context())["batchItemFailures"] == [
        {"itemIdentifier": seqs(event)[0]}
    ]


def test_invalid_images_are_dead_lettered_without_a_round_trip(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    event["Records"][2]["dynamodb"]["NewImage"]["_id"] = {"S": "sentinel"}
    search = FakeSearch()
    dlq = FakeDLQ()
    indexer, _ = make_indexer(search, dlq)
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    assert [m["reason"] for m in dlq.messages] == ["invalid_document: reserved field name '_id'"]
    assert ("delete", "51|3") in [(o["op"], o["_id"]) for o in search.bulks[0]]
    assert "51|3" not in search.docs


def test_missing_index_is_created_before_indexing(load_event: Any) -> None:
    search = FakeSearch()
    search.index_exists = False
    indexer, _ = make_indexer(search)
    assert indexer.handle(load_event("insert_modify_remove"), Context()) == {
        "batchItemFailures": []
    }
    assert search.index_exists


def test_index_setup_failing_transiently_reports_the_batch(load_event: Any) -> None:
    class Busy(FakeSearch):
        def request(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> Response:
            if method in ("HEAD", "PUT", "GET"):
                return Response(404 if method == "HEAD" else 503, b"")
            return super().request(method, path, body, **kw)

    event = load_event("insert_modify_remove")
    indexer, log = make_indexer(Busy())
    # Not a function error (which would bisect the batch): the batch is retried whole.
    assert indexer.handle(event, Context()) == {
        "batchItemFailures": [{"itemIdentifier": seqs(event)[0]}]
    }
    assert json.loads(log.getvalue())["error_types"] == {"http_503": 1}


def test_keys_only_stream_is_a_clear_configuration_error(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    for r in event["Records"]:
        r["dynamodb"]["StreamViewType"] = "KEYS_ONLY"
        r["dynamodb"].pop("NewImage", None)
    indexer, _ = make_indexer(FakeSearch())
    with pytest.raises(ConfigurationError, match="needs NEW_IMAGE or NEW_AND_OLD_IMAGES"):
        indexer.handle(event, Context())


def test_no_item_content_reaches_the_log(load_event: Any) -> None:
    event = load_event("insert_modify_remove")
    sentinel = "S3NT1NEL-secret-value"
    for r in event["Records"]:
        for image in ("NewImage", "OldImage"):
            if image in r["dynamodb"]:
                r["dynamodb"][image]["note"] = {"S": sentinel}
    event["Records"][0]["dynamodb"]["NewImage"]["bad.name"] = {"S": sentinel}
    search = FakeSearch([lambda ops: [(400, "mapper_parsing_exception")] * len(ops)])
    indexer, log = make_indexer(search, FakeDLQ())
    indexer.handle(event, Context())
    assert sentinel not in log.getvalue()


def test_empty_event_is_success() -> None:
    indexer, _ = make_indexer(FakeSearch())
    assert indexer.handle({"Records": []}, Context()) == {"batchItemFailures": []}


def test_settings_from_environment() -> None:
    with pytest.raises(ConfigurationError, match="OPENSEARCH_ENDPOINT, INDEX_NAME"):
        Settings.from_environment({})
    s = Settings.from_environment(
        {
            "OPENSEARCH_ENDPOINT": "http://127.0.0.1:9200",
            "INDEX_NAME": "i",
            "OPENSEARCH_AUTH": "none",
        }
    )
    assert not s.sigv4
    assert s.dlq_url is None


# ----------------------------------------------------------------------------- bulk


def _actions(n: int) -> list[Action]:
    return [Action("index", f"id{i}", 1, {"n": i, "pad": "x" * 100}, {}) for i in range(n)]


def test_bulk_splits_only_over_the_byte_limit() -> None:
    search = FakeSearch()
    big = BulkIndexer(search, "idx", max_bytes=10_000_000)  # type: ignore[arg-type]
    report = big.run(_actions(50), deadline=float("inf"))
    assert report.requests == 1
    small = BulkIndexer(search, "idx", max_bytes=1000)  # type: ignore[arg-type]
    report = small.run(_actions(50), deadline=float("inf"))
    assert report.requests > 1
    assert report.count(Outcome.INDEXED) == 50
    assert all(sum(len(json.dumps(o)) for o in b) < 2000 for b in search.bulks[1:])


def test_request_too_large_is_halved() -> None:
    search = FakeSearch([lambda ops: Response(413, b"")])
    report = BulkIndexer(search, "idx").run(_actions(4), deadline=float("inf"))  # type: ignore[arg-type]
    assert [len(b) for b in search.bulks] == [4, 2, 2]
    assert report.count(Outcome.INDEXED) == 4


def test_deadline_bounds_the_retries() -> None:
    search = FakeSearch([lambda ops: Response(503, b"")] * 10_000)
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bulk = BulkIndexer(search, "idx", sleep=sleep, jitter=lambda: 1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    report = bulk.run(_actions(2), deadline=102.0)
    assert report.count(Outcome.TRANSIENT) == 2
    # Exponential: 0.2, 0.4, 0.8 ... stops before the deadline would be passed.
    assert slept[:3] == [0.2, 0.4, 0.8]
    assert sum(slept) < 2.0


def test_reasons_never_carry_field_values() -> None:
    search = FakeSearch()

    def answer(ops: Any) -> Response:
        items = [
            {
                "index": {
                    "status": 400,
                    "error": {
                        "type": "mapper_parsing_exception",
                        "reason": "failed to parse field [x] of type [double] in document"
                        " with id 'a'. Preview of field's value: 'S3NT1NEL'",
                        "caused_by": {
                            "type": "number_format_exception",
                            "reason": 'For input string: "S3NT1NEL"',
                        },
                    },
                }
            }
        ]
        return Response(200, json.dumps({"errors": True, "items": items}).encode())

    search.script = [answer]
    report = BulkIndexer(search, "idx").run(_actions(1), deadline=float("inf"))  # type: ignore[arg-type]
    assert report.results[0].outcome is Outcome.PERMANENT
    assert report.results[0].reason == (
        "mapper_parsing_exception: field 'x' (mapped as double) cannot take the item's value"
        " (caused by number_format_exception)"
    )


def test_bulks_go_to_the_index_path_and_name_only_its_generations() -> None:
    search = FakeSearch()
    bulk = BulkIndexer(search, "idx")  # type: ignore[arg-type]
    actions = [
        Action("index", "a", 1, {"n": 1}, {}),
        Action("index", "a", 1, {"n": 1}, {}, index="idx-000002"),
        Action("delete", "b", 1, None, {}, index="idx"),
    ]
    assert bulk.run(actions, deadline=float("inf")).count(Outcome.INDEXED) == 2
    assert [o["_index"] for o in search.bulks[0]] == ["idx", "idx-000002", "idx"]


@pytest.mark.parametrize(
    "other", ["other", "idx2", "idx-1", "idx-0000001", "idx-building", "idx-000001,other", "*"]
)
def test_a_bulk_naming_any_other_index_is_refused_before_sending(other: str) -> None:
    search = FakeSearch()
    bulk = BulkIndexer(search, "idx")  # type: ignore[arg-type]
    good = Action("index", "a", 1, {"n": 1}, {})
    with pytest.raises(ForbiddenIndex, match="refusing to write index"):
        bulk.run([good, Action("index", "b", 1, {}, {}, index=other)], deadline=float("inf"))
    assert search.bulks == []


FGAC_403 = Response(
    403,
    b'{"error":{"root_cause":[{"type":"security_exception","reason":"no permissions for'
    b" [indices:data/write/bulk] and User [name=arn:aws:iam::123456789012:role/indexer,"
    b' backend_roles=[arn:aws:iam::123456789012:role/indexer], requestedTenant=null]"}],'
    b'"type":"security_exception","reason":"no permissions"},"status":403}',
)
POLICY_403 = Response(
    403,
    b'{"Message":"User: arn:aws:sts::123456789012:assumed-role/indexer/fn is not authorized'
    b" to perform: es:ESHttpPost because no resource-based policy allows the es:ESHttpPost"
    b' action"}',
)


class Refusing(FakeSearch):
    """A domain that answers 403 to everything from ``refuse_from`` on (HEAD and PUT too)."""

    def __init__(self, answer: Response, refuse: Sequence[str] = ("HEAD", "PUT", "POST")) -> None:
        super().__init__()
        self.answer = answer
        self.refuse = set(refuse)
        self.calls: list[str] = []

    def request(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> Response:
        self.calls.append(f"{method} {path}")
        if method in self.refuse:
            raise access_denied(self.answer.status, self.answer.body)
        return super().request(method, path, body, **kw)


@pytest.mark.parametrize(
    ("answer", "etype", "fix"),
    [(FGAC_403, "security_exception", "role mapping"), (POLICY_403, "access_denied", "policy")],
)
@pytest.mark.parametrize("refuse", [("POST",), ("HEAD", "PUT", "POST")])
def test_a_refusing_domain_is_a_counted_error_with_a_hint_and_the_batch_is_retried(
    load_event: Any, answer: Response, etype: str, fix: str, refuse: tuple[str, ...]
) -> None:
    event = load_event("insert_modify_remove")
    search = Refusing(answer, refuse)
    dlq = FakeDLQ()
    indexer, log = make_indexer(search, dlq)
    # Not an exception (which would bisect the batch for hours): every record is
    # reported, so Lambda retries the whole batch once the fix is applied.
    assert indexer.handle(event, Context()) == {
        "batchItemFailures": [{"itemIdentifier": seqs(event)[0]}]
    }
    assert dlq.messages == []  # a refusal is no reason to give records up
    # Refused once, not retried within the invocation.
    assert sum(c.startswith("POST") for c in search.calls) <= 1
    line = json.loads(log.getvalue())
    assert line["level"] == "ERROR"
    assert line["failed"] == 4
    assert line["refused"] >= 1
    assert etype in line["error_types"]
    assert fix in line["hint"]
    assert "123456789012" not in log.getvalue()  # the domain's answer is not quoted

    # Once the fix is applied, the same batch goes through.
    search.refuse = set()
    indexer._log = log = io.StringIO()
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    assert "hint" not in json.loads(log.getvalue())


def test_backfill_style_callers_still_get_the_refusal_raised() -> None:
    bulk = BulkIndexer(Refusing(FGAC_403), "idx")  # type: ignore[arg-type]
    with pytest.raises(AuthError, match=r"refused the request \(403\)") as caught:
        bulk.run(_actions(1), deadline=float("inf"))
    assert "role mapping" in str(caught.value)
