"""The export loader (ddbsearch.core.export) on real-shaped export files.

Files are built the way DynamoDB writes them: gzip, one ``{"Item": {...}}`` DYNAMODB_JSON
line per item (binary values base64), under ``AWSDynamoDB/<export-id>/data/`` with a
``manifest-files.json`` (JSON lines with ``dataFileS3Key``) on AWS, and without any
manifest in moto's layout. S3 and the search backend are small in-memory fakes.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ddbsearch.core.bulk import BulkIndexer
from ddbsearch.core.documents import backfill_version, document_id, to_document
from ddbsearch.core.export import (
    ExportFileError,
    ExportLoader,
    LoadRequest,
    SearchThrottled,
    export_version,
    iter_items,
    list_data_files,
    parse_manifest_files,
)
from ddbsearch.core.transport import Response

EXPORT = "AWSDynamoDB/01733300000000-a1b2c3d4"
EXPORT_TIME = 1_733_300_000.0


class FakeS3:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def list_objects_v2(self, **kw: Any) -> dict[str, Any]:
        keys = sorted(k for k in self.objects if k.startswith(kw["Prefix"]))
        # Two pages, to exercise the continuation.
        half = len(keys) // 2 if kw.get("ContinuationToken") is None and len(keys) > 1 else 0
        page = keys[half:] if kw.get("ContinuationToken") else keys[:half] or keys
        truncated = kw.get("ContinuationToken") is None and half > 0
        return {
            "Contents": [{"Key": k, "Size": len(self.objects[k])} for k in page],
            "IsTruncated": truncated,
            **({"NextContinuationToken": "t"} if truncated else {}),
        }

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}


class FakeSearch:
    """A _bulk endpoint keeping the highest external version per id; ``fail`` scripts 429s."""

    timeout = 30.0

    def __init__(self, fail: Callable[[int], bool] = lambda n: False, delay: float = 0.0) -> None:
        self.docs: dict[str, tuple[int, Any]] = {}
        self.calls = 0
        self.fail = fail
        self.delay = delay
        self.written: list[str] = []  # the _index of every op that was applied

    def request(self, method: str, path: str, body: bytes | None = None, **_: Any) -> Response:
        assert method == "POST"
        assert path.endswith("/_bulk")
        assert body is not None
        self.calls += 1
        time.sleep(self.delay)  # a slow domain: the invocation's budget is what is tested
        if self.fail(self.calls):
            return Response(429, b'{"error":{"type":"es_rejected_execution_exception"}}')
        lines = body.decode().splitlines()
        items, i = [], 0
        while i < len(lines):
            ((op, meta),) = json.loads(lines[i]).items()
            doc = None
            if op == "index":
                i += 1
                doc = json.loads(lines[i])
            current = self.docs.get(meta["_id"])
            if current is not None and current[0] > meta["version"]:
                items.append({op: {"status": 409, "error": {"type": "version_conflict"}}})
            else:
                self.written.append(meta["_index"])
                if op == "delete":
                    self.docs.pop(meta["_id"], None)
                else:
                    self.docs[meta["_id"]] = (meta["version"], doc)
                items.append({op: {"status": 200 if op == "delete" else 201}})
            i += 1
        return Response(200, json.dumps({"errors": True, "items": items}).encode())


class FakeDLQ:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> set[int]:
        self.messages.extend(messages)
        return set()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def every_type(n: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"user|{n}\\x"},
        "sk": {"N": str(n)},
        "s": {"S": "héllo"},
        "n": {"N": "1.50"},
        "b": {"B": b64(b"\x00\xff" + bytes([n % 256]))},
        "bool": {"BOOL": n % 2 == 0},
        "null": {"NULL": True},
        "ss": {"SS": ["b", "a"]},
        "ns": {"NS": ["10", "2"]},
        "bs": {"BS": [b64(b"\x02"), b64(b"\x01")]},
        "l": {"L": [{"S": "x"}, {"N": "1"}]},
        "m": {"M": {"inner": {"M": {"deep": {"S": "y"}}}}},
    }


def data_file(rows: list[Any]) -> bytes:
    text = "".join(
        (row if isinstance(row, str) else json.dumps({"Item": row})) + "\n" for row in rows
    )
    return gzip.compress(text.encode())


def loader(search: FakeSearch, s3: FakeS3, **kw: Any) -> tuple[ExportLoader, FakeDLQ]:
    dlq = FakeDLQ()
    bulk = BulkIndexer(search, "idx", backoff_base=0.001, backoff_cap=0.002)  # type: ignore[arg-type]
    return ExportLoader(bulk, dlq=dlq, s3=s3, **kw), dlq


def request(key: str, start_line: int = 0) -> LoadRequest:
    return LoadRequest("bucket", key, ("pk", "sk"), export_version(EXPORT_TIME), start_line)


# --------------------------------------------------------------------------- format


def test_manifest_files_is_json_lines_of_data_file_keys() -> None:
    text = "\n".join(
        json.dumps(
            {
                "itemCount": 3,
                "md5Checksum": "q1w2==",
                "etag": "abc-1",
                "dataFileS3Key": f"p/{EXPORT}/data/{name}.json.gz",
            }
        )
        for name in ("zz", "aa")
    )
    files = parse_manifest_files(text + "\n")
    assert [f.key for f in files] == [f"p/{EXPORT}/data/zz.json.gz", f"p/{EXPORT}/data/aa.json.gz"]
    assert [f.items for f in files] == [3, 3]
    with pytest.raises(ExportFileError, match="line 2"):
        parse_manifest_files('{"dataFileS3Key": "a"}\n{"etag": "x"}\n')


def test_aws_layout_lists_from_the_manifest_and_moto_layout_from_the_prefix() -> None:
    aws = {
        f"p/{EXPORT}/manifest-summary.json": b"{}",
        f"p/{EXPORT}/manifest-files.json": (
            json.dumps({"itemCount": 1, "dataFileS3Key": f"p/{EXPORT}/data/b.json.gz"})
            + "\n"
            + json.dumps({"itemCount": 2, "dataFileS3Key": f"p/{EXPORT}/data/a.json.gz"})
        ).encode(),
        f"p/{EXPORT}/data/a.json.gz": b"xx",
        f"p/{EXPORT}/data/b.json.gz": b"x",
        f"p/{EXPORT}/_started": b"",
    }
    manifest, files = list_data_files(FakeS3(aws), "bucket", "p")
    assert manifest == f"p/{EXPORT}/manifest-files.json"
    assert [(f.key, f.size, f.items) for f in files] == [
        (f"p/{EXPORT}/data/b.json.gz", 1, 1),
        (f"p/{EXPORT}/data/a.json.gz", 2, 2),
    ]
    moto = {
        "p/x/AWSDynamoDB/9f1e/data/2c.gz": b"abc",
        "p/x/AWSDynamoDB/9f1e/data/1a.gz": b"ab",
        "p/x/AWSDynamoDB/9f1e/other.txt": b"",
    }
    manifest, files = list_data_files(FakeS3(moto), "bucket", "p/x")
    assert manifest is None
    assert [f.key for f in files] == [
        "p/x/AWSDynamoDB/9f1e/data/1a.gz",
        "p/x/AWSDynamoDB/9f1e/data/2c.gz",
    ]
    two = {**aws, "p/AWSDynamoDB/other/manifest-files.json": b""}
    with pytest.raises(ExportFileError, match="2 exports"):
        list_data_files(FakeS3(two), "bucket", "p")


def test_rows_are_read_from_the_start_line_and_bad_lines_are_values() -> None:
    lines = [
        b'{"Item": {"pk": {"S": "a"}}}\n',
        b"\n",
        b"not json\n",
        b'{"Item": {"pk": {"S": "b"}}}',
    ]
    rows = list(iter_items(lines))
    assert [n for n, _ in rows] == [0, 2, 3]
    assert isinstance(rows[1][1], ExportFileError)
    assert [n for n, _ in iter_items(lines, start_line=3)] == [3]


def test_event_is_validated() -> None:
    with pytest.raises(ExportFileError, match="malformed"):
        LoadRequest.from_event({"bucket": "b"})
    req = LoadRequest.from_event(request("k", 5).to_event())
    assert req == request("k", 5)


# --------------------------------------------------------------------------- loading


def test_every_type_is_indexed_like_the_stream_at_the_export_version() -> None:
    items = [every_type(n) for n in range(5)]
    s3 = FakeS3({"d/1.json.gz": data_file(items)})
    search = FakeSearch()
    result = loader(search, s3)[0].load(request("d/1.json.gz"), deadline=time.monotonic() + 30)
    assert result.complete
    assert result.next_line == 5
    assert result.rows == 5
    assert result.indexed == 5
    version = backfill_version(EXPORT_TIME)
    for item in items:
        keys = {"pk": item["pk"], "sk": item["sk"]}
        assert search.docs[document_id(keys)] == (version, to_document(item))


def test_newer_stream_versions_win_and_reloading_changes_nothing() -> None:
    item = every_type(1)
    doc_id = document_id({"pk": item["pk"], "sk": item["sk"]})
    s3 = FakeS3({"d/1.json.gz": data_file([item])})
    search = FakeSearch()
    newer = (export_version(EXPORT_TIME) + 1, {"from": "stream"})
    search.docs[doc_id] = newer
    load = loader(search, s3)[0]
    for _ in range(2):
        result = load.load(request("d/1.json.gz"), deadline=time.monotonic() + 30)
        assert result.stale == 1
        assert result.indexed == 0
    assert search.docs[doc_id] == newer


def test_rows_that_cannot_be_indexed_are_dead_lettered_without_contents() -> None:
    bad = {"pk": {"S": "k"}, "sk": {"N": "1"}, "a.b": {"S": "secret-value"}}
    good = every_type(2)
    s3 = FakeS3({"d/1.json.gz": data_file([good, bad, '{"no": "item"}'])})
    search = FakeSearch()
    old = document_id({"pk": bad["pk"], "sk": bad["sk"]})
    search.docs[old] = (1, {"stale": True})  # an older copy of the bad row
    load, dlq = loader(search, s3)
    result = load.load(request("d/1.json.gz"), deadline=time.monotonic() + 30)
    assert result.complete
    assert result.rows == 3
    assert result.dead_lettered == 2
    reasons = sorted(m["reason"].split(":")[0] for m in dlq.messages)
    assert reasons == ["invalid_document", "invalid_row"]
    assert {m["line"] for m in dlq.messages} == {1, 2}
    assert all(m["exportFile"] == "d/1.json.gz" for m in dlq.messages)
    assert "secret-value" not in json.dumps(dlq.messages)
    assert old not in search.docs  # deleted, as on the stream path


def test_a_budget_running_out_answers_next_line_and_the_next_call_resumes() -> None:
    items = [every_type(n) for n in range(7)]
    s3 = FakeS3({"d/1.json.gz": data_file(items)})
    search = FakeSearch(delay=0.45)
    load = loader(search, s3, chunk_rows=3)[0]
    # 0.5 s of budget keeps a 0.1 s reserve: one 0.45 s bulk leaves too little for more.
    first = load.load(request("d/1.json.gz"), deadline=time.monotonic() + 0.5)
    assert not first.complete
    assert first.next_line == 3
    assert first.rows == 3
    search.delay = 0.0
    rest = load.load(request("d/1.json.gz", first.next_line), deadline=time.monotonic() + 60)
    assert rest.complete
    assert rest.rows == 4
    assert rest.next_line == 7
    assert len(search.docs) == 7


def test_throttling_raises_for_backoff_unless_progress_was_made() -> None:
    items = [every_type(n) for n in range(4)]
    s3 = FakeS3({"d/1.json.gz": data_file(items)})
    always = FakeSearch(fail=lambda n: True)
    load = loader(always, s3, chunk_rows=2, reserve_seconds=1.0)[0]
    with pytest.raises(SearchThrottled):
        load.load(request("d/1.json.gz"), deadline=time.monotonic() + 1.2)
    after_first = FakeSearch(fail=lambda n: n > 1)
    load = loader(after_first, s3, chunk_rows=2, reserve_seconds=1.0)[0]
    result = load.load(request("d/1.json.gz"), deadline=time.monotonic() + 1.2)
    assert result.throttled
    assert not result.complete
    assert result.next_line == 2


def test_unreadable_files_are_permanent_errors() -> None:
    s3 = FakeS3({"d/plain.json.gz": b'{"Item": {}}\n'})
    load = loader(FakeSearch(), s3)[0]
    with pytest.raises(ExportFileError, match="gzip"):
        load.load(request("d/plain.json.gz"), deadline=time.monotonic() + 5)
    with pytest.raises(ExportFileError, match="NoSuchKey"):
        load.load(request("d/missing.json.gz"), deadline=time.monotonic() + 5)


def test_describe_export_answers_where_to_load_from_once_complete() -> None:
    from datetime import datetime, timezone

    from ddbsearch.core.export import describe_export

    class Ddb:
        def __init__(self, desc: dict[str, Any]) -> None:
            self.desc = desc

        def describe_export(self, *, ExportArn: str) -> dict[str, Any]:
            assert ExportArn == "arn:e"
            return {"ExportDescription": self.desc}

    done = Ddb(
        {
            "ExportStatus": "COMPLETED",
            "S3Bucket": "b",
            "ExportManifest": f"p/{EXPORT}/manifest-summary.json",
            "ExportTime": datetime.fromtimestamp(EXPORT_TIME, tz=timezone.utc),
            "ItemCount": 7,
        }
    )
    answer = describe_export({"op": "describe_export", "export_arn": "arn:e"}, dynamodb=done)
    assert answer["status"] == "COMPLETED"
    assert answer["manifest_key"] == f"p/{EXPORT}/manifest-files.json"
    assert answer["version"] == backfill_version(EXPORT_TIME)
    assert answer["items"] == 7
    running = Ddb({"ExportStatus": "IN_PROGRESS", "S3Bucket": "b"})
    assert describe_export({"export_arn": "arn:e"}, dynamodb=running) == {
        "status": "IN_PROGRESS",
        "bucket": "b",
        "manifest_key": None,
        "version": None,
        "items": None,
        "failure": None,
    }
    with pytest.raises(ExportFileError):
        describe_export({}, dynamodb=running)


def test_rows_go_to_every_live_generation_like_stream_changes() -> None:
    from ddbsearch.core.lifecycle import Generation

    items = [every_type(n) for n in range(3)]
    s3 = FakeS3({"d/1.json.gz": data_file(items)})
    search = FakeSearch()
    live = [
        Generation("idx-000001", None, serving=True, building=False, number=1),
        Generation("idx-000002", None, serving=False, building=True, number=2),
    ]
    bulk = BulkIndexer(search, "idx", backoff_base=0.001, backoff_cap=0.002)  # type: ignore[arg-type]
    load = ExportLoader(bulk, dlq=FakeDLQ(), s3=s3, live=lambda: live)
    result = load.load(request("d/1.json.gz"), deadline=time.monotonic() + 30)
    assert result.rows == 3
    assert sorted(search.written) == ["idx-000001"] * 3 + ["idx-000002"] * 3


def test_a_load_restricted_to_a_generation_writes_that_one_only() -> None:
    """A reindex's load names the generation it builds: the serving one is not written."""
    from ddbsearch.core.lifecycle import Generation

    items = [every_type(n) for n in range(3)]
    s3 = FakeS3({"d/1.json.gz": data_file(items)})
    search = FakeSearch()
    live = [
        Generation("idx-000001", None, serving=True, building=False, number=1),
        Generation("idx-000002", None, serving=False, building=True, number=2),
    ]
    bulk = BulkIndexer(search, "idx", backoff_base=0.001, backoff_cap=0.002)  # type: ignore[arg-type]
    load = ExportLoader(bulk, dlq=FakeDLQ(), s3=s3, live=lambda: live)
    only = LoadRequest.from_event(
        {**request("d/1.json.gz").to_event(), "generations": ["idx-000002"]}
    )
    assert only.generations == ("idx-000002",)
    result = load.load(only, deadline=time.monotonic() + 30)
    assert result.rows == 3
    assert search.written == ["idx-000002"] * 3
    # A generation that is no longer live (the reindex was aborted): nothing is
    # written anywhere, and the map does not retry the file.
    gone = LoadRequest.from_event({**only.to_event(), "generations": ["idx-000003"]})
    with pytest.raises(ExportFileError, match="idx-000003"):
        load.load(gone, deadline=time.monotonic() + 30)
    assert search.written == ["idx-000002"] * 3


def test_the_generations_of_an_event_default_to_every_live_one_and_are_validated() -> None:
    legacy = request("k").to_event()
    del legacy["generations"]  # an event from a state machine that predates them
    assert LoadRequest.from_event(legacy).generations == ()
    assert LoadRequest.from_event({**legacy, "generations": None}).generations == ()
    for bad in ("idx-000002", [1], [""]):
        with pytest.raises(ExportFileError):
            LoadRequest.from_event({**legacy, "generations": bad})
