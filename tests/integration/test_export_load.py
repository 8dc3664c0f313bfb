"""Backfill from an export on the local stack: moto's export, the map runner, the built zip.

The table's rows are written before its stream exists, so only the export load can
bring them into the index; the stream keeps writing during the load, and the index
must end up exactly as the table says (the oracle). The map runner's rules are
exercised on hand-made export folders: a file failing transiently is retried, one
failing for good is named, cancel leaves no process, and a runner killed halfway
resumes without reloading finished files.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddbsearch.core.documents import backfill_version
from ddbsearch.core.transport import SearchTransport
from ddbsearch.local import maprunner, state
from ddbsearch.local.deploy import deploy_table, wait_until_idle
from ddbsearch.local.processes import process_alive
from ddbsearch.local.stack import LocalStack, start_stack, stop_stack
from ddbsearch.ops import export_load
from ddbsearch.targets import Target
from ddbsearch.testing import oracle
from ddbsearch.testing.faultproxy import FaultProxy
from tests.integration.local_helpers import wait_for

pytestmark = pytest.mark.integration

TABLE = "Exported"
FAST_RETRY = {
    "throttle_retry": {"max_attempts": 12, "interval_seconds": 0.05, "max_delay_seconds": 0.5},
    "error_retry": {"max_attempts": 2, "interval_seconds": 0.05, "max_delay_seconds": 0.5},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("export-stack")
    stack = start_stack(root)
    try:
        yield stack
    finally:
        stop_stack(root)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


ADVERSARIAL_KEYS = ["a|b", "a\\|b", "a\\", "🙂", "é", " ", "x" * 600, "_id", "a.b", "|"]


def every_type(n: int, pk: str) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "sk": {"N": str(n)},
        "s": {"S": f"text {n} ✓"},
        "n": {"N": "-1.50E+3"},
        "big": {"N": "12345678901234567890123456789012345678"},
        "b": {"B": bytes([0, 255, n % 256])},
        "t": {"BOOL": n % 2 == 0},
        "z": {"NULL": True},
        "ss": {"SS": ["b", "a"]},
        "ns": {"NS": ["10", "-2.5"]},
        "bs": {"BS": [b"\x02", b"\x01"]},
        "l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"k": {"BOOL": False}}}]},
        "m": {"M": {"inner": {"M": {"deep": {"S": "y"}, "list": {"L": []}}}}},
    }


def _create_table_without_stream(stack: LocalStack, table: str) -> Any:
    ddb = stack.client("dynamodb")
    ddb.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return ddb


def _deploy(stack: LocalStack, table: str) -> Target:
    return deploy_table(stack, table=table, keys=(("pk", "S"), ("sk", "N")), index=table.lower())


def test_export_loads_every_type_while_the_stream_writes_and_converges(
    stack: LocalStack,
) -> None:
    ddb = _create_table_without_stream(stack, TABLE)
    rows = [every_type(n, pk) for n, pk in enumerate(ADVERSARIAL_KEYS)]
    rows += [every_type(n, f"bulk-{n}") for n in range(40)]
    rows.append({"pk": {"S": "bad"}, "sk": {"N": "1"}, "dotted.name": {"S": "secret"}})
    for row in rows:
        ddb.put_item(TableName=TABLE, Item=row)
    target = _deploy(stack, TABLE)  # the stream starts now: the rows above are not in it
    transport = SearchTransport(target.search_endpoint, sigv4=False)
    assert oracle.index_documents(transport, target.index) == {}

    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            pk = ADVERSARIAL_KEYS[n % len(ADVERSARIAL_KEYS)]
            ddb.put_item(TableName=TABLE, Item=every_type(1000 + n, pk))  # new rows
            ddb.update_item(  # changes to exported rows
                TableName=TABLE,
                Key={"pk": {"S": f"bulk-{n % 40}"}, "sk": {"N": str(n % 40)}},
                UpdateExpression="SET s = :v",
                ExpressionAttributeValues={":v": {"S": f"changed {n}"}},
            )
            if n % 7 == 0:
                ddb.delete_item(
                    TableName=TABLE, Key={"pk": {"S": f"bulk-{n % 40}"}, "sk": {"N": str(n % 40)}}
                )
            n += 1
            time.sleep(0.02)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        started = export_load.start_or_attach(target, max_concurrency=2)
        assert not started.attached
        assert started.record.kind == "local"
        # Running again while it runs attaches instead of starting another load.
        again = export_load.start_or_attach(target)
        assert again.record.run_dir == started.record.run_dir
        final = export_load.follow(target, started.record, poll=0.1)
    finally:
        stop.set()
        writer.join()
    assert final.state == "SUCCEEDED", final
    assert final.files_done == final.files_total == 1
    assert final.items_done >= len(rows)  # and what the writer added before the export
    assert final.dead_lettered == 1
    export_load.check_outcome(final)
    wait_until_idle(stack, TABLE)

    diff = oracle.diff_index(ddb, TABLE, transport, target.index)
    assert diff.ok, diff.summary()
    assert diff.compared >= len(rows) - 10
    # The rows carry the export's backfill version, below every streamed change.
    assert started.record.version <= backfill_version(time.time())
    dlq = stack.client("sqs").receive_message(QueueUrl=target.dlq_url, MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in dlq.get("Messages", [])]
    assert any(b.get("exportFile") and b["reason"].startswith("invalid_document") for b in bodies)
    assert "secret" not in json.dumps(bodies)
    status = export_load.progress(target)
    assert status is not None
    assert status.state == "SUCCEEDED"


# --------------------------------------------------------------------------- map rules


def _gz(rows: list[dict[str, Any]]) -> bytes:
    def enc(av: dict[str, Any]) -> dict[str, Any]:
        return {k: {"S": v["S"]} if "S" in v else v for k, v in av.items()}

    return gzip.compress("".join(json.dumps({"Item": enc(r)}) + "\n" for r in rows).encode())


def _files(stack: LocalStack, prefix: str, count: int, per_file: int = 5) -> list[dict[str, Any]]:
    s3 = stack.client("s3")
    s3.create_bucket(Bucket=export_load.LOCAL_EXPORT_BUCKET)
    files = []
    for f in range(count):
        key = f"{prefix}/AWSDynamoDB/x/data/{f:03d}.json.gz"
        rows = [{"pk": {"S": f"f{f}-{i}"}, "sk": {"N": str(i)}} for i in range(per_file)]
        body = _gz(rows)
        s3.put_object(Bucket=export_load.LOCAL_EXPORT_BUCKET, Key=key, Body=body)
        files.append({"key": key, "size": len(body), "items": per_file})
    return files


def _spec(
    stack: LocalStack,
    target: Target,
    files: list[dict[str, Any]],
    run_id: str,
    *,
    endpoint: str | None = None,
    timeout: float = 30.0,
    **map_settings: Any,
) -> maprunner.LoadSpec:
    mapping = state.read_mapping_spec(stack.root, target.table)
    assert mapping is not None
    env = dict(mapping["environment"])
    if endpoint is not None:
        env["OPENSEARCH_ENDPOINT"] = endpoint
    return maprunner.LoadSpec(
        run_id=run_id,
        bucket=export_load.LOCAL_EXPORT_BUCKET,
        files=files,
        key_names=["pk", "sk"],
        version=backfill_version(time.time()),
        zip_path=mapping["zip_path"],
        environment=env,
        moto_url=stack.moto_url,
        result_bucket=export_load.LOCAL_EXPORT_BUCKET,
        result_prefix="load-results",
        timeout_seconds=timeout,
        map={**FAST_RETRY, **map_settings},
        stack_state=str(stack.root / "stack.json"),
    )


@pytest.fixture(scope="module")
def rules_target(stack: LocalStack) -> Target:
    _create_table_without_stream(stack, "Rules")
    return _deploy(stack, "Rules")


def test_transient_failures_are_retried_and_a_permanent_one_is_named(
    stack: LocalStack, rules_target: Target, tmp_path: Path
) -> None:
    files = _files(stack, "rules-a", 3)
    broken = "rules-a/AWSDynamoDB/x/data/zz-broken.json.gz"
    stack.client("s3").put_object(
        Bucket=export_load.LOCAL_EXPORT_BUCKET, Key=broken, Body=b"not gzip"
    )
    files.append({"key": broken, "size": 8, "items": None})
    with FaultProxy(stack.osmem_url) as proxy:
        proxy.fail_next(12, status=429)  # more than one invocation's retries absorb
        spec = _spec(
            stack, rules_target, files, "a", endpoint=proxy.url, timeout=5.0,
            max_concurrency=2, tolerated_failure_count=1,
        )  # fmt: skip
        run = maprunner.MapRun(tmp_path, spec)
        assert run.run() == maprunner.SUCCEEDED  # one failure is tolerated
    by_key = {f.key: f for f in run.files}
    assert by_key[broken].status == maprunner.FAILED
    assert by_key[broken].error == "ExportFileError"
    assert by_key[broken].retries == 0  # not retried
    good = [f for f in run.files if f.key != broken]
    assert all(f.status == maprunner.SUCCEEDED and f.rows == 5 for f in good)
    assert sum(f.throttles for f in good) >= 1  # a throttled file was retried, then loaded
    # ResultWriter's layout in S3.
    s3 = stack.client("s3")
    manifest = json.loads(
        s3.get_object(Bucket=export_load.LOCAL_EXPORT_BUCKET, Key="load-results/a/manifest.json")[
            "Body"
        ].read()
    )
    failed_key = manifest["ResultFiles"]["FAILED"][0]["Key"]
    failed = json.loads(
        s3.get_object(Bucket=export_load.LOCAL_EXPORT_BUCKET, Key=failed_key)["Body"].read()
    )
    assert [f["Name"] for f in failed] == [broken]
    assert len(manifest["ResultFiles"]["SUCCEEDED"]) == 1

    # Without tolerance the same failure fails the run, naming the file.
    spec = _spec(stack, rules_target, files[-2:], "b")
    run = maprunner.MapRun(tmp_path / "b", spec)
    assert run.run() == maprunner.FAILED
    assert run.error == "States.ExceedToleratedFailureThreshold"


def _record(target: Target, run_dir: Path, spec: maprunner.LoadSpec) -> export_load.LoadRecord:
    spec.save(run_dir)
    record = export_load.LoadRecord(
        "local", target.table, target.index, "arn:local:export", time.time(), spec.version,
        len(spec.files), run_dir=str(run_dir), pid=export_load.spawn_runner(run_dir),
    )  # fmt: skip
    export_load._write_record(target, record)
    return record


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive


def _loaded_keys(run_dir: Path) -> list[str]:
    log = run_dir / "function.log"
    keys = []
    for line in log.read_text().splitlines() if log.exists() else []:
        if line.startswith("{") and '"export file chunk loaded"' in line:
            keys.append(json.loads(line)["key"])
    return keys


def test_cancel_stops_the_runner_and_its_functions(
    stack: LocalStack, rules_target: Target, tmp_path: Path
) -> None:
    files = _files(stack, "rules-c", 4)
    with FaultProxy(stack.osmem_url) as proxy:
        proxy.delay_next(3.0, n=50)  # every bulk is slow: the load is mid-way when cancelled
        spec = _spec(stack, rules_target, files, "c", endpoint=proxy.url, max_concurrency=2)
        record = _record(rules_target, tmp_path, spec)
        wait_for(lambda: proxy.stats.requests > 0, timeout=30)
        assert process_alive(record.pid or 0)
        current = export_load.cancel(rules_target)
    assert current is not None
    assert current.state == "ABORTED"
    assert record.pid is not None
    assert _group_alive(record.pid) == []
    progress = export_load.progress(rules_target)
    assert progress is not None
    assert progress.state == "ABORTED"
    # A cancelled load is not resumed: the next run starts afresh (here: no table export
    # is wanted, so only the record is checked).
    record_after = export_load.read_record(rules_target)
    assert record_after is not None
    assert record_after.cancelled


def test_a_killed_runner_resumes_without_reloading_finished_files(
    stack: LocalStack, rules_target: Target, tmp_path: Path
) -> None:
    files = _files(stack, "rules-d", 5)
    with FaultProxy(stack.osmem_url) as proxy:
        proxy.delay_next(0.4, n=1000)
        spec = _spec(stack, rules_target, files, "d", endpoint=proxy.url, max_concurrency=1)
        record = _record(rules_target, tmp_path, spec)
        # The CLI leaving changes nothing: the runner is detached; attaching finds it.
        assert export_load.start_or_attach(rules_target).attached

        def two_done() -> bool:
            data = maprunner.read_progress(tmp_path) or {}
            return sum(f["status"] == "SUCCEEDED" for f in data.get("files", [])) >= 2

        wait_for(two_done, timeout=60)
        assert record.pid is not None
        os.killpg(record.pid, signal.SIGKILL)  # the machine died under it
        wait_for(lambda: not _group_alive(record.pid or 0), timeout=10)
        finished = {
            f["key"]
            for f in (maprunner.read_progress(tmp_path) or {})["files"]
            if f["status"] == "SUCCEEDED"
        }
        interrupted = export_load.progress(rules_target)
        assert interrupted is not None
        assert interrupted.state == "INTERRUPTED"

        resumed = export_load.start_or_attach(rules_target)
        assert resumed.resumed
        final = export_load.follow(rules_target, resumed.record, poll=0.1)
    assert final.state == "SUCCEEDED"
    assert final.files_done == 5
    loads = _loaded_keys(tmp_path)
    for key in finished:
        assert loads.count(key) == 1, key  # loaded once, before the kill
    assert set(loads) == {f["key"] for f in files}
