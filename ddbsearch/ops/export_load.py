"""Backfill from a DynamoDB export: start (or take) an export, load it, follow it, cancel it.

The load never passes items through this machine. On AWS it is an execution of the
loader state machine (``terraform/modules/loader``: a Distributed Map over the
export's data files, each child invoking ``handler.load_file`` of the indexer's
zip); locally it is the map runner (:mod:`ddbsearch.local.maprunner`), a detached
process that runs the same zip in the local Lambda runtime. Either way the load
outlives the CLI: a small state file per target records the running load, so that
``backfill --from-export`` run again attaches to it instead of starting another,
``status`` can show it, and ``backfill --cancel`` stops it.

Versions: rows are indexed at the backfill version of the export time, so any
stream change made after the export wins and the stream keeps running meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ddbsearch import clients, files
from ddbsearch.core.export import DataFile, export_version, list_data_files
from ddbsearch.errors import (
    ConfigurationError,
    DdbsearchError,
    InputError,
    NotDeployedError,
    NotFoundError,
    PartialFailure,
)
from ddbsearch.local import maprunner, state
from ddbsearch.local.processes import process_alive
from ddbsearch.targets import Target, state_home

# Above this table size the default backfill is an export (AWS targets only): a Scan
# through one machine at ~20 MB/s takes ~15 min for 10 GB, and spends read capacity.
EXPORT_THRESHOLD_BYTES = 10 * 1024**3
LOCAL_EXPORT_BUCKET = "ddbsearch-exports"
EXPORT_POLL_SECONDS = 5.0
LOCAL_POLL_SECONDS = 0.2
STATE_FORMAT = 1

Progress = Callable[["LoadProgress"], None]


class ExportUnavailable(ConfigurationError):
    """The table cannot be exported (point-in-time recovery is off)."""


# --------------------------------------------------------------------------- state file


@dataclass(frozen=True)
class LoadRecord:
    """The running (or last) load of one target, as the state file holds it."""

    kind: str  # "local" | "aws"
    table: str
    index: str
    export_arn: str
    started_at: float
    version: int | None  # None on AWS until the state machine has read the export
    files: int
    items: int | None = None
    run_dir: str | None = None  # local
    pid: int | None = None  # local: the map runner
    execution_arn: str | None = None  # aws
    cancelled: bool = False  # --cancel stopped it: never resumed
    # The generations it writes (a reindex's building one); empty: every live one.
    generations: list[str] = field(default_factory=list)
    format: int = STATE_FORMAT

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadRecord | None:
        if data.get("format") != STATE_FORMAT:
            return None
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None


def state_path(target: Target) -> Path:
    identity = [target.kind, target.name, target.region, target.table, target.index]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    return state_home() / "loads" / f"{digest}.json"


def read_record(target: Target) -> LoadRecord | None:
    data = files.read_json(state_path(target))
    return LoadRecord.from_json(data) if data is not None else None


def _write_record(target: Target, record: LoadRecord) -> None:
    files.write_json(state_path(target), asdict(record))


# --------------------------------------------------------------------------- progress


@dataclass
class LoadProgress:
    state: str  # EXPORTING | RUNNING | SUCCEEDED | FAILED | ABORTED
    export_arn: str | None = None
    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    items_done: int = 0
    items_total: int | None = None
    dead_lettered: int = 0
    elapsed_seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # file key -> error
    error: str | None = None
    where: str | None = None  # run dir or execution ARN

    @property
    def running(self) -> bool:
        return self.state in ("EXPORTING", "RUNNING")

    @property
    def items_per_second(self) -> float:
        return self.items_done / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.items_per_second
        if not self.items_total or rate <= 0:
            return None
        return max(0.0, (self.items_total - self.items_done) / rate)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["items_per_second"] = round(self.items_per_second, 1)
        out["eta_seconds"] = None if self.eta_seconds is None else round(self.eta_seconds)
        return out


# --------------------------------------------------------------------------- export


def _require_pitr(ddb: Any, target: Target) -> None:
    with clients.aws_errors(f"reading the backups of table '{target.table}'"):
        desc = ddb.describe_continuous_backups(TableName=target.table)
    status = (
        desc.get("ContinuousBackupsDescription", {})
        .get("PointInTimeRecoveryDescription", {})
        .get("PointInTimeRecoveryStatus")
    )
    if status == "ENABLED":
        return
    if target.kind == "local":
        # The local stack mirrors the table module, which turns PITR on.
        ddb.update_continuous_backups(
            TableName=target.table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        return
    raise ExportUnavailable(
        f"table '{target.table}' has point-in-time recovery off, which an export needs",
        hint=(
            f"aws dynamodb update-continuous-backups --table-name {target.table} "
            "--point-in-time-recovery-specification PointInTimeRecoveryEnabled=true"
        ),
    )


def _export_bucket(target: Target) -> str:
    if target.kind == "local":
        s3 = clients.client(target, "s3")
        with contextlib.suppress(Exception):
            s3.create_bucket(Bucket=LOCAL_EXPORT_BUCKET)
        return LOCAL_EXPORT_BUCKET
    bucket = target.export_bucket
    if not bucket:
        raise NotDeployedError(
            "this stack has no export loader",
            hint="deploy again with export_loader_enabled = true (the default)",
        )
    return str(bucket)


def start_export(target: Target) -> dict[str, Any]:
    """Request a full DYNAMODB_JSON export of the target's table; returns its description.

    Each export gets its own S3 prefix, so that listing it finds its files only.
    """
    ddb = clients.client(target, "dynamodb")
    with clients.aws_errors(f"describing table '{target.table}'"):
        table_arn = ddb.describe_table(TableName=target.table)["Table"]["TableArn"]
    _require_pitr(ddb, target)
    bucket = _export_bucket(target)
    requested_at = time.time()
    prefix = f"exports/{target.table}/{int(requested_at)}-{uuid.uuid4().hex[:8]}"
    with clients.aws_errors(f"exporting table '{target.table}'"):
        desc = ddb.export_table_to_point_in_time(
            TableArn=table_arn,
            S3Bucket=bucket,
            S3Prefix=prefix,
            ExportFormat="DYNAMODB_JSON",
            ExportType="FULL_EXPORT",
            ClientToken=uuid.uuid4().hex,
        )["ExportDescription"]
    # An export without ExportTime (moto) is dated by the request: earlier than the
    # real snapshot, which only makes the rows' version lower (the safe direction).
    desc.setdefault("ExportTime", requested_at)
    desc.setdefault("S3Prefix", prefix)
    return dict(desc)


def describe_export(target: Target, export_arn: str) -> dict[str, Any]:
    ddb = clients.client(target, "dynamodb")
    with clients.aws_errors(f"describing export {export_arn}"):
        desc: dict[str, Any] = ddb.describe_export(ExportArn=export_arn)["ExportDescription"]
    return desc


def wait_export(
    target: Target,
    desc: dict[str, Any],
    *,
    on_progress: Progress | None = None,
    poll: float | None = None,
) -> dict[str, Any]:
    """Poll the export until it completes; raises if it failed."""
    poll = (
        poll
        if poll is not None
        else (LOCAL_POLL_SECONDS if target.kind == "local" else EXPORT_POLL_SECONDS)
    )
    started = time.monotonic()
    while True:
        fresh = describe_export(target, desc["ExportArn"])
        merged = {**desc, **{k: v for k, v in fresh.items() if v is not None}}
        status = merged.get("ExportStatus")
        if status == "COMPLETED":
            return merged
        if status == "FAILED":
            code = merged.get("FailureCode") or "unknown"
            detail = merged.get("FailureMessage") or ""
            raise DdbsearchError(f"export {desc['ExportArn']} failed: {code} {detail}".strip())
        if on_progress is not None:
            on_progress(
                LoadProgress(
                    "EXPORTING",
                    export_arn=desc["ExportArn"],
                    elapsed_seconds=time.monotonic() - started,
                )
            )
        time.sleep(poll)


def _local_export_time(target: Target, export: dict[str, Any]) -> float:
    """moto records no export time: its files are written at the snapshot, so their
    earliest LastModified is it (within the backfill rule's clock-skew margin)."""
    if target.kind != "local":
        raise InputError(f"export {export['ExportArn']} has no export time to version rows by")
    s3 = clients.client(target, "s3")
    times = [
        _epoch(o["LastModified"])
        for o in s3.list_objects_v2(
            Bucket=export["S3Bucket"], Prefix=export.get("S3Prefix") or ""
        ).get("Contents", [])
    ]
    if not times:
        raise NotFoundError(f"export {export['ExportArn']} has no files")
    return min(times)


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


# --------------------------------------------------------------------------- load


def start_load(
    target: Target,
    export: dict[str, Any],
    *,
    max_concurrency: int | None = None,
    generations: Sequence[str] = (),
) -> LoadRecord:
    """Start the load of an export; returns the record written to the state file.

    On AWS the export may still be running: the state machine waits for it, lists its
    files and loads them (the CLI can leave at once). Locally the export is complete
    (moto writes it at once) and the map runner gets the list of files. ``generations``
    restricts the load to these index generations (a reindex's building one); by
    default every row goes to every live generation, as stream changes do.
    """
    if target.kind == "aws":
        record = _start_aws(target, export, list(generations))
        _write_record(target, record)
        return record
    bucket, prefix = str(export["S3Bucket"]), str(export.get("S3Prefix") or "")
    manifest_summary = export.get("ExportManifest")
    if manifest_summary:
        # AWS names the export's own folder (AWSDynamoDB/<id>/manifest-summary.json):
        # list that, so exports sharing a prefix do not mix.
        prefix = str(manifest_summary).rsplit("/", 1)[0] + "/"
    s3 = clients.client(target, "s3")
    with clients.aws_errors(f"listing s3://{bucket}/{prefix}"):
        manifest, files = list_data_files(s3, bucket, prefix)
    version = export_version(_epoch(export["ExportTime"]))
    key_names = _key_names(target)
    items = export.get("ItemCount")
    plan = _Plan(
        str(export["ExportArn"]), bucket, prefix, manifest, files, key_names, version,
        list(generations),
    )  # fmt: skip
    record = _start_local(target, plan, max_concurrency)
    record = LoadRecord(**{**asdict(record), "items": int(items) if items is not None else None})
    _write_record(target, record)
    return record


@dataclass(frozen=True)
class _Plan:
    export_arn: str
    bucket: str
    prefix: str
    manifest: str | None
    files: list[DataFile]
    key_names: list[str]
    version: int
    generations: list[str] = field(default_factory=list)


def _key_names(target: Target) -> list[str]:
    if target.key_names:
        return list(target.key_names)
    ddb = clients.client(target, "dynamodb")
    with clients.aws_errors(f"describing table '{target.table}'"):
        schema = ddb.describe_table(TableName=target.table)["Table"]["KeySchema"]
    return [k["AttributeName"] for k in schema]


def require_loader(target: Target) -> None:
    """Raise NotDeployedError when an AWS stack has no export loader to load with."""
    if target.kind == "aws" and not (target.loader_state_machine_arn and target.export_bucket):
        raise NotDeployedError(
            "this stack has no export loader",
            hint="deploy again with export_loader_enabled = true (the default), or use --scan",
        )


def _start_aws(target: Target, export: dict[str, Any], generations: list[str]) -> LoadRecord:
    require_loader(target)
    arn = str(target.loader_state_machine_arn)
    sfn = clients.client(target, "stepfunctions")
    if generations:
        _require_generations(sfn, arn)
    payload = {
        "export_arn": str(export["ExportArn"]),
        "key_names": _key_names(target),
        "generations": generations,
    }
    name = f"load-{target.table[:40]}-{int(time.time())}"
    with clients.aws_errors("starting the export load"):
        execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
    items = export.get("ItemCount")
    return LoadRecord(
        "aws", target.table, target.index, str(export["ExportArn"]), time.time(), None, 0,
        items=int(items) if items is not None else None,
        execution_arn=str(execution["executionArn"]), generations=generations,
    )  # fmt: skip


def _require_generations(sfn: Any, arn: str) -> None:
    """A state machine deployed before loads could be restricted to some generations
    would write every live one: refuse rather than load the serving generation again."""
    with clients.aws_errors("reading the export loader's definition"):
        definition = str(sfn.describe_state_machine(stateMachineArn=arn).get("definition", ""))
    if '"generations.$"' not in definition.replace(" ", ""):
        raise NotDeployedError(
            "this stack's export loader predates reindex loads (it would write every generation)",
            hint="run 'ddbsearch deploy' again to update it, or fill with --scan",
        )


def _local_mapping(target: Target) -> dict[str, Any]:
    spec = state.read_mapping_spec(Path(target.root), target.table) if target.root else None
    if spec is None:
        raise NotDeployedError(
            f"table '{target.table}' is not deployed on the local stack",
            hint="ddbsearch deploy --local",
        )
    return spec


def _start_local(
    target: Target,
    plan: _Plan,
    max_concurrency: int | None,
    *,
    map_settings: dict[str, Any] | None = None,
) -> LoadRecord:
    mapping = _local_mapping(target)
    root = Path(str(target.root))
    run_id = uuid.uuid4().hex[:12]
    run_dir = state.loads_dir(root, target.table) / run_id
    settings = dict(map_settings or {})
    if max_concurrency is not None:
        settings["max_concurrency"] = max_concurrency
    spec = maprunner.LoadSpec(
        run_id=run_id,
        bucket=plan.bucket,
        files=[{"key": f.key, "size": f.size, "items": f.items} for f in plan.files],
        key_names=plan.key_names,
        version=plan.version,
        zip_path=str(mapping["zip_path"]),
        environment=dict(mapping["environment"]),
        moto_url=str(target.aws_endpoint),
        generations=list(plan.generations),
        result_bucket=plan.bucket,
        result_prefix=f"load-results/{target.table}",
        function_name=f"{mapping['function_name']}-loader"[:64],
        timeout_seconds=float(mapping.get("timeout_seconds", 120)),
        map=settings,
        stack_state=str(state.stack_file(root)),
    )
    spec.save(run_dir)
    pid = spawn_runner(run_dir)
    return LoadRecord(
        "local", target.table, target.index, plan.export_arn, time.time(), plan.version,
        len(plan.files), run_dir=str(run_dir), pid=pid, generations=list(plan.generations),
    )  # fmt: skip


def spawn_runner(run_dir: Path) -> int:
    """Start the map runner detached (own session), its output to the run's log."""
    log = os.open(run_dir / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ddbsearch.local.maprunner", str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log)
    _spawned[proc.pid] = proc
    return proc.pid


_spawned: dict[int, subprocess.Popen[bytes]] = {}


def _alive(pid: int | None) -> bool:
    """True while ``pid`` is a running map runner (a reused pid is not one)."""
    if pid is None:
        return False
    proc = _spawned.get(pid)
    if proc is not None and proc.poll() is not None:
        del _spawned[pid]  # reaped: no zombie, nothing left to track
        return False
    if not process_alive(pid):
        return False
    with contextlib.suppress(OSError):
        return b"ddbsearch.local.maprunner" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return True  # no /proc (macOS): trust the pid


def resume_local(target: Target, record: LoadRecord) -> LoadRecord:
    """Start the runner again on an interrupted local load (finished files are skipped)."""
    assert record.run_dir is not None
    pid = spawn_runner(Path(record.run_dir))
    record = LoadRecord(**{**asdict(record), "pid": pid})
    _write_record(target, record)
    return record


# --------------------------------------------------------------------------- follow


def progress(target: Target, record: LoadRecord | None = None) -> LoadProgress | None:
    """The recorded load's progress; None when there is no load recorded."""
    record = record or read_record(target)
    if record is None:
        return None
    if record.kind == "local":
        return _local_progress(record)
    return _aws_progress(target, record)


def _local_progress(record: LoadRecord) -> LoadProgress:
    assert record.run_dir is not None
    data = maprunner.read_progress(Path(record.run_dir)) or {}
    files = data.get("files", [])
    state = str(data.get("state") or "RUNNING")
    if state == "RUNNING" and not _alive(record.pid):
        # The runner died (killed, machine restarted): resumable, unless cancelled.
        state = "ABORTED" if record.cancelled else "INTERRUPTED"
    started = float(data.get("started_at") or record.started_at)
    end = float(data.get("updated_at") or time.time()) if state != "RUNNING" else time.time()
    return LoadProgress(
        state=state,
        export_arn=record.export_arn,
        files_total=record.files,
        files_done=sum(f.get("status") == "SUCCEEDED" for f in files),
        files_failed=sum(f.get("status") == "FAILED" for f in files),
        items_done=sum(int(f.get("rows") or 0) for f in files),
        items_total=record.items,
        dead_lettered=sum(int(f.get("dead_lettered") or 0) for f in files),
        elapsed_seconds=max(0.0, end - started),
        failures={
            str(f["key"]): f"{f.get('error')}: {f.get('cause') or ''}".strip()
            for f in files
            if f.get("status") == "FAILED"
        },
        error=data.get("error"),
        where=record.run_dir,
    )


def _aws_progress(target: Target, record: LoadRecord) -> LoadProgress:
    sfn = clients.client(target, "stepfunctions")
    with clients.aws_errors("describing the export load"):
        execution = sfn.describe_execution(executionArn=record.execution_arn)
        runs = sfn.list_map_runs(executionArn=record.execution_arn).get("mapRuns", [])
    counts: dict[str, Any] = {}
    if runs:
        with clients.aws_errors("describing the export load's map run"):
            counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]).get("itemCounts", {})
    total = int(counts.get("total") or record.files)
    done = int(counts.get("succeeded") or 0)
    status = str(execution["status"])
    if status == "RUNNING" and not runs:
        status = "EXPORTING"  # the state machine is still waiting for the export
    if record.items is None and status != "EXPORTING":
        with contextlib.suppress(DdbsearchError):
            count = describe_export(target, record.export_arn).get("ItemCount")
            record = LoadRecord(**{**asdict(record), "items": count})
    stop = execution.get("stopDate")
    started = _epoch(execution["startDate"])
    end = _epoch(stop) if stop is not None else time.time()
    items_total = record.items
    # Step Functions counts files; items done are estimated from the files' share.
    items_done = round((items_total or 0) * done / total) if total else 0
    return LoadProgress(
        state=status,
        export_arn=record.export_arn,
        files_total=total,
        files_done=done,
        files_failed=int(counts.get("failed") or 0) + int(counts.get("timedOut") or 0),
        items_done=items_done,
        items_total=items_total,
        elapsed_seconds=max(0.0, end - started),
        error=execution.get("error"),
        where=record.execution_arn,
    )


