"""The local stream worker: what the Lambda event source mapping does, on one machine.

It reads a DynamoDB stream through the Streams API (DescribeStream,
GetShardIterator, GetRecords), forms batches and invokes the function
synchronously, with the semantics of the event source mapping ddbsearch's
Terraform creates (defaults from :mod:`ddbsearch.defaults`):

* **Shards.** Shards are discovered with DescribeStream (paginated) and
  re-discovered periodically and whenever a shard ends; a child shard is read
  only after its parent has been read to its end, so per-key order holds
  across shard rollovers. Reading starts at ``TRIM_HORIZON`` (configurable).
* **Checkpoints.** One per shard, kept in a JSON file (atomic writes), so a
  restarted worker resumes after the last sequence number it finished.
* **Batches.** Up to ``batch_size`` records, waiting up to
  ``batching_window_seconds`` to fill one, and never more than the 6 MB
  invocation payload limit (the batch is cut short instead).
* **Partial batch response** (``ReportBatchItemFailures``). "If the
  batchItemFailures array contains multiple items, Lambda uses the record with
  the lowest sequence number as the checkpoint. Lambda then retries all records
  starting from that checkpoint"; an empty or null list is success; an empty
  or null ``itemIdentifier`` (or one that names no record of the batch) makes
  the whole batch a failure. With bisect on, "the batch is bisected at the
  returned sequence number and Lambda retries only the remaining records".
  Source: docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html
  (Here the retry carries exactly the remaining records; AWS may top the batch
  up with newer records, which changes batch sizes but not outcomes.)
* **Function errors** (the handler raised, timed out, crashed, or its module
  did not import): the whole batch failed. With ``BisectBatchOnFunctionError``
  a failed batch of two or more records is split in two and the halves are
  retried in order; "Splitting batches doesn't consume the retry quota"
  (docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html). A
  retry of the same records (a failed single record, a failed batch with
  bisect off, or the remainder after a partial failure) counts against
  ``maximum_retry_attempts``; once more retries than that have failed, the
  records are discarded (-1 = retry until the record expires).
* **Maximum record age.** Records older than ``maximum_record_age_seconds``
  (from their ``ApproximateCreationDateTime``) are discarded instead of being
  invoked (-1 = no limit).
* **On-failure destination.** Discarded records are not sent anywhere; their
  position is, as the JSON document AWS sends for stream sources
  (``requestContext`` with ``condition`` ``RetryAttemptsExhausted`` or
  ``RecordAgeExceeded`` and ``approximateInvokeCount``, ``responseContext``,
  ``version``, ``timestamp`` and ``DDBStreamBatchInfo``; same page as above,
  and Powertools' ``DynamoDBStreamLambdaOnFailureDestinationModel``).
  ``responseContext`` is omitted for records that were never invoked.

Records are handed to the function in Lambda's event shape: ``eventSourceARN``
added, ``ApproximateCreationDateTime`` as epoch seconds rounded down (as
DynamoDB Streams documents it), binary attribute values base64-encoded.

One worker serves one mapping; it reads its shards round-robin on one thread
and invokes the function one batch at a time (parallelization factor 1).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from ddbsearch import defaults, files
from ddbsearch.local import policy
from ddbsearch.local.runtime import InvokeResult

log = logging.getLogger("ddbsearch.local.worker")

RETRY_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
# A generous allowance for the {"Records": [...]} envelope around the records.
_ENVELOPE_BYTES = 64


class StreamClient(Protocol):
    """The three DynamoDB Streams calls the worker needs (a boto3 client fits)."""

    def describe_stream(self, **kwargs: Any) -> Any: ...

    def get_shard_iterator(self, **kwargs: Any) -> Any: ...

    def get_records(self, **kwargs: Any) -> Any: ...


class Invoker(Protocol):
    """Something that invokes the function synchronously (``LocalFunction`` fits)."""

    def invoke(self, event: Mapping[str, Any]) -> InvokeResult: ...


Destination = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class MappingConfig:
    """The event source mapping's settings (``aws_lambda_event_source_mapping``)."""

    stream_arn: str
    function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:ddbsearch-indexer"
    batch_size: int = defaults.BATCH_SIZE
    batching_window_seconds: float = defaults.MAXIMUM_BATCHING_WINDOW_SECONDS
    maximum_retry_attempts: int = defaults.MAXIMUM_RETRY_ATTEMPTS
    maximum_record_age_seconds: float = defaults.MAXIMUM_RECORD_AGE_SECONDS
    bisect_batch_on_function_error: bool = defaults.BISECT_BATCH_ON_FUNCTION_ERROR
    report_batch_item_failures: bool = True
    starting_position: str = defaults.STARTING_POSITION  # TRIM_HORIZON or LATEST
    payload_limit_bytes: int = defaults.LAMBDA_PAYLOAD_LIMIT_BYTES
    # Lambda polls each shard four times a second when it has nothing to do.
    poll_interval_seconds: float = 0.25
    shard_refresh_seconds: float = 5.0
    # Delay before retrying failed records: doubles from the base up to the cap.
    retry_backoff_seconds: float = 0.05
    retry_backoff_max_seconds: float = 2.0


