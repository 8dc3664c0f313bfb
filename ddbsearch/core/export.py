"""Load one DynamoDB export data file into the index (the loader Lambda's work).

A full export (``ExportTableToPointInTime``, ``ExportFormat=DYNAMODB_JSON``) is a
set of gzip files of JSON lines, one ``{"Item": {...}}`` per table item, in
DynamoDB JSON (binary values base64, as in stream records). AWS writes them
under ``<prefix>/AWSDynamoDB/<export-id>/data/`` next to ``manifest-summary.json``
and ``manifest-files.json`` (JSON lines, one ``{"dataFileS3Key": ...,
"itemCount": ...}`` per data file). moto writes the data file only, so the file
list comes from the manifest when there is one and from the prefix otherwise.

Each row becomes, for every live generation the stream handler writes (the
index's alias and, during a reindex, the building alias; or only the generations
the event names, as ``reindex`` asks so that the serving one is not written twice), the same
:class:`~ddbsearch.core.documents.Action` Scan backfill makes
(:func:`~ddbsearch.core.documents.action_from_item` with that generation's
configuration), at the backfill version of the export time: every stream change
made after the export carries a higher version and wins, so the stream keeps
running during the load. A row that can never be indexed is dead-lettered with its
reason, and any older copy of its document is deleted at that version, as on the
stream path.

One invocation loads lines from ``start_line`` until the file ends (``complete``)
or its time budget runs low; it then answers ``next_line`` and the state machine
(or the local map runner) invokes it again from there, so no file is too large
for Lambda's 15 minutes. Documents still failing transiently when the budget is
spent raise :class:`SearchThrottled`, which the map retries with backoff: a
domain that answers 429 slows the load down instead of failing it. Everything is
idempotent (external versions), so a retried or repeated chunk changes nothing.

Stdlib + botocore only (S3 through botocore), like the rest of the core.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from ddbsearch.core.bulk import BulkIndexer, Outcome
from ddbsearch.core.documents import (
    Action,
    InvalidDocument,
    action_from_item,
    attribute_version,
    backfill_version,
    document_id,
)

MANIFEST_FILES = "manifest-files.json"
MANIFEST_SUMMARY = "manifest-summary.json"
# Rows per _bulk: large enough to amortise the request, small enough that a retry
# after a throttle redoes little. The byte limit of the bulk indexer applies too.
CHUNK_ROWS = 1000
# Stop taking new chunks when less than this is left of the invocation, so the
# answer (with next_line) is always sent before Lambda's timeout.
RESERVE_SECONDS = 20.0
DEFAULT_BUDGET_SECONDS = 60.0


class ExportFileError(Exception):
    """The file cannot be loaded by retrying: missing, not gzip, not DYNAMODB_JSON lines.

    Its class name is the Step Functions error name; the map does not retry it.
    """


class SearchThrottled(Exception):
    """Documents still failed transiently (429, 5xx, unreachable) when the budget ran out.

    The map retries it with exponential backoff, which is what slows the load down.
    """


class DeadLetterUnavailable(Exception):
    """Rows that cannot be indexed could not be sent to the dead-letter queue."""


@dataclass(frozen=True)
class _OwnIndex:
    """A generation stand-in: the bulk indexer's index, with the original model."""

    name: str
    config: Any = None


@dataclass(frozen=True)
class DataFile:
    key: str
    size: int | None = None
    items: int | None = None