def follow(
    target: Target,
    record: LoadRecord,
    *,
    on_progress: Progress | None = None,
    poll: float | None = None,
    until: Callable[[], bool] | None = None,
) -> LoadProgress:
    """Poll the load until it ends or ``until()`` says stop following; the last progress."""
    poll = poll if poll is not None else (LOCAL_POLL_SECONDS if record.kind == "local" else 10.0)
    while True:
        current = progress(target, record)
        assert current is not None
        if on_progress is not None:
            on_progress(current)
        if not current.running:
            _reap(record.pid)
            return current
        if until is not None and until():
            return current
        time.sleep(poll)


def _reap(pid: int | None) -> None:
    """Wait for a runner this process started that has finished its work (no zombie)."""
    proc = _spawned.pop(pid, None) if pid is not None else None
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def check_outcome(current: LoadProgress) -> LoadProgress:
    """Raise for a load that did not succeed; files that failed are named."""
    if current.state == "SUCCEEDED" and not current.files_failed:
        return current
    if current.state == "INTERRUPTED":
        raise PartialFailure(
            "the export load was interrupted",
            hint="run 'ddbsearch backfill --from-export' again to resume it",
        )
    if current.failures:
        names = ", ".join(sorted(current.failures)[:5])
        raise PartialFailure(
            f"{len(current.failures)} export file(s) failed to load: {names}",
            hint=f"details in {current.where}",
        )
    raise PartialFailure(f"the export load ended {current.state}: {current.error or ''}".strip())


