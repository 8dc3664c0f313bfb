"""The fault-injection harness: a whole pipeline on the session emulators.

``pipeline()`` builds, per test (or per hypothesis example): a moto table with a
NEW_AND_OLD_IMAGES stream, an SQS dead-letter queue, an index made by
``ensure_index``, a :class:`FaultProxy` in front of osmem, the built Lambda zip
running in a :class:`LocalFunction` (a clean child process) and a
:class:`StreamWorker` with an on-disk checkpoint file. Everything it makes is torn
down after the test. The suite's numbers (operations, faults by kind, documents
compared, mismatches) accumulate in :data:`RUN_STATS` and are written to
``<pytest basetemp>/reliability-stats.json`` and printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from ddbsearch.core.stream import Settings
from ddbsearch.core.template import TEMPLATE_PREFIX, ensure_index, index_template
from ddbsearch.core.transport import SearchTransport
from ddbsearch.local.runtime import FunctionConfig, LocalFunction
from ddbsearch.local.worker import (
    CheckpointStore,
    MappingConfig,
    StreamWorker,
    sqs_destination,
)
from ddbsearch.packaging import build_lambda_zip
from ddbsearch.testing import oracle
from ddbsearch.testing.faultproxy import FaultProxy

# Totals over the whole run, written out by pytest_terminal_summary below.
RUN_STATS: dict[str, Any] = {
    "tests": Counter(),
    "plans": [],  # the round faults of each convergence example, in order
    "operations": Counter(),
    "faults": Counter(),
    "records_delivered": 0,  # stream records the workers handed to the function and saw done
    "invocations": 0,
    "function_errors": 0,
    "documents_compared": 0,
    "comparisons": 0,
    "mismatches": 0,
    "mismatches_made_on_purpose_and_found": 0,
    "mismatches_in_known_bug_xfails": 0,
    "dead_letters_expected": 0,
    "dead_letters_found": 0,
    "dead_letters_distinct": 0,
    "records_discarded": 0,
}
_STATS_FILE: list[Path] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every reliability test (fault injection, property-based runs) is ``slow``."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.slow)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class Gate:
    """A fault-free proxy between the fault proxy and osmem that can hold one ``_bulk``.

    ``hold_next_bulk()`` makes the next ``_bulk`` wait here, already sent by its
    client, until ``release()`` (or ``release_after`` seconds): the client times out
    or is killed meanwhile, and the request still reaches the index afterwards, the
    way a real network can deliver a dead invocation's write late. ``landed`` counts
    requests that reached osmem.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.landed = 0
        self.holding = threading.Event()  # a request is being held now
        self._armed: threading.Event | None = None
        self._in_flight = 0
        self._releases: list[threading.Event] = []
        self._lock = threading.Lock()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                status, data = gate._through(self.command, self.path, body, dict(self.headers))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except OSError:
                    self.close_connection = True  # the client is gone (killed, timed out)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def hold_next_bulk(self, release_after: float | None = None) -> threading.Event:
        release = threading.Event()
        with self._lock:
            self._armed = release
            self._releases.append(release)
        if release_after is not None:
            timer = threading.Timer(release_after, release.set)
            timer.daemon = True
            timer.start()
        return release

    def _through(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        with self._lock:
            self._in_flight += 1
            release = None
            if self._armed is not None and path.split("?", 1)[0].endswith("/_bulk"):
                release, self._armed = self._armed, None
        try:
            if release is not None:
                self.holding.set()
                release.wait(timeout=120)
                self.holding.clear()
            req = urllib.request.Request(
                self.upstream + path,
                data=body,
                method=method,
                headers={"Content-Type": headers.get("Content-Type", "application/json")},
            )
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    status, data = resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                status, data = exc.code, exc.read()
            with self._lock:
                self.landed += 1
            return status, data
        finally:
            with self._lock:
                self._in_flight -= 1

    def release_all(self) -> None:
        with self._lock:
            self._armed = None
            for release in self._releases:
                release.set()

    @property
    def idle(self) -> bool:
        with self._lock:
            # A hold whose release time has come but that caught no request holds nothing.
            return self._in_flight == 0 and (self._armed is None or self._armed.is_set())

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class Pipeline:
    """One table -> stream -> worker -> zip -> proxy -> index pipeline, plus its DLQ."""

    tmp: Path
    zip_path: Path
    moto: str
    osmem: str
    ddb: Any
    sqs: Any
    streams: Any
    table: str
    index: str
    key_names: list[str]
    stream_arn: str
    dlq_url: str
    proxy: FaultProxy
    gate: Gate  # fault-free, between the proxy and osmem: holds late writes, counts arrivals
    function: LocalFunction
    batch_size: int
    log_path: Path
    checkpoint_path: Path
    worker_settings: dict[str, Any] = field(default_factory=dict)
    failures_to_dlq: bool = False
    worker: StreamWorker = field(init=False)
    search: SearchTransport = field(init=False)
    worker_log: _Capture = field(default_factory=_Capture)
    discarded: list[dict[str, Any]] = field(default_factory=list)
    workers_started: int = 0
    closed: bool = False
    stats: dict[str, Any] = field(default_factory=lambda: RUN_STATS)

    def __post_init__(self) -> None:
        self.search = SearchTransport(self.osmem, sigv4=False)
        self.worker = self.new_worker(CheckpointStore(self.checkpoint_path))

    # ------------------------------------------------------------------ workers

    def new_worker(self, checkpoints: CheckpointStore) -> StreamWorker:
        self.workers_started += 1
        return StreamWorker(
            MappingConfig(
                stream_arn=self.stream_arn,
                batch_size=self.batch_size,
                poll_interval_seconds=0.05,
                retry_backoff_seconds=0.02,
                retry_backoff_max_seconds=0.3,
                **self.worker_settings,
            ),
            self.streams,
            self.function,
            checkpoints=checkpoints,
            on_failure=self._on_failure,
        )

    def _on_failure(self, record: dict[str, Any]) -> None:
        """The on-failure destination: recorded, and (like the deployed mapping) the DLQ."""
        if self.failures_to_dlq:
            sqs_destination(self.sqs, self.dlq_url)(record)
        self.discarded.append(record)

    def restart_worker(self) -> None:
        """Abandon the worker (whatever it had buffered) and resume from the checkpoint file."""
        self._retire(self.worker)
        self.worker = self.new_worker(CheckpointStore(self.checkpoint_path))

    def replay(self, timeout: float = 60.0) -> None:
        """Deliver the whole stream again from TRIM_HORIZON (a fresh checkpoint store)."""
        replayer = self.new_worker(CheckpointStore())
        replayer.run_until_idle(timeout=timeout)
        self._retire(replayer)

    def drain(self, timeout: float = 60.0) -> None:
        self.worker.run_until_idle(timeout=timeout)

    def step_for(self, seconds: float) -> None:
        """Let the worker work for about this long (it may block inside an invocation)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not self.worker.step():
                time.sleep(0.01)

    def _retire(self, worker: StreamWorker) -> None:
        RUN_STATS["invocations"] += worker.stats.invocations
        RUN_STATS["function_errors"] += worker.stats.function_errors
        RUN_STATS["records_discarded"] += worker.stats.records_discarded
        RUN_STATS["records_delivered"] += worker.stats.records_succeeded

    # ------------------------------------------------------------------ faults

    def kill_function_during_next_bulk(
        self, release_after: float | None = 0.6
    ) -> tuple[threading.Thread, threading.Event]:
        """SIGKILL the function's process while its next ``_bulk`` is held in flight.

        The held request still reaches the index once released (after
        ``release_after`` seconds, or when the returned event is set): a late write
        from a dead invocation. Returns the killer thread and the release event.
        """
        release = self.gate.hold_next_bulk(release_after)

        def kill() -> None:
            if not self.gate.holding.wait(timeout=30):
                return
            pid = self.function.pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    RUN_STATS["faults"]["function_killed"] += 1

        thread = threading.Thread(target=kill, daemon=True)
        thread.start()
        return thread, release

    def hold_next_bulk(self, seconds: float) -> None:
        """The next ``_bulk`` is held this long, then reaches the index (a late write)."""
        self.gate.hold_next_bulk(seconds)

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until every held request has been released and has reached the index."""
        deadline = time.monotonic() + timeout
        while not self.gate.idle:
            if time.monotonic() > deadline:
                raise TimeoutError("a held request never reached the index")
            time.sleep(0.02)

    def wait_for_landed(self, count: int, timeout: float = 30.0) -> None:
        """Poll until ``count`` requests have reached osmem (late writes included)."""
        deadline = time.monotonic() + timeout
        while self.gate.landed < count:
            if time.monotonic() > deadline:
                raise TimeoutError("the held request never reached the index")
            time.sleep(0.01)

    # ------------------------------------------------------------------ checks

    def index_documents(self) -> dict[str, dict[str, Any]]:
        return oracle.index_documents(self.search, self.index)

    def diff(
        self,
        exclude: set[str] | frozenset[str] = frozenset(),
        *,
        on_purpose: bool = False,
        known_bug: bool = False,
    ) -> oracle.IndexDiff:
        """Compare index and table. ``on_purpose``: the test makes the index differ;
        ``known_bug``: a strict-xfail test of a reported bug (counted apart)."""
        result = oracle.diff_index(self.ddb, self.table, self.search, self.index, exclude=exclude)
        RUN_STATS["comparisons"] += 1
        RUN_STATS["documents_compared"] += result.compared
        key = "mismatches"
        if on_purpose:
            key = "mismatches_made_on_purpose_and_found"
        elif known_bug:
            key = "mismatches_in_known_bug_xfails"
        RUN_STATS[key] += result.mismatches
        return result

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every message in the dead-letter queue (left in the queue, visible again)."""
        bodies: list[dict[str, Any]] = []
        handles: list[str] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60
            ).get("Messages", [])
            if not got:
                break
            for message in got:
                bodies.append(json.loads(message["Body"]))
                handles.append(message["ReceiptHandle"])
        for start in range(0, len(handles), 10):
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.dlq_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for n, h in enumerate(handles[start : start + 10])
                ],
            )
        return bodies

    def function_log(self) -> str:
        return self.log_path.read_text(encoding="utf-8") if self.log_path.exists() else ""

    def target(self) -> Any:
        from ddbsearch.targets import Target

        return Target(
            kind="local",
            name="reliability",
            region="us-east-1",
            table=self.table,
            index=self.index,
            search_endpoint=self.proxy.url,
            aws_endpoint=self.moto,
            dlq_url=self.dlq_url,
            sigv4=False,
        )

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.gate.release_all()
        self.settle()  # a late write must not recreate the index after it is deleted
        for kind, n in self.proxy.stats.faults.items():
            RUN_STATS["faults"][f"proxy_{kind}"] += n
        self._retire(self.worker)
        self.function.close()
        self.proxy.stop()
        self.gate.stop()
        self.ddb.delete_table(TableName=self.table)
        self.sqs.delete_queue(QueueUrl=self.dlq_url)
        self.search.request("DELETE", f"/{self.index}")


@pytest.fixture(scope="session")
def indexer_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lambda_zip(tmp_path_factory.mktemp("zip") / "indexer.zip")


@pytest.fixture
def pipeline(
    moto_endpoint: str,
    osmem_base: str,
    indexer_zip: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """Factory: ``pipeline(sort_key="N", batch_size=10, timeout=5.0, mapping=None)``."""
    made: list[Pipeline] = []
    worker_logger = logging.getLogger("ddbsearch.local.worker")

    def make(
        *,
        sort_key: str | None = "N",
        batch_size: int = 10,
        timeout: float = 5.0,
        mapping: dict[str, Any] | None = None,
        index_settings: dict[str, Any] | None = None,
        proxy_prefix: str = "/_bulk",
        worker_settings: dict[str, Any] | None = None,
        failures_to_dlq: bool = False,
    ) -> Pipeline:
        tmp = tmp_path_factory.mktemp("pipeline")
        ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
        sqs = boto3.client("sqs", endpoint_url=moto_endpoint)
        suffix = uuid.uuid4().hex[:10]
        table, index = f"R{suffix}", f"r{suffix}"
        keys = [("pk", "S")] + ([("sk", sort_key)] if sort_key else [])
        desc = ddb.create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": n, "KeyType": "HASH" if i == 0 else "RANGE"}
                for i, (n, _) in enumerate(keys)
            ],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in keys],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        dlq_url = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
        search = SearchTransport(osmem_base, sigv4=False)
        if index_settings is not None:
            # ddbsearch's template, but an index created with tighter limits than it
            # sets (by hand, or by an older version): ensure_index keeps the index.
            put = search.json(
                "PUT", f"/_index_template/{TEMPLATE_PREFIX}{index}", index_template(index)
            )
            assert put.status < 300, put.body
            created = search.json("PUT", f"/{index}", {"settings": index_settings})
            assert created.status < 300, created.body
        ensure_index(search, index)
        if mapping is not None:
            put = search.json("PUT", f"/{index}/_mapping", {"properties": mapping})
            assert put.status < 300, put.body
        gate = Gate(osmem_base)
        proxy = FaultProxy(gate.url, path_prefix=proxy_prefix).start()
        log_path = tmp / "function.log"
        function = LocalFunction(
            FunctionConfig(
                zip_path=indexer_zip,
                timeout_seconds=timeout,
                environment={
                    **Settings(
                        endpoint=proxy.url, index=index, region=None, dlq_url=dlq_url, sigv4=False
                    ).to_environment(),
                    "AWS_ENDPOINT_URL": moto_endpoint,
                },
            ),
            work_dir=tmp / "fn",
            log_path=log_path,
        )
        p = Pipeline(
            tmp=tmp,
            zip_path=indexer_zip,
            moto=moto_endpoint,
            osmem=osmem_base,
            ddb=ddb,
            sqs=sqs,
            streams=boto3.client("dynamodbstreams", endpoint_url=moto_endpoint),
            table=table,
            index=index,
            key_names=[n for n, _ in keys],
            stream_arn=desc["LatestStreamArn"],
            dlq_url=dlq_url,
            proxy=proxy,
            gate=gate,
            function=function,
            batch_size=batch_size,
            log_path=log_path,
            checkpoint_path=tmp / "checkpoints.json",
            worker_settings=worker_settings or {},
            failures_to_dlq=failures_to_dlq,
        )
        worker_logger.addHandler(p.worker_log)
        made.append(p)
        return p

    old_level = worker_logger.level
    worker_logger.setLevel(logging.DEBUG)
    try:
        yield make
    finally:
        worker_logger.setLevel(old_level)
        for p in made:
            worker_logger.removeHandler(p.worker_log)
            p.close()


@pytest.fixture(scope="session", autouse=True)
def _stats_file(tmp_path_factory: pytest.TempPathFactory) -> None:
    _STATS_FILE[:] = [tmp_path_factory.getbasetemp() / "reliability-stats.json"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _STATS_FILE or not RUN_STATS["tests"]:
        return
    out = {k: (dict(v) if isinstance(v, Counter) else v) for k, v in RUN_STATS.items()}
    out["operations_total"] = sum(RUN_STATS["operations"].values())
    out["faults_total"] = sum(RUN_STATS["faults"].values())
    _STATS_FILE[0].write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    terminalreporter.section("reliability numbers")
    terminalreporter.write_line(f"written to {_STATS_FILE[0]}")
    terminalreporter.write_line(json.dumps(out, sort_keys=True))