def sqs_destination(sqs: Any, queue_url: str) -> Destination:
    """An on-failure destination that sends each failure record to an SQS queue."""

    def send(record: dict[str, Any]) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))

    return send


class CheckpointStore:
    """Per-shard checkpoints: the last sequence number finished, and whether the shard ended.

    With a path, every change is written through (atomically); without one the
    store lives in memory only.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._data: dict[str, dict[str, Any]] = {}
        loaded = files.read_json(path) if path is not None else None
        if loaded is not None:
            self._data = {k: v for k, v in loaded.items() if isinstance(v, dict)}

    def sequence(self, shard_id: str) -> str | None:
        value = self._data.get(shard_id, {}).get("sequence")
        return value if isinstance(value, str) else None

    def ended(self, shard_id: str) -> bool:
        return bool(self._data.get(shard_id, {}).get("ended"))

    def advance(self, shard_id: str, sequence: str) -> None:
        self._data.setdefault(shard_id, {})["sequence"] = sequence
        self._save()

    def end(self, shard_id: str) -> None:
        self._data.setdefault(shard_id, {})["ended"] = True
        self._save()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._data.items()}

    def _save(self) -> None:
        if self.path is None:
            return
        files.write_json(self.path, self._data, indent=None)


@dataclass
class _Record:
    record: dict[str, Any]
    sequence: int
    created: float
    size: int

    @property
    def sequence_number(self) -> str:
        return str(self.record["dynamodb"]["SequenceNumber"])


@dataclass
class _Batch:
    records: list[_Record]
    retries: int = 0
    invokes: int = 0
    last_request_id: str | None = None
    response_context: dict[str, Any] | None = None


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    fetched_until: str | None = None
    buffer: deque[_Record] = field(default_factory=deque)
    pending: deque[_Batch] = field(default_factory=deque)
    exhausted: bool = False
    caught_up: bool = False
    # Wall-clock time at which the last GetRecords that came back empty was sent.
    caught_up_at: float | None = None
    first_buffered_at: float | None = None
    next_poll_at: float = 0.0
    next_attempt_at: float = 0.0
    failures: int = 0  # consecutive failed invocations; sets the retry delay


@dataclass
class WorkerStats:
    """Counters for tests, benchmarks and ``status``."""

    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    records_succeeded: int = 0
    records_discarded: int = 0
    bisections: int = 0
    get_records_calls: int = 0
    last_error: str | None = None
    batch_sizes: list[int] = field(default_factory=list)


def _encode_binary(value: Any) -> Any:
    """botocore decodes B/BS to bytes; Lambda events carry them base64-encoded."""
    if isinstance(value, dict):
        return {k: _encode_binary(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_binary(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return float(value.timestamp())
    if isinstance(value, (int, float)):
        return float(value)
    return time.time()


def lambda_record(raw: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """One GetRecords record in the shape Lambda puts into ``event["Records"]``."""
    record: dict[str, Any] = _encode_binary(dict(raw))
    ddb = dict(record["dynamodb"])
    ddb["ApproximateCreationDateTime"] = int(_epoch(ddb.get("ApproximateCreationDateTime")))
    # moto (5.2.5) base64-encodes binary key values in Keys twice; the images are
    # right, and a key attribute is always in the image, so take it from there.
    image = ddb.get("NewImage") or ddb.get("OldImage") or {}
    keys = ddb.get("Keys") or {}
    ddb["Keys"] = {
        name: image[name] if "B" in value and name in image else value
        for name, value in keys.items()
    }
    record["dynamodb"] = ddb
    record["eventSourceARN"] = stream_arn
    return record


def _iso(epoch: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class StreamWorker:
    """Reads one stream and invokes one function, like one event source mapping.

    Drive it on a thread (:meth:`start` / :meth:`stop`) or step by step
    (:meth:`step`, :meth:`run_until_idle`) from a test.
    """

    def __init__(
        self,
        config: MappingConfig,
        streams: StreamClient,
        function: Invoker,
        *,
        checkpoints: CheckpointStore | None = None,
        on_failure: Destination | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._streams = streams
        self._function = function
        self.checkpoints = checkpoints or CheckpointStore()
        self._on_failure = on_failure
        self._clock = clock
        self._shards: dict[str, _Shard] = {}  # the shards being read
        self._all_shards: dict[str, str | None] = {}  # every listed shard -> its parent
        self._known_ids: set[str] = set()
        self._refreshed_at = 0.0  # wall clock of the last DescribeStream
        self._next_refresh = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = WorkerStats()

    # ------------------------------------------------------------------ driving

    def start(self) -> None:
        """Run on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="ddbsearch-stream-worker", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception as exc:  # keep polling, like the managed poller does
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("stream worker step failed: %s", self.stats.last_error)
                self._stop.wait(max(self._idle_wait(), 0.5))  # no hot loop on a persistent error
                continue
            if not busy:
                self._stop.wait(self._idle_wait())

    def _idle_wait(self) -> float:
        now = time.monotonic()
        waits = [self.config.poll_interval_seconds]
        for shard in self._shards.values():
            waits.extend((shard.next_attempt_at - now, shard.next_poll_at - now))
        return max(0.005, min(waits))

    def idle(self) -> bool:
        """Nothing in flight, and every readable shard has been read to its current end."""
        return (
            all(
                not s.pending and not s.buffer and (s.caught_up or s.exhausted)
                for s in self._shards.values()
            )
            and not self._eligible_waiting()
        )

    def caught_up_since(self) -> float | None:
        """When idle: the wall-clock time since which every write is known to be delivered.

        It is the send time of the oldest of the latest empty GetRecords calls, so
        any record written before it has been delivered (or discarded). None when
        not idle. Lets another process wait for "everything I wrote is processed".
        """
        shards = list(self._shards.values())
        if not self._refreshed_at or not self.idle():
            return None
        times = [s.caught_up_at for s in shards if not s.exhausted]
        if any(t is None for t in times):
            return None
        return min((t for t in times if t is not None), default=self._refreshed_at)

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Step until :meth:`idle` (for tests and benchmarks); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        self._next_refresh = 0.0
        for shard in self._shards.values():
            shard.caught_up = False
            shard.next_poll_at = 0.0
        while True:
            busy = self.step()
            if not busy and self.idle():
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the stream worker did not become idle in time")
            if not busy:
                time.sleep(min(self._idle_wait(), 0.05))

    def step(self) -> bool:
        """Do the next piece of work on every shard; True if anything happened."""
        busy = False
        now = time.monotonic()
        if now >= self._next_refresh:
            self._refresh_shards()
            self._next_refresh = now + self.config.shard_refresh_seconds
            busy = self._eligible_waiting()
        self._activate_eligible()
        for shard in list(self._shards.values()):
            if self._stop.is_set():
                break
            busy = self._step_shard(shard) or busy
        return busy

    # ------------------------------------------------------------------ shards

    def _describe_shards(self) -> Iterator[dict[str, Any]]:
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.config.stream_arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            yield from description.get("Shards", [])
            start = description.get("LastEvaluatedShardId")
            if not start:
                return

    def _refresh_shards(self) -> None:
        self._refreshed_at = time.time()
        self._all_shards = {s["ShardId"]: s.get("ParentShardId") for s in self._describe_shards()}
        self._known_ids = set(self._all_shards)

    def _eligible_waiting(self) -> bool:
        return any(
            sid not in self._shards
            and self._parent_done(parent)
            and not self.checkpoints.ended(sid)
            for sid, parent in self._all_shards.items()
        )

    def _parent_done(self, parent: str | None) -> bool:
        # A parent that is no longer listed has been trimmed: nothing left to wait for.
        return parent is None or parent not in self._known_ids or self.checkpoints.ended(parent)

    def _activate_eligible(self) -> None:
        for sid, parent in self._all_shards.items():
            if sid in self._shards or self.checkpoints.ended(sid):
                continue
            if self._parent_done(parent):
                log.info("reading shard %s", sid)
                self._shards[sid] = _Shard(sid, parent)

    # ------------------------------------------------------------------ per shard

    def _step_shard(self, shard: _Shard) -> bool:
        now = time.monotonic()
        if now < shard.next_attempt_at:
            return False
        if shard.pending:
            self._process(shard, shard.pending[0])
            return True
        busy = False
        if (
            not shard.exhausted
            and len(shard.buffer) < self.config.batch_size
            and now >= shard.next_poll_at
        ):
            busy = self._fetch(shard)
        if shard.buffer and self._batch_ready(shard):
            shard.pending.append(self._take_batch(shard))
            self._process(shard, shard.pending[0])
            return True
        if shard.exhausted and not shard.buffer and not shard.pending:
            log.info("shard %s ended", shard.shard_id)
            self.checkpoints.end(shard.shard_id)
            del self._shards[shard.shard_id]
            self._next_refresh = 0.0  # look for its children now
            return True
        return busy

    def _iterator(self, shard: _Shard) -> str | None:
        after = shard.fetched_until or self.checkpoints.sequence(shard.shard_id)
        kwargs: dict[str, Any] = {"StreamArn": self.config.stream_arn, "ShardId": shard.shard_id}
        if after is None:
            kwargs["ShardIteratorType"] = self.config.starting_position
        else:
            kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            kwargs["SequenceNumber"] = after
        iterator = self._streams.get_shard_iterator(**kwargs).get("ShardIterator")
        return iterator if isinstance(iterator, str) else None

    def _fetch(self, shard: _Shard) -> bool:
        asked_at = time.time()
        try:
            if shard.iterator is None:
                shard.iterator = self._iterator(shard)
                if shard.iterator is None:
                    shard.exhausted = True
                    return True
            response = self._streams.get_records(ShardIterator=shard.iterator, Limit=1000)
        except Exception as exc:
            # Expired or trimmed iterator, or an emulator hiccup: ask for a new
            # iterator from where we are on the next poll.
            shard.iterator = None
            shard.next_poll_at = time.monotonic() + self.config.poll_interval_seconds
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("GetRecords on %s failed: %s", shard.shard_id, self.stats.last_error)
            return False
        self.stats.get_records_calls += 1
        records = response.get("Records", [])
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:
            shard.exhausted = True
        if not records:
            shard.caught_up = True
            shard.caught_up_at = asked_at
            shard.next_poll_at = time.monotonic() + self.config.poll_interval_seconds
            return False
        shard.caught_up = False
        shard.caught_up_at = None
        if shard.first_buffered_at is None:
            shard.first_buffered_at = time.monotonic()
        for raw in records:
            record = lambda_record(raw, self.config.stream_arn)
            ddb = record["dynamodb"]
            shard.buffer.append(
                _Record(
                    record,
                    int(ddb["SequenceNumber"]),
                    _epoch(raw["dynamodb"].get("ApproximateCreationDateTime")),
                    len(json.dumps(record)) + 2,
                )
            )
        shard.fetched_until = shard.buffer[-1].sequence_number
        return True

    def _batch_ready(self, shard: _Shard) -> bool:
        cfg = self.config
        if (
            len(shard.buffer) >= cfg.batch_size
            or shard.exhausted
            or cfg.batching_window_seconds <= 0
        ):
            return True
        if sum(r.size for r in shard.buffer) >= cfg.payload_limit_bytes:
            return True
        started = shard.first_buffered_at or time.monotonic()
        return time.monotonic() - started >= cfg.batching_window_seconds

    def _take_batch(self, shard: _Shard) -> _Batch:
        budget = self.config.payload_limit_bytes - _ENVELOPE_BYTES
        records: list[_Record] = []
        while shard.buffer and len(records) < self.config.batch_size:
            nxt = shard.buffer[0]
            if records and nxt.size > budget:
                break
            budget -= nxt.size
            records.append(shard.buffer.popleft())
        shard.first_buffered_at = time.monotonic() if shard.buffer else None
        return _Batch(records)

    # ------------------------------------------------------------------ one batch

    def _discard_expired(self, shard: _Shard, batch: _Batch) -> bool:
        """Discard the records past the maximum age; True if some are left to invoke."""
        max_age = self.config.maximum_record_age_seconds
        if max_age < 0:
            return True
        now = self._clock()
        expired = 0
        for record in batch.records:
            if now - record.created <= max_age:
                break
            expired += 1
        if expired:
            if not self._discard(shard, batch, batch.records[:expired], RECORD_AGE_EXCEEDED):
                return False
            batch.records = batch.records[expired:]
            if not batch.records:
                shard.pending.popleft()
                return False
        return True

    def _process(self, shard: _Shard, batch: _Batch) -> None:
        cfg = self.config
        if not self._discard_expired(shard, batch):
            return

        result = self._function.invoke({"Records": [r.record for r in batch.records]})
        batch.invokes += 1
        batch.last_request_id = result.request_id
        self.stats.invocations += 1
        self.stats.batch_sizes.append(len(batch.records))

        if result.error is not None:
            self.stats.function_errors += 1
            self.stats.last_error = (
                f"{result.error.get('errorType')}: {result.error.get('errorMessage')}"
            )
            batch.response_context = {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            }
            failure = policy.FirstFailure(0, whole_batch=True)
        else:
            failure = policy.first_failure(
                [r.sequence_number for r in batch.records],
                result.payload,
                report_batch_item_failures=cfg.report_batch_item_failures,
            )
            if failure.note is not None:
                self.stats.last_error = failure.note
            batch.response_context = {"statusCode": 200, "executedVersion": "$LATEST"}

        decision = policy.decide(
            len(batch.records),
            failure,
            retries=batch.retries,
            bisect_on_function_error=cfg.bisect_batch_on_function_error,
            maximum_retry_attempts=cfg.maximum_retry_attempts,
        )
        if decision.action == "done":
            self._succeed(shard, batch.records)
            shard.pending.popleft()
            shard.failures = 0
            return
        if decision.partial:
            self.stats.partial_failures += 1
        if decision.succeeded:
            self._succeed(shard, batch.records[: decision.succeeded])
            batch.records = batch.records[decision.succeeded :]

        if decision.action == "bisect":
            half = len(batch.records) // 2
            shard.pending.popleft()
            for part in (batch.records[half:], batch.records[:half]):
                shard.pending.appendleft(
                    _Batch(
                        part,
                        batch.retries,
                        batch.invokes,
                        batch.last_request_id,
                        batch.response_context,
                    )
                )
            self.stats.bisections += 1
            return

        batch.retries += 1
        if decision.action == "discard":
            if self._discard(shard, batch, batch.records, RETRY_EXHAUSTED):
                shard.pending.popleft()
            return
        shard.failures += 1
        delay = policy.retry_delay(
            shard.failures, base=cfg.retry_backoff_seconds, cap=cfg.retry_backoff_max_seconds
        )
        shard.next_attempt_at = time.monotonic() + delay

    def _succeed(self, shard: _Shard, records: list[_Record]) -> None:
        if records:
            self.checkpoints.advance(shard.shard_id, records[-1].sequence_number)
            self.stats.records_succeeded += len(records)

    def _discard(
        self, shard: _Shard, batch: _Batch, records: list[_Record], condition: str
    ) -> bool:
        """Hand the records' position to the on-failure destination and move past them."""
        if self._on_failure is not None:
            try:
                self._on_failure(self._failure_record(shard, batch, records, condition))
            except Exception as exc:
                # Keep the records until the destination takes them.
                self.stats.last_error = f"on-failure destination: {type(exc).__name__}: {exc}"
                log.warning("%s", self.stats.last_error)
                shard.next_attempt_at = time.monotonic() + self.config.retry_backoff_max_seconds
                return False
        log.warning(
            "discarded %d record(s) %s..%s of %s: %s",
            len(records),
            records[0].sequence_number,
            records[-1].sequence_number,
            shard.shard_id,
            condition,
        )
        self.checkpoints.advance(shard.shard_id, records[-1].sequence_number)
        self.stats.records_discarded += len(records)
        shard.failures = 0
        return True

    def _failure_record(
        self, shard: _Shard, batch: _Batch, records: list[_Record], condition: str
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "requestContext": {
                "requestId": batch.last_request_id or str(uuid.uuid4()),
                "functionArn": self.config.function_arn,
                "condition": condition,
                "approximateInvokeCount": batch.invokes,
            },
        }
        if batch.response_context is not None:
            document["responseContext"] = dict(batch.response_context)
        document["version"] = "1.0"
        document["timestamp"] = _iso(self._clock(), millis=True)
        document["DDBStreamBatchInfo"] = {
            "shardId": shard.shard_id,
            "startSequenceNumber": records[0].sequence_number,
            "endSequenceNumber": records[-1].sequence_number,
            "approximateArrivalOfFirstRecord": _iso(records[0].created),
            "approximateArrivalOfLastRecord": _iso(records[-1].created),
            "batchSize": len(records),
            "streamArn": self.config.stream_arn,
        }
        return document