# --------------------------------------------------------------------------- cancel


def cancel(target: Target, *, timeout: float = 15.0) -> LoadProgress | None:
    """Stop the recorded load; returns its final progress (None if nothing is recorded)."""
    record = read_record(target)
    if record is None:
        return None
    if record.kind == "aws":
        current = progress(target, record)
        if current is not None and not current.running:
            return current  # nothing to stop
        sfn = clients.client(target, "stepfunctions")
        with clients.aws_errors("stopping the export load"):
            sfn.stop_execution(
                executionArn=record.execution_arn, cause="ddbsearch backfill --cancel"
            )
        return progress(target, record)
    pid = record.pid
    if _local_progress(record).state in ("RUNNING", "INTERRUPTED"):
        record = LoadRecord(**{**asdict(record), "cancelled": True})
        _write_record(target, record)
    if pid is not None and _alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The runner and its runtime children share its session's process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        proc = _spawned.pop(pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    current = _local_progress(record)
    if current.state in ("RUNNING", "INTERRUPTED"):
        current.state = "ABORTED"
    return current


# --------------------------------------------------------------------------- the verb


def choose_method(target: Target, size_bytes: int, *, from_export: bool) -> str:
    """'export' or 'scan': the table's size decides on AWS; the local stack scans by default."""
    if from_export:
        return "export"
    if target.kind == "local":
        return "scan"
    return "export" if size_bytes >= EXPORT_THRESHOLD_BYTES else "scan"


