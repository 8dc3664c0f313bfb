"""The long-lived local stack: start, deploy a table into it, stop it.

``deploy --local`` calls :func:`deploy_local`, ``destroy --local`` calls
:func:`destroy_local`. Underneath, the stack is one detached supervisor process
(:mod:`ddbsearch.local.supervisor`) per state directory (the *root*; by default
the directory of :func:`ddbsearch.targets.local_state_file`). It owns the
emulators, the stream workers and the local Lambda runtimes; stopping it stops
all of them, and nothing it starts can outlive it.

Files under the root::

    stack.json                      pids, ports, endpoints; "target" once deployed
    supervisor.log                  the supervisor's log (startup errors land here)
    function.zip                    the zip ``ddbsearch package`` builds, as deployed
    mappings/<table>.json           one event source mapping (what deploy asked for)
    mappings/<table>.status.json    its state and counters (what the supervisor reports)
    checkpoints/<table>-<stream>.json  per-shard checkpoints of that mapping (per stream)
    logs/<table>.function.log       what the function printed (its "CloudWatch" log)

The same functions with an explicit ``root`` give tests, benchmarks and
``ddbsearch demo`` a stack of their own that does not touch the user's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddbsearch import defaults, files
from ddbsearch.errors import (
    ConfigurationError,
    InfraError,
    PrerequisiteError,
    UnreachableError,
)
from ddbsearch.local.emulators import port_accepts
from ddbsearch.targets import (
    DEFAULT_TABLE,
    Target,
    clear_current,
    local_state_file,
    set_current,
)

Progress = Callable[[str], None] | None
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
MAPPING_TIMEOUT_SECONDS = 30.0
_SUPERVISOR_MODULE = "ddbsearch.local.supervisor"
# Supervisors started by this process, so that we can reap them (no zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _say(on_progress: Progress, message: str) -> None:
    if on_progress is not None:
        on_progress(message)


def default_root() -> Path:
    """The state directory of the user's local stack."""
    return local_state_file().parent


@dataclass(frozen=True)
class LocalStack:
    """A running local stack, as its supervisor recorded it."""

    root: Path
    pid: int
    region: str
    moto_url: str
    moto_port: int
    osmem_url: str
    osmem_port: int
    osmem_pid: int

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this stack's moto server."""
        from ddbsearch.clients import local_client

        return local_client(service, self.moto_url, region=self.region)

    def mapping_status(self, table: str) -> dict[str, Any] | None:
        """The supervisor's report on the table's mapping (state, counters, checkpoints)."""
        return files.read_json(self.root / "mappings" / f"{table}.status.json")

    def function_log(self, table: str) -> Path:
        return self.root / "logs" / f"{table}.function.log"


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies of our own children are reaped first)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_supervisor(pid: int) -> bool:
    if not process_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        with contextlib.suppress(OSError):
            return _SUPERVISOR_MODULE.encode() in cmdline.read_bytes()
    return True  # no /proc (macOS): trust the pid