@dataclass(frozen=True)
class LoadRequest:
    """The event of one loader invocation (one Distributed Map item, possibly resumed)."""

    bucket: str
    key: str
    key_names: tuple[str, ...]
    version: int
    start_line: int = 0
    # The generations (concrete index names) to write; empty: every live generation.
    # A reindex loads only the one it builds: the serving one has its rows already.
    generations: tuple[str, ...] = ()

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> LoadRequest:
        try:
            bucket = str(event["bucket"])
            key = str(event["key"])
            key_names = tuple(str(k) for k in event["key_names"])
            version = int(event["version"])
            start_line = int(event.get("start_line") or 0)
            raw = event.get("generations") or ()
            if isinstance(raw, (str, bytes)) or not all(isinstance(g, str) for g in raw):
                raise TypeError("generations must be a list of index names")
            generations = tuple(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportFileError(f"malformed load event: {type(exc).__name__}: {exc}") from None
        if not bucket or not key or not key_names or start_line < 0 or "" in generations:
            raise ExportFileError("load event needs bucket, key, key_names and a version")
        return cls(bucket, key, key_names, version, start_line, generations)

    def to_event(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "key_names": list(self.key_names),
            "version": self.version,
            "start_line": self.start_line,
            "generations": list(self.generations),
        }


def export_version(export_time: float) -> int:
    """The version export rows are indexed at: the backfill rule, for the export time."""
    return backfill_version(export_time)


# --------------------------------------------------------------------------- format


def parse_manifest_files(text: str) -> list[DataFile]:
    """``manifest-files.json`` (JSON lines) -> the data files it names, in order."""
    files: list[DataFile] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            key = entry["dataFileS3Key"]
        except (ValueError, KeyError, TypeError):
            raise ExportFileError(f"{MANIFEST_FILES} line {number} has no dataFileS3Key") from None
        count = entry.get("itemCount")
        files.append(DataFile(str(key), items=int(count) if isinstance(count, int) else None))
    return files


def iter_items(lines: Iterable[bytes], *, start_line: int = 0) -> Iterator[tuple[int, Any]]:
    """(line number, item) for every non-blank line from ``start_line`` (0-based).

    A line that is not ``{"Item": {...}}`` yields an ExportFileError *value* in
    place of the item, so that one bad row is reported, not the whole file lost.
    """
    for number, raw in enumerate(lines):
        if number < start_line or not raw.strip():
            continue
        try:
            row = json.loads(raw)
            item = row["Item"]
            if not isinstance(item, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            yield number, ExportFileError(f"line {number} is not a DYNAMODB_JSON row")
            continue
        yield number, item


def gzip_lines(stream: IO[bytes]) -> Iterator[bytes]:
    try:
        with gzip.GzipFile(fileobj=stream) as unzipped:
            yield from io.BufferedReader(unzipped)
    except (OSError, EOFError, zlib.error) as exc:
        raise ExportFileError(f"not a readable gzip file ({type(exc).__name__})") from None


# --------------------------------------------------------------------------- S3


def s3_client(region: str | None = None) -> Any:
    """A botocore S3 client (honours AWS_ENDPOINT_URL, so the local stack's moto works)."""
    import botocore.session
    from botocore.config import Config

    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        region_name=region or session.get_config_variable("region") or "us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )


def _list(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        yield from page.get("Contents", [])
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return


def list_data_files(s3: Any, bucket: str, prefix: str) -> tuple[str | None, list[DataFile]]:
    """The export's data files under ``prefix``: (manifest key or None, files).

    With a ``manifest-files.json`` (AWS) the manifest is the list, in its order; without
    one (moto) every ``*.gz`` object under a ``data/`` folder is, sorted by key.
    ``prefix`` must hold one export only: two manifests are an error.
    """
    objects = list(_list(s3, bucket, prefix))
    manifests = [o["Key"] for o in objects if o["Key"].endswith("/" + MANIFEST_FILES)]
    sizes = {o["Key"]: int(o.get("Size", 0)) for o in objects}
    if len(manifests) > 1:
        raise ExportFileError(
            f"s3://{bucket}/{prefix} holds {len(manifests)} exports; name one export's folder"
        )
    if manifests:
        body = s3.get_object(Bucket=bucket, Key=manifests[0])["Body"].read()
        files = parse_manifest_files(body.decode("utf-8"))
        return manifests[0], [DataFile(f.key, sizes.get(f.key), f.items) for f in files]
    data = sorted(k for k in sizes if k.endswith(".gz") and "/data/" in "/" + k)
    return None, [DataFile(k, sizes[k]) for k in data]


# --------------------------------------------------------------------------- loading


@dataclass
class LoadResult:
    key: str
    start_line: int
    next_line: int
    complete: bool
    rows: int = 0
    indexed: int = 0
    stale: int = 0
    dead_lettered: int = 0
    requests: int = 0
    retries: int = 0
    throttled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "start_line": self.start_line,
            "next_line": self.next_line,
            "complete": self.complete,
            "rows": self.rows,
            "indexed": self.indexed,
            "stale": self.stale,
            "dead_lettered": self.dead_lettered,
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
        }


class ExportLoader:
    """Loads export data files through the stream handler's bulk indexer and DLQ."""

    def __init__(
        self,
        bulk: BulkIndexer,
        *,
        dlq: Any = None,
        s3: Any = None,
        region: str | None = None,
        chunk_rows: int = CHUNK_ROWS,
        reserve_seconds: float = RESERVE_SECONDS,
        live: Callable[[], Sequence[Any]] | None = None,
    ) -> None:
        self.bulk = bulk
        self.dlq = dlq
        self._s3 = s3
        self._region = region
        self.chunk_rows = chunk_rows
        self.reserve = reserve_seconds
        # The generations every row goes to (the handler's live set); default: the
        # bulk indexer's own index, as it is.
        self._live = live or (lambda: [_OwnIndex(bulk.index)])
        self._reserve = reserve_seconds

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = s3_client(self._region)
        return self._s3

    def open(self, bucket: str, key: str) -> IO[bytes]:
        from botocore.exceptions import ClientError

        try:
            body: IO[bytes] = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "NoSuchBucket", "404", "AccessDenied", "403"):
                raise ExportFileError(f"cannot read s3://{bucket}/{key}: {code}") from None
            raise
        return body

    def load(self, request: LoadRequest, *, deadline: float) -> LoadResult:
        """Index lines of one file from ``request.start_line`` until it ends or time runs low."""
        result = LoadResult(request.key, request.start_line, request.start_line, False)
        # A short invocation keeps a proportional reserve, not a fixed one.
        self._reserve = min(self.reserve, max(0.0, deadline - time.monotonic()) * 0.2)
        lines = gzip_lines(self.open(request.bucket, request.key))
        chunk: list[tuple[int, Any]] = []
        last_line = request.start_line - 1
        for number, item in iter_items(lines, start_line=request.start_line):
            chunk.append((number, item))
            last_line = number
            if len(chunk) >= self.chunk_rows:
                if not self._chunk_or_stop(request, chunk, result, deadline):
                    return result
                result.next_line = number + 1
                chunk = []
                if time.monotonic() > deadline - self._reserve:
                    return result
        if chunk and not self._chunk_or_stop(request, chunk, result, deadline):
            return result
        result.next_line = last_line + 1
        result.complete = True
        return result

    def _chunk_or_stop(
        self,
        request: LoadRequest,
        chunk: Sequence[tuple[int, Any]],
        result: LoadResult,
        deadline: float,
    ) -> bool:
        """Index a chunk; False when it stays throttled after earlier chunks succeeded.

        Then the invocation answers its progress (``next_line`` at this chunk) rather
        than raising, so the map's retry does not redo the chunks already done; a
        throttled first chunk raises SearchThrottled, which the map backs off on.
        """
        try:
            self._chunk(request, chunk, result, deadline)
        except SearchThrottled:
            if result.rows == 0:
                raise
            result.throttled = True
            return False
        return True

    def _chunk(
        self,
        request: LoadRequest,
        rows: Sequence[tuple[int, Any]],
        result: LoadResult,
        deadline: float,
    ) -> None:
        """Index rows into every live generation (as the stream handler writes them), or
        into those of the request's generations that are live."""
        live = self._targets(request)
        actions: list[Action] = []
        owner: list[int] = []  # the row (position in ``rows``) each action belongs to
        rejected: dict[int, list[str]] = {}
        deletes: list[Action] = []
        for pos, (_number, item) in enumerate(rows):
            if isinstance(item, ExportFileError):
                rejected[pos] = [f"invalid_row: {item}"]
                continue
            for gen in live:
                try:
                    action = action_from_item(
                        item, request.key_names, request.version, gen.config, gen.name
                    )
                except InvalidDocument as exc:
                    rejected.setdefault(pos, []).append(f"{exc.error_type}: {exc.reason}")
                    delete = _delete_for(item, request, gen)
                    if delete is not None:
                        deletes.append(delete)
                    continue
                actions.append(action)
                owner.append(pos)
        report = self.bulk.run(actions, deadline=deadline - self._reserve / 2)
        result.requests += report.requests
        result.retries += report.retries
        transient = 0
        for n, res in enumerate(report.results):
            if res.outcome is Outcome.INDEXED:
                result.indexed += 1
            elif res.outcome is Outcome.STALE:
                result.stale += 1
            elif res.outcome is Outcome.PERMANENT:
                a = actions[n]
                rejected.setdefault(owner[n], []).append(res.reason or "permanent failure")
                deletes.append(Action("delete", a.doc_id, a.version, None, a.keys, None, a.index))
            else:
                transient += 1
        if transient:
            raise SearchThrottled(
                f"{transient} document(s) of {request.key} still failing transiently "
                f"(lines {rows[0][0]}-{rows[-1][0]}); retry with backoff"
            )
        if rejected:
            self._reject(request, rows, rejected, deletes, deadline)
            result.dead_lettered += len(rejected)
        result.rows += len(rows)

    def _targets(self, request: LoadRequest) -> Sequence[Any]:
        live = self._live()
        if not request.generations:
            return live
        chosen = [g for g in live if g.name in request.generations]
        if not chosen:
            # Dropped or swapped meanwhile (an aborted reindex): writing anything else
            # would put rows where nobody asked for them. Not retried.
            raise ExportFileError(
                f"none of the generations {', '.join(request.generations)} is live "
                "(the reindex it was loading for was aborted or has finished)"
            )
        return chosen

    def _reject(
        self,
        request: LoadRequest,
        rows: Sequence[tuple[int, Any]],
        rejected: Mapping[int, list[str]],
        deletes: Sequence[Action],
        deadline: float,
    ) -> None:
        """Delete older copies of the rejected rows (versioned) and dead-letter them."""
        if self.dlq is None:
            raise ExportFileError(
                f"{len(rejected)} row(s) of {request.key} cannot be indexed and there "
                "is no dead-letter queue (set DLQ_URL)"
            )
        if deletes:
            report = self.bulk.run(deletes, deadline=deadline - self._reserve / 2)
            if any(not r.outcome.done for r in report.results):
                raise SearchThrottled(f"deleting older copies of rejected rows of {request.key}")
        messages = []
        for pos in sorted(rejected):
            number, item = rows[pos]
            keys = None if isinstance(item, ExportFileError) else _keys_of(item, request.key_names)
            doc_id = None
            if keys is not None:
                with contextlib.suppress(InvalidDocument):
                    doc_id = document_id(keys)
            messages.append(
                {
                    "source": "ddbsearch",
                    "reason": "; ".join(rejected[pos]),
                    "exportBucket": request.bucket,
                    "exportFile": request.key,
                    "line": number,
                    "keys": keys,
                    "documentId": doc_id,
                    "version": request.version,
                }
            )
        unsent = self.dlq.send(messages)
        if unsent:
            raise DeadLetterUnavailable(
                f"{len(unsent)} rejected row(s) of {request.key} could not be dead-lettered"
            )


def _delete_for(item: Mapping[str, Any], request: LoadRequest, gen: Any) -> Action | None:
    """The versioned delete of any older copy of a row a generation rejects (None: no key
    or no usable version to delete at)."""
    keys = _keys_of(item, request.key_names)
    if keys is None:
        return None
    config = gen.config
    try:
        version = request.version
        if config is not None and config.version_attribute is not None:
            version = attribute_version(item, config.version_attribute, delete=True)
        return Action("delete", document_id(keys, config), version, None, keys, None, gen.name)
    except InvalidDocument:
        return None


def _keys_of(item: Mapping[str, Any], key_names: Sequence[str]) -> dict[str, Any] | None:
    try:
        return {name: item[name] for name in key_names}
    except KeyError:
        return None


def budget_deadline(context: Any) -> float:
    """The monotonic time by which the invocation must answer."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    seconds = DEFAULT_BUDGET_SECONDS if remaining_ms is None else float(remaining_ms()) / 1000.0
    return time.monotonic() + max(0.0, seconds - 2.0)


_loaders: dict[int, ExportLoader] = {}


def load_file(indexer: Any, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The loader entry point's work, with the stream handler's ``Indexer`` (same zip,
    same settings, same bulk indexer and dead-letter queue)."""
    if event.get("op") == "describe_export":
        return describe_export(event)
    started = time.monotonic()
    request = LoadRequest.from_event(event)
    deadline = budget_deadline(context)
    loader = _loaders.get(id(indexer))
    if loader is None:
        loader = ExportLoader(
            indexer.bulk,
            dlq=indexer.dlq,
            region=indexer.settings.region,
            live=indexer.live_generations,  # every live generation, as the stream writes
        )
        _loaders[id(indexer)] = loader
    result = loader.load(request, deadline=deadline)
    line = {
        "level": "INFO",
        "message": "export file chunk loaded",
        "request_id": getattr(context, "aws_request_id", None),
        "index": indexer.settings.index,
        **result.to_json(),
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }
    out = getattr(indexer, "_log", None) or sys.stdout
    out.write(json.dumps(line, separators=(",", ":")) + "\n")
    out.flush()
    return result.to_json()


def describe_export(event: Mapping[str, Any], *, dynamodb: Any = None) -> dict[str, Any]:
    """The state machine's first step: where an export stands, and what to load once done.

    ``{"op": "describe_export", "export_arn": ...}`` -> ``{"status", "bucket",
    "manifest_key", "version", "items"}``; the state machine waits while the status is
    IN_PROGRESS, so the load starts on AWS's side even when the operator has left.
    """
    arn = event.get("export_arn")
    if not isinstance(arn, str) or not arn:
        raise ExportFileError("describe_export needs an export_arn")
    if dynamodb is None:
        import botocore.session

        dynamodb = botocore.session.get_session().create_client("dynamodb")
    desc = dynamodb.describe_export(ExportArn=arn)["ExportDescription"]
    status = str(desc.get("ExportStatus") or "IN_PROGRESS")
    # Every key is always there (null until known): the state's ResultSelector reads them.
    out: dict[str, Any] = {
        "status": status,
        "bucket": desc.get("S3Bucket"),
        "manifest_key": None,
        "version": None,
        "items": None,
        "failure": None,
    }
    if status == "COMPLETED":
        summary = desc.get("ExportManifest")
        export_time = desc.get("ExportTime")
        if not summary or export_time is None:
            raise ExportFileError(f"export {arn} has no manifest or no export time")
        out["manifest_key"] = str(summary).rsplit("/", 1)[0] + "/" + MANIFEST_FILES
        seconds = export_time.timestamp() if hasattr(export_time, "timestamp") else export_time
        out["version"] = export_version(float(seconds))
        out["items"] = desc.get("ItemCount")
    elif status == "FAILED":
        out["failure"] = f"{desc.get('FailureCode') or ''} {desc.get('FailureMessage') or ''}"
    return out