@dataclass(frozen=True)
class FillChoice:
    """How ``backfill`` or a ``reindex`` fill reads the table, and why (for people)."""

    method: str  # "export" | "scan"
    reason: str | None = None  # one line when the table's size decided; None when asked

    @property
    def export(self) -> bool:
        return self.method == "export"


def choose_fill(
    target: Target,
    *,
    from_export: bool | None,
    export_arn: str | None = None,
    detach: bool = False,
    size_bytes: Callable[[], int],
) -> FillChoice:
    """Export or Scan: what was asked (``--from-export``/``--scan``, or an export-only
    option), else on AWS the table's size decides and the reason says so and how to
    force the other; the local stack scans unless asked (its tables are small).
    ``size_bytes`` is called only when the size decides. The one choice ``backfill``
    and ``reindex`` share.
    """
    export_only = [n for n, given in (("--export-arn", export_arn), ("--detach", detach)) if given]
    if from_export is False:
        if export_only:
            verb = "loads" if len(export_only) == 1 else "load"
            raise InputError(f"{' and '.join(export_only)} {verb} an export; drop --scan")
        return FillChoice("scan")
    if from_export or export_only:
        return FillChoice("export")
    if target.kind == "local":
        return FillChoice("scan")
    size = size_bytes()
    method = choose_method(target, size, from_export=False)
    gb, limit = size / 1024**3, EXPORT_THRESHOLD_BYTES // 1024**3
    if method == "export":
        return FillChoice(
            method,
            f"table {target.table} holds {gb:,.1f} GB (>= {limit} GB): loading it from "
            "an export (--scan forces a Scan)",
        )
    return FillChoice(
        method,
        f"table {target.table} holds {gb:,.1f} GB (< {limit} GB): scanning it "
        "(--from-export loads it from an export instead)",
    )