def _group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (Linux; empty elsewhere)."""
    members = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def running_stack(root: Path | None = None) -> LocalStack | None:
    """The stack running under ``root``, or None (a stale state file is not a stack)."""
    root = root or default_root()
    data = files.read_json(root / "stack.json")
    if not data or not data.get("ready") or not isinstance(data.get("pid"), int):
        return None
    if not _is_supervisor(data["pid"]):
        return None
    return LocalStack(
        root=root,
        pid=data["pid"],
        region=data["region"],
        moto_url=data["moto_url"],
        moto_port=int(data["moto_port"]),
        osmem_url=data["osmem_url"],
        osmem_port=int(data["osmem_port"]),
        osmem_pid=int(data["osmem_pid"]),
    )


def _log_tail(path: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        text = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        return " | ".join(text[-lines:])
    return ""


def check_prerequisites() -> None:
    """Fail early, with the fix, when the emulators are not installed."""
    import importlib.util

    missing = [
        package
        for module, package in (
            ("moto", "moto[server]"),
            ("flask", "moto[server]"),
            ("osmem_server", "osmem-server"),
        )
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise PrerequisiteError(
            f"the local stack needs {' and '.join(sorted(set(missing)))}, which are not installed",
            hint="reinstall ddbsearch: the emulators are among its dependencies",
        )


def start_stack(
    root: Path | None = None,
    *,
    timeout: float = START_TIMEOUT_SECONDS,
    on_progress: Progress = None,
) -> LocalStack:
    """Start the supervisor for ``root`` unless one runs already; wait until it is ready.

    Concurrent callers (two ``deploy --local`` at once) serialize on a lock file,
    so that one stack is started and both get it.
    """
    root = root or default_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / "start.lock").open("a") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no lock, still works for one user
            pass
        return _start_locked(root, timeout=timeout, on_progress=on_progress)


def _start_locked(root: Path, *, timeout: float, on_progress: Progress) -> LocalStack:
    existing = running_stack(root)
    if existing is not None:
        _say(on_progress, f"local stack already running (pid {existing.pid})")
        return existing
    check_prerequisites()
    (root / "stack.json").unlink(missing_ok=True)  # stale: its supervisor is gone
    # A new stack has new, empty emulators: old mappings and checkpoints are meaningless.
    for sub in ("mappings", "checkpoints"):
        for path in (root / sub).glob("*.json") if (root / sub).is_dir() else ():
            path.unlink(missing_ok=True)
    _say(on_progress, "starting the local stack (moto server, osmem-server)")
    log_path = root / "supervisor.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", _SUPERVISOR_MODULE, "--root", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal must not reach it
            close_fds=True,
        )
    _children[proc.pid] = proc
    try:
        return _wait_ready(root, proc, log_path, timeout=timeout, on_progress=on_progress)
    except BaseException:
        # Not ready in time, or Ctrl-C while waiting: leave nothing half-started.
        _kill_group(proc.pid)
        raise


def _wait_ready(
    root: Path,
    proc: subprocess.Popen[bytes],
    log_path: Path,
    *,
    timeout: float,
    on_progress: Progress,
) -> LocalStack:
    deadline = time.monotonic() + timeout
    while True:
        stack = running_stack(root)
        if stack is not None and stack.pid == proc.pid:
            _say(
                on_progress,
                f"local stack ready: DynamoDB {stack.moto_url}, search {stack.osmem_url}",
            )
            return stack
        if proc.poll() is not None:
            raise UnreachableError(
                f"the local stack exited during start-up (status {proc.returncode}): "
                f"{_log_tail(log_path) or 'no log output'}",
                hint=f"see {log_path}",
            )
        if time.monotonic() > deadline:
            raise UnreachableError(
                f"the local stack did not become ready within {timeout:.0f} s",
                hint=f"see {log_path}",
            )
        time.sleep(0.05)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    proc = _children.pop(pgid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def stop_stack(
    root: Path | None = None, *, timeout: float = STOP_TIMEOUT_SECONDS, on_progress: Progress = None
) -> bool:
    """Stop the stack under ``root`` and everything it started; False if none was running.

    SIGTERM first (the supervisor stops its workers, runtimes and emulators),
    SIGKILL to the whole process group after ``timeout``. Raises
    :class:`InfraError` if a process or a port is still there afterwards.
    """
    root = root or default_root()
    data = files.read_json(root / "stack.json") or {}
    stack = running_stack(root)
    if stack is None:
        (root / "stack.json").unlink(missing_ok=True)
        return False
    _say(on_progress, f"stopping the local stack (pid {stack.pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(stack.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(stack.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process_alive(stack.pid) or _group_members(stack.pid):
        _say(on_progress, "the local stack did not stop in time: killing it")
        _kill_group(stack.pid)
    _children.pop(stack.pid, None)
    # Verify: no process of the stack and no port of it is left.
    deadline = time.monotonic() + timeout
    leftovers: list[str] = []
    while time.monotonic() < deadline:
        leftovers = [f"pid {p}" for p in (stack.pid, stack.osmem_pid) if process_alive(p)]
        leftovers += [f"pid {p}" for p in _group_members(stack.pid)]
        leftovers += [f"port {p}" for p in (stack.moto_port, stack.osmem_port) if port_accepts(p)]
        if not leftovers:
            break
        time.sleep(0.05)
    state = files.read_json(root / "stack.json")
    if state is not None and state.get("pid") == data.get("pid"):
        (root / "stack.json").unlink(missing_ok=True)
    if leftovers:
        raise InfraError(f"the local stack left {', '.join(sorted(set(leftovers)))} behind")
    _say(on_progress, "local stack stopped")
    return True


# ---------------------------------------------------------------------- deploy


def _key_schema(
    hash_key: tuple[str, str], range_key: tuple[str, str] | None
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    keys = [(hash_key, "HASH")] + ([(range_key, "RANGE")] if range_key else [])
    for (name, kind), _role in keys:
        if not name or kind not in ("S", "N", "B"):
            raise ConfigurationError(
                f"invalid key attribute {name}:{kind} (type must be S, N or B)"
            )
    schema = [{"AttributeName": n, "KeyType": role} for (n, _t), role in keys]
    attrs = [{"AttributeName": n, "AttributeType": t} for (n, t), _role in keys]
    return schema, attrs


def _ensure_table(
    ddb: Any, table: str, hash_key: tuple[str, str], range_key: tuple[str, str] | None
) -> str:
    """Create the table with a NEW_AND_OLD_IMAGES stream (idempotent); return the stream ARN."""
    schema, attrs = _key_schema(hash_key, range_key)
    try:
        desc = ddb.describe_table(TableName=table)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        desc = ddb.create_table(
            TableName=table,
            KeySchema=schema,
            AttributeDefinitions=attrs,
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
    if desc.get("KeySchema") != schema:
        raise ConfigurationError(
            f"table {table} already exists locally with a different key schema",
            hint="use another --table, or 'ddbsearch destroy --local' first",
        )
    stream_arn = desc.get("LatestStreamArn")
    spec = desc.get("StreamSpecification") or {}
    if not stream_arn or not spec.get("StreamEnabled"):
        desc = ddb.update_table(
            TableName=table,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        stream_arn = desc["LatestStreamArn"]
    return str(stream_arn)


def wait_for_mapping(
    stack: LocalStack, table: str, *, generation: str, timeout: float = MAPPING_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """Poll until the supervisor reports this ``generation`` of the table's mapping enabled."""
    deadline = time.monotonic() + timeout
    while True:
        status = stack.mapping_status(table) or {}
        if status.get("generation") == generation:
            if status.get("state") == "Failed":
                raise InfraError(
                    f"the local stream worker for {table} failed: {status.get('error')}"
                )
            if status.get("state") == "Enabled":
                return status
        if not process_alive(stack.pid):
            raise UnreachableError("the local stack stopped while deploying", hint=str(stack.root))
        if time.monotonic() > deadline:
            raise InfraError(
                f"the local stream worker for {table} did not start in {timeout:.0f} s"
            )
        time.sleep(0.05)


