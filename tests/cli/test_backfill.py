"""`ddbsearch backfill` against the real emulators: versions, idempotence, resume, Ctrl-C,
one run at a time per checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.bulk import BulkIndexer
from ddbsearch.core.documents import action_from_record, to_document
from ddbsearch.core.pacing import Pacer
from ddbsearch.core.transport import SearchTransport
from ddbsearch.errors import Aborted, ExitCode
from ddbsearch.local.state import record_target
from ddbsearch.ops import backfill as backfill_module
from ddbsearch.ops.backfill import Checkpoint, checkpoint_path, lock_path, run_backfill
from ddbsearch.targets import Target
from ddbsearch.testing.data import generate_transactions

pytestmark = pytest.mark.integration

runner = CliRunner()
KEYS = ["userId", "transactionId"]
REFERENCE_KEYS = (("userId", "N"), ("transactionId", "N"))  # as deploy creates it


def ddb(target: Target) -> Any:
    return boto3.client("dynamodb", endpoint_url=target.aws_endpoint, region_name="us-east-1")


def fill(target: Target, count: int, seed: int = 1) -> list[dict[str, Any]]:
    items = list(generate_transactions(count, seed=seed))
    client = ddb(target)
    for i in range(0, count, 25):
        batch = [{"PutRequest": {"Item": it}} for it in items[i : i + 25]]
        assert not client.batch_write_item(RequestItems={target.table: batch})["UnprocessedItems"]
    return items


def documents(target: Target) -> dict[str, dict[str, Any]]:
    """Every document in the index: _id -> (_source, _version)."""
    transport = SearchTransport(target.search_endpoint, sigv4=False)
    assert transport.request("POST", f"/{target.index}/_refresh").status == 200
    body = {"query": {"match_all": {}}, "size": 10_000, "version": True}
    hits = transport.json("POST", f"/{target.index}/_search", body).json()["hits"]["hits"]
    return {h["_id"]: {"source": h["_source"], "version": h["_version"]} for h in hits}


def doc_id(item: Mapping[str, Any]) -> str:
    from ddbsearch.core.documents import document_id

    return document_id({k: item[k] for k in KEYS})


def stream_apply(target: Target, event: str, keys: dict[str, Any], image: Any = None) -> None:
    """Index one stream record now, the way the Lambda handler would."""
    ddb_part: dict[str, Any] = {
        "Keys": keys,
        "ApproximateCreationDateTime": time.time(),
        "SequenceNumber": "1",
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if image is not None:
        ddb_part["NewImage"] = image
    action = action_from_record({"eventName": event, "dynamodb": ddb_part})
    transport = SearchTransport(target.search_endpoint, sigv4=False)
    report = BulkIndexer(transport, target.index).run([action], deadline=time.monotonic() + 30)
    assert report.results[0].outcome.done


def test_backfill_indexes_every_row_and_a_second_run_changes_nothing(
    ops_target: Callable[..., Target],
) -> None:
    target = ops_target(REFERENCE_KEYS)
    items = fill(target, 300)
    result = runner.invoke(app, ["backfill", "--segments", "4", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["scanned"] == 300
    assert summary["indexed"] == 300
    assert summary["failed"] == 0
    assert summary["complete"] is True
    assert summary["segments"] == 4
    first = documents(target)
    assert len(first) == 300
    for item in items:  # same id and document as the stream path would produce
        assert first[doc_id(item)]["source"] == to_document(item)
    assert not checkpoint_path(target).exists()  # complete: nothing to resume

    again = runner.invoke(app, ["backfill", "--json"])
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["failed"] == 0
    second = documents(target)
    assert {k: v["source"] for k, v in second.items()} == {k: v["source"] for k, v in first.items()}


def test_human_summary_on_stderr(ops_target: Callable[..., Target]) -> None:
    target = ops_target(REFERENCE_KEYS)
    fill(target, 30)
    result = runner.invoke(app, ["backfill"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"backfill {target.table} -> {target.index}: complete" in result.stderr
    assert "scanned" in result.stderr
    assert "skipped" in result.stderr


def test_newer_stream_writes_win_and_deleted_items_stay_deleted(
    ops_target: Callable[..., Target],
) -> None:
    """Change the table and index the stream's version between a page's read and its indexing."""
    target = ops_target(REFERENCE_KEYS)
    fill(target, 200)
    client = ddb(target)
    touched: dict[str, Any] = {}

    def after_read(segment: int, page: Mapping[str, Any]) -> None:
        if segment != 0 or touched or len(page["Items"]) < 2:
            return  # once, on segment 0's first page
        updated, deleted = page["Items"][0], page["Items"][1]
        keys_u = {k: updated[k] for k in KEYS}
        keys_d = {k: deleted[k] for k in KEYS}
        newer = {**updated, "shortDescription": {"S": "changed by the stream"}}
        client.put_item(TableName=target.table, Item=newer)
        client.delete_item(TableName=target.table, Key=keys_d)
        stream_apply(target, "MODIFY", keys_u, newer)
        stream_apply(target, "REMOVE", keys_d)
        touched.update(updated=doc_id(updated), deleted=doc_id(deleted))

    summary = run_backfill(target, segments=2, page_size=50, after_read=after_read)
    assert touched
    assert summary.scanned == 200
    assert summary.stale == 2  # the page's older copies lost to the stream's versions
    assert summary.indexed == 198
    docs = documents(target)
    assert docs[touched["updated"]]["source"]["shortDescription"] == "changed by the stream"
    assert touched["deleted"] not in docs
    assert len(docs) == 199

    # A later backfill reads the table as it is now: still no resurrection.
    again = run_backfill(target)
    assert again.scanned == 199
    docs = documents(target)
    assert touched["deleted"] not in docs
    assert docs[touched["updated"]]["source"]["shortDescription"] == "changed by the stream"


def test_resume_skips_finished_segments(ops_target: Callable[..., Target]) -> None:
    target = ops_target(REFERENCE_KEYS)
    fill(target, 200)
    stop = threading.Event()
    segment0_done = threading.Event()

    def after_read(segment: int, page: Mapping[str, Any]) -> None:
        # Hold segments 1-3 on their first page until segment 0 has read its last page,
        # then stop: segment 0 ends finished, the others with one page each.
        if segment == 0:
            if "LastEvaluatedKey" not in page:
                stop.set()
                segment0_done.set()
        else:
            assert segment0_done.wait(30)

    with pytest.raises(Aborted, match="--resume"):
        run_backfill(target, segments=4, page_size=5, after_read=after_read, stop=stop)
    cp = Checkpoint.load(checkpoint_path(target))
    assert cp is not None
    assert cp.done(0)
    assert [cp.done(s) for s in (1, 2, 3)] == [False, False, False]
    already = cp.scanned
    assert already == cp.segments[0]["scanned"] + 15

    result = runner.invoke(app, ["backfill", "--resume", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["resumed"] is True
    assert summary["skipped_segments"] == 1
    assert summary["segments"] == 4
    assert summary["scanned"] == 200 - already  # nothing read twice
    assert len(documents(target)) == 200


def test_resume_with_other_segments_is_refused_and_without_resume_starts_fresh(
    ops_target: Callable[..., Target],
) -> None:
    target = ops_target(REFERENCE_KEYS)
    fill(target, 40)
    stop = threading.Event()
    stop.set()  # stops before the first page: a checkpoint with nothing done
    with pytest.raises(Aborted):
        run_backfill(target, segments=2, stop=stop)
    result = runner.invoke(app, ["backfill", "--resume", "--segments", "3"])
    assert result.exit_code == 2
    assert "used 2 segments, not 3" in result.stderr
    result = runner.invoke(app, ["backfill", "--segments", "3", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["scanned"] == 40


def test_rows_that_cannot_be_indexed_are_reported_with_reasons_and_exit_10(
    ops_target: Callable[..., Target],
) -> None:
    target = ops_target(REFERENCE_KEYS)
    fill(target, 20)
    ddb(target).put_item(
        TableName=target.table,
        Item={"userId": {"N": "1"}, "transactionId": {"N": "1"}, "_id": {"S": "x"}},
    )
    result = runner.invoke(app, ["backfill", "--json"])
    assert result.exit_code == 10
    summary = json.loads(result.stdout)
    assert summary["failed"] == 1
    assert summary["indexed"] == 20
    assert summary["failures"] == {"PERMANENT: reserved field name '_id'": 1}
    assert result.stderr.startswith("error: 1 of 21 rows could not be indexed")

    # Mapping conflicts: OpenSearch names the document in each reason; counts still group.
    for n in range(3):
        ddb(target).put_item(
            TableName=target.table,
            Item={"userId": {"N": "2"}, "transactionId": {"N": str(n)}, "amount": {"S": "n/a"}},
        )
    result = runner.invoke(app, ["backfill", "--json"])
    assert result.exit_code == 10
    failures = json.loads(result.stdout)["failures"]
    assert failures.pop("PERMANENT: reserved field name '_id'") == 1
    ((reason, count),) = failures.items()
    assert count == 3
    assert reason.startswith("PERMANENT: mapper_parsing_exception")
    assert "document with id" not in reason


def test_read_budget_paces_the_scan(
    ops_target: Callable[..., Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = ops_target(REFERENCE_KEYS)
    fill(target, 30)
    # Record, on the pacer's own clock, when each read was let through and how many
    # units had been spent before it. The token bucket's promise, checked without any
    # wall-clock bound: no request starts while more than burst + rate * elapsed
    # units have been spent.
    starts: list[tuple[float, float]] = []

    created: list[float] = []

    class RecordingPacer(Pacer):
        spent = 0.0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self._clock())

        def wait(self, stop: threading.Event | None = None) -> None:
            super().wait(stop)
            starts.append((self._clock(), self.spent))

        def spend(self, units: float) -> None:
            self.spent += units
            super().spend(units)

    monkeypatch.setattr(backfill_module, "Pacer", RecordingPacer)
    summary = run_backfill(target, max_rcu=5, page_size=3)
    # Ten pages (moto charges one RCU each) at 5 RCU/s: past the first second's
    # budget, every unit waits its turn.
    assert summary.consumed_rcu >= 10
    assert len(starts) >= 10
    assert len(created) == 1
    t0 = created[0] - 1e-3  # the bucket was filled just before this was read
    for started, spent in starts:
        assert spent <= 5 + 5 * (started - t0) + 1e-6, (started - t0, spent)
    # The budget was binding: reads went on past the first burst, so some were held.
    assert starts[-1][1] > 5


def test_errors_exit_codes(ops_target: Callable[..., Target]) -> None:
    ops_target(REFERENCE_KEYS)
    result = runner.invoke(app, ["backfill", "--index", "missing-index"])
    assert result.exit_code == 5
    assert "index 'missing-index' does not exist" in result.stderr
    result = runner.invoke(app, ["backfill", "--table", "Missing"])
    assert result.exit_code == 5
    result = runner.invoke(app, ["backfill", "--rcu-fraction", "0.5"])
    assert result.exit_code == 2
    assert "on-demand" in result.stderr


def crawling_backfill() -> subprocess.Popen[str]:
    """A CLI backfill in its own process, paced to a crawl (about 2 pages of one item
    per second), so a signal or a second run lands mid-run."""
    return subprocess.Popen(
        [sys.executable, "-c", "from ddbsearch.cli import main; main()", "backfill",
         "--max-rcu", "2", "--page-size", "1", "--segments", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip


def wait_for_progress(path: Path, scanned: int) -> Checkpoint:
    """The checkpoint at ``path`` once it counts ``scanned`` items (30 s at the most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cp = Checkpoint.load(path)
        if cp is not None and cp.scanned >= scanned:
            return cp
        time.sleep(0.05)
    pytest.fail("the backfill made no progress")


def test_ctrl_c_stops_cleanly_and_resume_finishes(
    ops_target: Callable[..., Target], tmp_path: Path
) -> None:
    target = ops_target(REFERENCE_KEYS)
    fill(target, 60)
    proc = crawling_backfill()
    path = checkpoint_path(target)
    try:
        cp = wait_for_progress(path, 3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "backfill interrupted after" in err
    assert "--resume" in err
    cp = Checkpoint.load(path)
    assert cp is not None
    assert 3 <= cp.scanned < 60
    result = runner.invoke(app, ["backfill", "--resume", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["scanned"] == 60 - cp.scanned
    assert len(documents(target)) == 60
    assert all(Decimal(str(d["source"]["userId"])) >= 1 for d in documents(target).values())


def test_a_second_backfill_on_the_target_is_refused_while_the_first_runs(
    ops_target: Callable[..., Target],
) -> None:
    target = ops_target(REFERENCE_KEYS)
    fill(target, 40)
    stop, reading, release = threading.Event(), threading.Event(), threading.Event()

    def after_read(segment: int, page: Mapping[str, Any]) -> None:
        reading.set()
        assert release.wait(30)  # hold the first run mid-scan

    outcome: list[BaseException | None] = []

    def first() -> None:
        try:
            run_backfill(target, segments=2, page_size=5, after_read=after_read, stop=stop)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert reading.wait(30)
        path = checkpoint_path(target)
        before = path.read_bytes()
        # A fresh run would have replaced the checkpoint, a resume would have raced it.
        for args in (["backfill", "--segments", "3"], ["backfill", "--resume", "--json"]):
            refused = runner.invoke(app, args)
            assert refused.exit_code == 15 == ExitCode.BUSY, refused.stderr
            assert refused.stderr == (
                f"error: another backfill of table '{target.table}' into index "
                f"'{target.index}' is already running (pid {os.getpid()}) (wait for it to "
                "finish, or stop it (Ctrl-C) and run 'ddbsearch backfill --resume')\n"
            )
            assert refused.stdout == ""
        assert path.read_bytes() == before
    finally:
        stop.set()
        release.set()
        thread.join(30)
    assert isinstance(outcome[0], Aborted)

    # The first run has ended (by a stop, like Ctrl-C): the next one resumes its checkpoint.
    cp = Checkpoint.load(checkpoint_path(target))
    assert cp is not None
    result = runner.invoke(app, ["backfill", "--resume", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["resumed"] is True
    assert summary["scanned"] == 40 - cp.scanned
    assert len(documents(target)) == 40


def test_a_killed_backfill_leaves_no_lock_behind_and_resume_finishes(
    ops_target: Callable[..., Target],
) -> None:
    target = ops_target(REFERENCE_KEYS)
    fill(target, 60)
    proc = crawling_backfill()
    path = checkpoint_path(target)
    try:
        cp = wait_for_progress(path, 2)
        refused = runner.invoke(app, ["backfill", "--resume"])
        assert refused.exit_code == ExitCode.BUSY, refused.stderr
        assert f"is already running (pid {proc.pid})" in refused.stderr
        proc.kill()  # SIGKILL: no handler runs, no finally; the kernel drops the lock
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    cp = Checkpoint.load(path)
    assert cp is not None
    assert 2 <= cp.scanned < 60
    result = runner.invoke(app, ["backfill", "--resume", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["resumed"] is True
    assert summary["scanned"] == 60 - cp.scanned
    assert len(documents(target)) == 60
    assert not path.exists()
    assert lock_path(path).read_text() == ""  # stays, holding no one's pid


@pytest.fixture
def flaky_search(osmem_base: str) -> Iterator[tuple[str, threading.Event, list[dict[str, str]]]]:
    """A loopback proxy to osmem that answers every _bulk with 503 while ``failing`` is set,
    and records each request's method, path and Authorization header."""
    import urllib.error
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    failing = threading.Event()
    seen: list[dict[str, str]] = []

    class Proxy(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length) if length else None
            auth = self.headers.get("Authorization", "")
            seen.append({"method": self.command, "path": self.path, "authorization": auth})
            if failing.is_set() and self.path.split("?", 1)[0].endswith("/_bulk"):
                status, data, ctype = 503, b'{"error": "unavailable"}', "application/json"
            else:
                request = urllib.request.Request(
                    osmem_base + self.path, data=body, method=self.command,
                    headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
                )  # fmt: skip
                try:
                    with urllib.request.urlopen(request, timeout=30) as resp:
                        status, data = resp.status, resp.read()
                        ctype = resp.headers.get("Content-Type", "application/json")
                except urllib.error.HTTPError as exc:
                    status, data, ctype = exc.code, exc.read(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", failing, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_pages_still_failing_transiently_are_left_for_resume(
    ops_target: Callable[..., Target],
    flaky_search: tuple[str, threading.Event, list[dict[str, str]]],
) -> None:
    from ddbsearch.errors import PartialFailure

    proxy, failing, _ = flaky_search
    target = ops_target(REFERENCE_KEYS).with_overrides(search_endpoint=proxy)
    record_target(target)
    fill(target, 30)
    failing.set()
    with pytest.raises(PartialFailure, match=r"30 document\(s\) still failing .*TRANSIENT"):
        run_backfill(target, page_deadline=0.3)
    cp = Checkpoint.load(checkpoint_path(target))
    assert cp is not None
    assert cp.scanned == 0  # the failed page was not checkpointed: nothing is skipped later
    failing.clear()
    result = runner.invoke(app, ["backfill", "--resume", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["resumed"] is True
    assert summary["indexed"] == 30
    assert len(documents(target)) == 30


def test_aws_targets_sign_bulk_requests_with_the_targets_credentials(
    ops_target: Callable[..., Target],
    flaky_search: tuple[str, threading.Event, list[dict[str, str]]],
) -> None:
    proxy, _, seen = flaky_search
    local = ops_target(REFERENCE_KEYS)
    fill(local, 10)
    # An AWS-kind target (SigV4 on); its DynamoDB calls still go to moto, whose
    # session uses the emulator credentials ("local"): the signature must use them too.
    target = Target(
        **{**local.to_json(), "kind": "aws", "name": "signed", "search_endpoint": proxy,
           "sigv4": True}
    )  # fmt: skip
    summary = run_backfill(target)
    assert summary.indexed == 10
    bulk = [r for r in seen if r["path"].split("?", 1)[0].endswith("/_bulk")]
    assert bulk
    for request in [*bulk, next(r for r in seen if r["method"] == "HEAD")]:
        assert request["authorization"].startswith("AWS4-HMAC-SHA256 Credential=local/")
        assert "/us-east-1/es/aws4_request" in request["authorization"]