@dataclass
class StartedLoad:
    record: LoadRecord
    attached: bool  # True: a load was already running and we attached to it
    resumed: bool = False


def _check_export_time(target: Target, export: dict[str, Any], not_before: float | None) -> None:
    """Refuse an export taken before ``not_before`` (when a reindex's generation started
    to be written by the stream): changes made between the two would be in neither."""
    if not_before is None:
        return
    when = export.get("ExportTime")
    seconds = _epoch(when) if when else None
    if seconds is None and target.kind == "local":
        seconds = _local_export_time(target, export)
    if seconds is None or seconds < not_before:
        taken = (
            "at an unknown time"
            if seconds is None
            else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))
        )
        raise InputError(
            f"export {export['ExportArn']} was taken {taken}, before the new generation was "
            "written by the stream; changes made in between would be missing from it",
            hint="leave out --export-arn: a new export is taken now",
        )


def _take_over(target: Target, export_arn: str | None, wanted: list[str]) -> StartedLoad | None:
    """The recorded load, when it is running (attach) or interrupted (resume) and writes
    the generations wanted; refused when another load is running; else None."""
    record = read_record(target)
    if record is None:
        return None
    current = progress(target, record)
    same = list(record.generations) == wanted
    if current is not None and current.running:
        if not same:
            into = ", ".join(record.generations) or "every live generation"
            raise InputError(
                f"another export load of {target.table} is running (into {into})",
                hint="wait for it to end, or stop it with 'ddbsearch backfill --cancel'",
            )
        if export_arn is not None and export_arn != record.export_arn:
            raise InputError(
                f"an export load of {target.table} is running already",
                hint="follow it with 'ddbsearch backfill --from-export', or --cancel it",
            )
        return StartedLoad(record, attached=True)
    if (
        current is not None
        and current.state == "INTERRUPTED"
        and same
        and export_arn in (None, record.export_arn)
    ):
        return StartedLoad(resume_local(target, record), attached=True, resumed=True)
    return None