def wait_until_idle(
    stack: LocalStack, table: str, *, timeout: float = MAPPING_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """Poll until the table's stream worker has delivered every write made before this call.

    The worker reports ``caught_up_since``: nothing in flight or waiting for a
    retry, and every shard read to its end by a GetRecords sent at that time;
    once that is later than this call's start, everything written before the
    call has been handed to the function. Returns the status (counters, checkpoints).
    """
    started = time.time()
    deadline = time.monotonic() + timeout
    while True:
        status = stack.mapping_status(table) or {}
        if (status.get("caught_up_since") or 0) > started:
            return status
        if not process_alive(stack.pid):
            raise UnreachableError("the local stack is not running", hint=str(stack.root))
        if time.monotonic() > deadline:
            stats = status.get("stats") or {}
            raise InfraError(
                f"the local stream worker for {table} did not catch up in {timeout:.0f} s"
                + (f" (last error: {stats['last_error']})" if stats.get("last_error") else "")
            )
        time.sleep(0.05)


def deploy_table(
    stack: LocalStack,
    *,
    table: str = DEFAULT_TABLE,
    hash_key: tuple[str, str] = ("userId", "N"),
    range_key: tuple[str, str] | None = ("transactionId", "N"),
    index: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    function_timeout_seconds: float = defaults.FUNCTION_TIMEOUT_SECONDS,
    function_environment: Mapping[str, str] | None = None,
    zip_path: Path | None = None,
    on_progress: Progress = None,
) -> Target:
    """Create the table (with stream), the DLQ, the index and the mapping on ``stack``.

    ``mapping`` overrides :class:`ddbsearch.local.worker.MappingConfig` fields
    (``batch_size``, ``maximum_retry_attempts``, ...); ``zip_path`` replaces
    the zip ``ddbsearch package`` builds (tests use handlers that fail on purpose)
    and ``function_environment`` adds to (or overrides) the function's environment.
    Deploying again replaces the mapping: the worker restarts from its checkpoints.
    Returns the target; it does not make it current (see :func:`deploy_local`).
    """
    from ddbsearch.core.template import ensure_index
    from ddbsearch.core.transport import SearchTransport
    from ddbsearch.packaging import build_lambda_zip

    index = index or table.lower()
    ddb, sqs = stack.client("dynamodb"), stack.client("sqs")
    _say(on_progress, f"creating table {table} with its stream")
    stream_arn = _ensure_table(ddb, table, hash_key, range_key)
    _say(on_progress, "creating the dead-letter queue")
    dlq_url = str(sqs.create_queue(QueueName=f"{table}-ddbsearch-dlq")["QueueUrl"])
    _say(on_progress, f"creating index {index}")
    ensure_index(SearchTransport(stack.osmem_url, sigv4=False), index)
    if zip_path is None:
        _say(on_progress, "building the Lambda zip")
        zip_path = build_lambda_zip(stack.root / "function.zip")
    function_name = f"ddbsearch-{table}"[:64]
    generation = uuid.uuid4().hex
    spec = {
        "table": table,
        "stream_arn": stream_arn,
        "zip_path": str(zip_path),
        "function_name": function_name,
        "timeout_seconds": function_timeout_seconds,
        "memory_mb": defaults.FUNCTION_MEMORY_MB,
        "environment": {
            "OPENSEARCH_ENDPOINT": stack.osmem_url,
            "OPENSEARCH_AUTH": "none",
            "INDEX_NAME": index,
            "AWS_REGION": stack.region,
            "DLQ_URL": dlq_url,
            "AWS_ENDPOINT_URL": stack.moto_url,
            **dict(function_environment or {}),
        },
        # One queue takes both the handler's unindexable records and the
        # mapping's discarded batches; their message shapes tell them apart.
        "on_failure_url": dlq_url,
        "settings": dict(mapping or {}),
        "generation": generation,
    }
    _say(on_progress, "starting the stream worker")
    files.write_json(stack.root / "mappings" / f"{table}.json", spec)
    wait_for_mapping(stack, table, generation=generation)
    return Target(
        kind="local",
        name="local",
        region=stack.region,
        table=table,
        index=index,
        search_endpoint=stack.osmem_url,
        aws_endpoint=stack.moto_url,
        dlq_url=dlq_url,
        function_name=function_name,
        event_source_mapping_uuid=f"local-{table}",
        sigv4=False,
        extra={
            "stream_arn": stream_arn,
            "on_failure_url": dlq_url,
            "hash_key": list(hash_key),
            "range_key": list(range_key) if range_key else None,
            "function_log": str(stack.function_log(table)),
            "root": str(stack.root),
        },
    )


def record_target(stack: LocalStack, target: Target) -> None:
    """Write the target into the stack's state file (what ``--local`` resolves to)."""
    data = files.read_json(stack.state_file) or {}
    if data.get("pid") != stack.pid:
        raise UnreachableError("the local stack stopped while deploying", hint=str(stack.root))
    data["target"] = target.to_json()
    files.write_json(stack.state_file, data)


def deploy_local(
    *,
    table: str = DEFAULT_TABLE,
    hash_key: tuple[str, str] = ("userId", "N"),
    range_key: tuple[str, str] | None = ("transactionId", "N"),
    index: str | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Target:
    """``deploy --local``: start the local stack if needed, deploy the table into it,
    and make it the current target of every other command."""
    stack = start_stack(on_progress=on_progress)
    target = deploy_table(
        stack,
        table=table,
        hash_key=hash_key,
        range_key=range_key,
        index=index,
        on_progress=on_progress,
    )
    record_target(stack, target)
    set_current("local", "local")
    _say(on_progress, f"deployed {table} -> index {target.index} (local)")
    return target


def destroy_local(*, on_progress: Callable[[str], None] | None = None) -> bool:
    """``destroy --local``: stop the local stack and forget it; False if nothing ran."""
    root = default_root()
    stopped = stop_stack(root, on_progress=on_progress)
    local_state_file().unlink(missing_ok=True)
    clear_current("local", "local")
    return stopped
