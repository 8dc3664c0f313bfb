"""The long-lived local stack: start it, find it, stop it.

``deploy --local`` and ``destroy --local`` go through :mod:`ddbsearch.local.deploy`.
Underneath, the stack is one detached supervisor process
(:mod:`ddbsearch.local.supervisor`) per state directory (the *root*; by default
the directory of :func:`ddbsearch.targets.local_state_file`). It owns the
emulators, the stream workers and the local Lambda runtimes; stopping it stops
all of them, and nothing it starts can outlive it.

Files under the root (their formats: :mod:`ddbsearch.local.state`)::

    stack.json                      pids, ports, endpoints; the target of each deployed table
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddbsearch.errors import InfraError, PrerequisiteError, UnreachableError
from ddbsearch.local import processes, state
from ddbsearch.local.emulators import LOCAL_EXTRA_HINT, port_accepts

Progress = Callable[[str], None] | None
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


def _say(on_progress: Progress, message: str) -> None:
    if on_progress is not None:
        on_progress(message)


def default_root() -> Path:
    """The state directory of the user's local stack."""
    return state.default_root()


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

    def mapping_status(self, table: str) -> state.MappingStatus | None:
        """The supervisor's report on the table's mapping (state, counters, checkpoints)."""
        return state.read_mapping_status(self.root, table)

    def function_log(self, table: str) -> Path:
        return self.root / "logs" / f"{table}.function.log"


def running_stack(root: Path | None = None) -> LocalStack | None:
    """The stack running under ``root``, or None (a stale state file is not a stack)."""
    root = root or default_root()
    record = state.read_stack(root)
    if record is None or not record.ready:
        return None
    if not processes.is_supervisor(record.pid):
        return None
    return LocalStack(
        root=root,
        pid=record.pid,
        region=record.region,
        moto_url=record.moto_url,
        moto_port=record.moto_port,
        osmem_url=record.osmem_url,
        osmem_port=record.osmem_port,
        osmem_pid=record.osmem_pid,
    )


def check_prerequisites() -> None:
    """Fail early, with the fix, when the emulators are not installed."""
    import importlib.util

    missing = [
        package
        for module, package in (
            ("moto", "moto"),
            ("flask", "flask"),
            ("flask_cors", "flask-cors"),
            ("osmem_server", "osmem-server"),
        )
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise PrerequisiteError(
            f"the local stack needs {', '.join(missing)}, "
            f"which {'is' if len(missing) == 1 else 'are'} not installed",
            hint=LOCAL_EXTRA_HINT,
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
    state.remove_stack(root)  # stale: its supervisor is gone
    # A new stack has new, empty emulators: old mappings and checkpoints are meaningless.
    state.clear_mappings(root)
    _say(on_progress, "starting the local stack (moto server, osmem-server)")
    log_path = root / "supervisor.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", processes.SUPERVISOR_MODULE, "--root", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal must not reach it
            close_fds=True,
        )
    processes.children[proc.pid] = proc
    try:
        return _wait_ready(root, proc, log_path, timeout=timeout, on_progress=on_progress)
    except BaseException:
        # Not ready in time, or Ctrl-C while waiting: leave nothing half-started.
        processes.kill_group(proc.pid)
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
                f"{processes.log_tail(log_path) or 'no log output'}",
                hint=f"see {log_path}",
            )
        if time.monotonic() > deadline:
            raise UnreachableError(
                f"the local stack did not become ready within {timeout:.0f} s",
                hint=f"see {log_path}",
            )
        time.sleep(0.05)


def stop_stack(
    root: Path | None = None, *, timeout: float = STOP_TIMEOUT_SECONDS, on_progress: Progress = None
) -> bool:
    """Stop the stack under ``root`` and everything it started; False if none was running.

    SIGTERM first (the supervisor stops its workers, runtimes and emulators),
    SIGKILL to the whole process group after ``timeout``. Raises
    :class:`InfraError` if a process or a port is still there afterwards.
    """
    root = root or default_root()
    recorded = state.recorded_pid(root)
    stack = running_stack(root)
    if stack is None:
        state.remove_stack(root)
        return False
    _say(on_progress, f"stopping the local stack (pid {stack.pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(stack.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while processes.process_alive(stack.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if processes.process_alive(stack.pid) or processes.group_members(stack.pid):
        _say(on_progress, "the local stack did not stop in time: killing it")
        processes.kill_group(stack.pid)
    processes.children.pop(stack.pid, None)
    # Verify: no process of the stack and no port of it is left.
    deadline = time.monotonic() + timeout
    leftovers: list[str] = []
    while time.monotonic() < deadline:
        leftovers = [f"pid {p}" for p in (stack.pid, stack.osmem_pid) if processes.process_alive(p)]
        leftovers += [f"pid {p}" for p in processes.group_members(stack.pid)]
        leftovers += [f"port {p}" for p in (stack.moto_port, stack.osmem_port) if port_accepts(p)]
        if not leftovers:
            break
        time.sleep(0.05)
    if recorded is not None:
        state.remove_stack(root, pid=recorded)
    if leftovers:
        raise InfraError(f"the local stack left {', '.join(sorted(set(leftovers)))} behind")
    _say(on_progress, "local stack stopped")
    return True