def start_or_attach(
    target: Target,
    *,
    export_arn: str | None = None,
    max_concurrency: int | None = None,
    on_progress: Progress | None = None,
    generations: Sequence[str] = (),
    not_before: float | None = None,
) -> StartedLoad:
    """Attach to the target's running load, resume an interrupted local one, or start one.

    ``generations`` restricts a new load to those generations (see start_load); a
    running or interrupted load is taken over only when it writes the same ones.
    ``not_before``: an export given by ARN must have been taken at or after this time.
    """
    wanted = list(generations)
    taken = _take_over(target, export_arn, wanted)
    if taken is not None:
        return taken
    if target.kind == "aws":
        # The state machine waits for the export itself: start it and return.
        export = describe_export(target, export_arn) if export_arn else start_export(target)
        if export.get("ExportStatus") == "FAILED":
            raise InputError(f"export {export['ExportArn']} failed; start another one")
        if export_arn:
            _check_export_time(target, export, not_before)
        return StartedLoad(start_load(target, export, generations=wanted), attached=False)
    if export_arn is not None:
        export = describe_export(target, export_arn)
        if export.get("ExportStatus") == "IN_PROGRESS":
            export = wait_export(target, export, on_progress=on_progress)
        elif export.get("ExportStatus") != "COMPLETED":
            raise InputError(f"export {export_arn} is {export.get('ExportStatus')}, not COMPLETED")
        if not export.get("ExportTime"):
            export["ExportTime"] = _local_export_time(target, export)
        _check_export_time(target, export, not_before)
    else:
        export = wait_export(target, start_export(target), on_progress=on_progress)
    return StartedLoad(
        start_load(target, export, max_concurrency=max_concurrency, generations=wanted),
        attached=False,
    )
