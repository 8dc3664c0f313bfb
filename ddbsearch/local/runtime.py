"""A local AWS Lambda runtime: runs the built zip in a child Python process.

The child (:mod:`ddbsearch.local._bootstrap`) sees only what the AWS Lambda
Python runtime provides: the standard library, the extracted zip (first on
``sys.path``, like ``/var/task``) and a *runtime site* directory that links the
packages the managed runtime ships (:data:`RUNTIME_PACKAGES`) from the current
environment. The development virtualenv is not on its path, so a dependency the
zip forgot to bundle fails at import, exactly as it would after a real deploy.

Like Lambda, the runtime enforces the function timeout: a timed-out
invocation kills the child, reports a function error, and the next invocation
gets a fresh (cold) process. An exception in the handler, a response that is
not JSON or a crashed child are function errors too (``functionError:
"Unhandled"`` in Lambda's terms).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ddbsearch import defaults
from ddbsearch.errors import PrerequisiteError

# What the AWS Lambda Python runtime has besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "urllib3", "dateutil", "jmespath", "s3transfer", "six")
ACCOUNT_ID = "000000000000"
_BOOTSTRAP = Path(__file__).with_name("_bootstrap.py")


@dataclass(frozen=True)
class FunctionConfig:
    """What ``aws_lambda_function`` holds: code, handler, limits and environment."""

    zip_path: Path
    name: str = "ddbsearch-indexer"
    handler: str = "handler.handler"
    timeout_seconds: float = defaults.FUNCTION_TIMEOUT_SECONDS
    memory_mb: int = defaults.FUNCTION_MEMORY_MB
    region: str = "us-east-1"
    environment: Mapping[str, str] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.name}"


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one synchronous invocation (``RequestResponse``)."""

    request_id: str
    duration_seconds: float
    payload: Any = None
    # Set when the invocation failed (handler raised, timed out, crashed, import failed).
    error: dict[str, Any] | None = None

    @property
    def function_error(self) -> str | None:
        """``"Unhandled"`` like Lambda's X-Amz-Function-Error header, or None on success."""
        return "Unhandled" if self.error is not None else None


def build_runtime_site(directory: Path) -> Path:
    """Create (idempotently) a directory linking the packages the Lambda runtime ships."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise PrerequisiteError(
                f"'{name}' is not installed, but the local Lambda runtime needs it",
                hint="pip install boto3",
            )
        if spec.submodule_search_locations:
            source = Path(next(iter(spec.submodule_search_locations)))
        else:
            source = Path(spec.origin)
        link = directory / source.name
        if link.is_symlink() and link.resolve() == source.resolve():
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return directory


def extract_zip(zip_path: Path, task_root: Path) -> Path:
    """Unpack the deployment package the way Lambda does (into a fresh /var/task)."""
    if task_root.exists():
        shutil.rmtree(task_root)
    task_root.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(task_root)
    return task_root


class LocalFunction:
    """One execution environment of a function; invocations run one at a time.

    ``work_dir`` receives the extracted code and the runtime site; ``log_path``
    (append) receives what the function prints, like its CloudWatch log group.
    """

    def __init__(
        self, config: FunctionConfig, *, work_dir: Path, log_path: Path | None = None
    ) -> None:
        self.config = config
        self._work_dir = work_dir
        self._log_path = log_path
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log_file: IO[str] | None = None
        self._task_root = extract_zip(config.zip_path, work_dir / "task")
        self._runtime_site = build_runtime_site(work_dir / "runtime-site")
        self.cold_starts = 0

    @property
    def pid(self) -> int | None:
        """The child's process id while an execution environment is up."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _environment(self) -> dict[str, str]:
        cfg = self.config
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "_HANDLER": cfg.handler,
            "AWS_REGION": cfg.region,
            "AWS_DEFAULT_REGION": cfg.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": cfg.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(cfg.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{cfg.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            "LAMBDA_TASK_ROOT": str(self._task_root),
            "LAMBDA_RUNTIME_DIR": str(self._runtime_site),
            # The emulators accept any credentials; never hand real ones to local code.
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
        }
        env.update(cfg.environment)
        return env

    def _start(self) -> subprocess.Popen[str]:
        if self._log_path is not None and self._log_file is None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self._log_path.open("a", encoding="utf-8")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                str(_BOOTSTRAP),
                str(self._task_root),
                str(self._runtime_site),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file if self._log_file is not None else subprocess.DEVNULL,
            env=self._environment(),
            text=True,
            encoding="utf-8",
            cwd=self._task_root,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream: IO[str]) -> None:
            for line in stream:
                lines.put(line)
            lines.put(None)  # EOF: the child exited

        assert proc.stdout is not None
        threading.Thread(target=pump, args=(proc.stdout,), daemon=True).start()
        self._lines = lines
        self._proc = proc
        self.cold_starts += 1
        return proc

    def _kill(self, *, grace: float = 0.0) -> None:
        """End the execution environment: close its stdin (it exits on EOF), then kill."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """The child's next message, or None when it died or the deadline passed."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                return None
            if line is None:
                return None
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict):
                    return message

    def invoke(self, event: Mapping[str, Any]) -> InvokeResult:
        """Invoke synchronously; never raises for function failures (see ``InvokeResult.error``)."""
        with self._lock:
            return self._invoke(event)

    def _invoke(self, event: Mapping[str, Any]) -> InvokeResult:
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        timeout = self.config.timeout_seconds

        def failed(error_type: str, message: str) -> InvokeResult:
            return InvokeResult(
                request_id,
                time.monotonic() - started,
                error={"errorType": error_type, "errorMessage": message},
            )

        proc = self._proc if self._proc is not None and self._proc.poll() is None else None
        if proc is None:
            proc = self._start()
            # Lambda gives the init phase its own 10 s before it counts against the timeout.
            ready = self._read(time.monotonic() + 10.0 + timeout)
            if ready is None or not ready.get("ready"):
                self._kill()
                return failed("Runtime.ExitError", "the runtime did not start")
            started = time.monotonic()
        deadline_wall_ms = (time.time() + timeout) * 1000
        request = {
            "id": request_id,
            "request_id": request_id,
            "event": event,
            "deadline_ms": deadline_wall_ms,
            "function_arn": self.config.arn,
        }
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
        except OSError:
            self._kill()
            return failed("Runtime.ExitError", "the runtime exited before the invocation")
        reply = self._read(started + timeout)
        if reply is None:
            timed_out = proc.poll() is None
            self._kill()
            if timed_out:
                return failed("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
            return failed("Runtime.ExitError", f"the runtime exited with status {proc.returncode}")
        duration = time.monotonic() - started
        if "error" in reply:
            return InvokeResult(request_id, duration, error=dict(reply["error"]))
        return InvokeResult(request_id, duration, payload=reply.get("result"))

    def close(self) -> None:
        """Stop the execution environment; an invocation in flight ends as a function error."""
        proc = self._proc
        if proc is not None and self._lock.locked():
            # Do not wait for a long invocation to finish: end it now.
            with contextlib.suppress(OSError):
                proc.kill()
        with self._lock:
            self._kill(grace=2.0)
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> LocalFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
