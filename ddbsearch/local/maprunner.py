"""The local map runner: what a Step Functions Distributed Map does, on one machine.

``terraform/modules/loader`` runs the export load as a Distributed Map over the
export's data files, each child invoking the zip's ``handler.load_file``. This
module follows the same rules locally, with the function in the local Lambda
runtime (:mod:`ddbsearch.local.runtime`), as the stream worker follows the
event source mapping's:

* **Items.** One item per data file: the export's ``manifest-files.json`` when
  there is one (``ItemReader`` with ``InputType: JSONL``), else every data file
  under the export's prefix (moto writes no manifest).
* **MaxConcurrency.** At most ``max_concurrency`` files load at once, each in its
  own execution environment (a runtime child), as Lambda scales out.
* **Child workflow.** Invoke ``load_file``; while it answers ``complete: false``,
  invoke again from ``next_line`` (the state machine's Choice loop).
* **Retry.** Per item, like the state's ``Retry`` list: ``SearchThrottled`` and
  Lambda throttling back off exponentially (``IntervalSeconds``, ``BackoffRate``,
  ``MaxDelaySeconds``, full jitter) for many attempts, so a busy domain slows
  the map down; other transient errors (timeouts, crashes, an unreachable
  dead-letter queue) get a few attempts; ``ExportFileError`` is not retried.
* **Tolerated failures.** The run fails (``States.ExceedToleratedFailureThreshold``)
  once more files failed than ``tolerated_failure_count`` or a larger share than
  ``tolerated_failure_percentage`` (either exceeded, as Step Functions does); it
  then starts no new file.
* **ResultWriter.** The result goes to S3 as Step Functions writes it:
  ``<prefix>/<run id>/manifest.json`` plus ``SUCCEEDED_0.json`` / ``FAILED_0.json``.

It runs detached (``python -m ddbsearch.local.maprunner RUN_DIR``, its own
session), so that the CLI can leave: it checkpoints every file's progress to
``RUN_DIR/progress.json`` (atomically, 0600) after each invocation, and a runner
started again on the same directory skips finished files and resumes the others
at their ``next_line``. SIGTERM stops it: no new invocation starts, the runtime
children are ended, and the state becomes ``ABORTED``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ddbsearch import clients, files
from ddbsearch.core.pacing import backoff_delay
from ddbsearch.local import state
from ddbsearch.local.processes import process_alive
from ddbsearch.local.runtime import FunctionConfig, InvokeResult, LocalFunction

log = logging.getLogger("ddbsearch.local.maprunner")

SPEC_FILE = "load.json"
PROGRESS_FILE = "progress.json"
RUNNING, SUCCEEDED, FAILED, ABORTED = "RUNNING", "SUCCEEDED", "FAILED", "ABORTED"
TERMINAL = frozenset({SUCCEEDED, FAILED, ABORTED})
# Error names as the state machine's Retry lists them (terraform/modules/loader).
THROTTLE_ERRORS = frozenset({"SearchThrottled", "Lambda.TooManyRequestsException"})
NOT_RETRIED = frozenset({"ExportFileError", "Runtime.ImportModuleError"})


@dataclass(frozen=True)
class Retrier:
    """One entry of the state's ``Retry`` list (``BackoffRate`` 2, ``JitterStrategy: FULL``)."""

    max_attempts: int
    interval_seconds: float
    max_delay_seconds: float = 60.0
    backoff_rate: float = field(default=2.0, init=False)  # what core.pacing's backoff does

    def delay(self, attempt: int, jitter: Callable[[], float] = random.random) -> float:
        """Delay before retry ``attempt`` (1-based): the project's one backoff."""
        return backoff_delay(
            attempt - 1, base=self.interval_seconds, cap=self.max_delay_seconds, jitter=jitter
        )


@dataclass(frozen=True)
class MapConfig:
    """The Distributed Map's settings (terraform/modules/loader repeats them)."""

    max_concurrency: int = 4
    # As in ASL: a threshold left out is not applied, and with neither any failure
    # fails the run; with both, exceeding either fails it (terraform sets the percentage).
    tolerated_failure_percentage: float | None = 0.0
    tolerated_failure_count: int | None = None
    throttle_retry: Retrier = Retrier(max_attempts=12, interval_seconds=2.0)
    error_retry: Retrier = Retrier(max_attempts=3, interval_seconds=1.0)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MapConfig:
        return cls(
            max_concurrency=int(data.get("max_concurrency", 4)),
            tolerated_failure_percentage=_optional(
                float,
                data,
                "tolerated_failure_percentage",
                None if "tolerated_failure_count" in data else 0.0,
            ),
            tolerated_failure_count=_optional(int, data, "tolerated_failure_count", None),
            throttle_retry=Retrier(**data["throttle_retry"])
            if "throttle_retry" in data
            else cls.throttle_retry,
            error_retry=Retrier(**data["error_retry"])
            if "error_retry" in data
            else cls.error_retry,
        )


def _optional(kind: Callable[[Any], Any], data: Mapping[str, Any], name: str, default: Any) -> Any:
    value = data.get(name, default)
    return None if value is None else kind(value)


@dataclass(frozen=True)
class LoadSpec:
    """Everything a runner needs, written once by whoever starts it (``RUN_DIR/load.json``)."""

    run_id: str
    bucket: str
    files: list[dict[str, Any]]  # {"key", "size", "items"}
    key_names: list[str]
    version: int
    zip_path: str
    environment: dict[str, str]
    moto_url: str
    result_bucket: str
    result_prefix: str
    function_name: str = "ddbsearch-loader"
    timeout_seconds: float = 120.0
    memory_mb: int = 512
    region: str = "us-east-1"
    map: dict[str, Any] = field(default_factory=dict)
    stack_state: str | None = None  # the local stack's stack.json: gone -> stop
    generations: list[str] = field(default_factory=list)  # passed through; empty: all live

    @classmethod
    def load(cls, run_dir: Path) -> LoadSpec:
        return cls(**json.loads((run_dir / SPEC_FILE).read_text()))

    def save(self, run_dir: Path) -> None:
        files.write_json(run_dir / SPEC_FILE, asdict(self))


def read_progress(run_dir: Path) -> dict[str, Any] | None:
    """``progress.json`` of a run (the runner is its only writer)."""
    return files.read_json(run_dir / PROGRESS_FILE)


@dataclass
class _File:
    key: str
    size: int | None = None
    items: int | None = None
    status: str = "PENDING"  # PENDING | RUNNING | SUCCEEDED | FAILED
    next_line: int = 0
    rows: int = 0
    indexed: int = 0
    stale: int = 0
    dead_lettered: int = 0
    invocations: int = 0
    retries: int = 0
    throttles: int = 0
    error: str | None = None
    cause: str | None = None
    started_at: float | None = None
    stopped_at: float | None = None


class MapRun:
    """One local map run over a load spec; ``run()`` blocks until it ends."""

    def __init__(
        self,
        run_dir: Path,
        spec: LoadSpec,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.spec = spec
        self.config = MapConfig.from_json(spec.map)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._functions: list[LocalFunction] = []
        self._sleep = sleep
        self.state = RUNNING
        self.error: str | None = None
        self.cause: str | None = None
        previous = read_progress(run_dir) or {}
        done = {f["key"]: f for f in previous.get("files", []) if isinstance(f, dict)}
        self.files: list[_File] = []
        for entry in spec.files:
            f = _File(str(entry["key"]), entry.get("size"), entry.get("items"))
            old = done.get(f.key)
            if old is not None:
                # Resume: finished files stay finished; others continue at next_line.
                for name in ("next_line", "rows", "indexed", "stale", "dead_lettered"):
                    setattr(f, name, int(old.get(name) or 0))
                f.status = SUCCEEDED if old.get("status") == SUCCEEDED else "PENDING"
            self.files.append(f)
        self.started_at = float(previous.get("started_at") or time.time())
        self.resumed = int(previous.get("resumed", 0)) + 1 if previous else 0

    # ------------------------------------------------------------------ run

    def run(self) -> str:
        self._save()
        todo = [f for f in self.files if f.status != SUCCEEDED]
        workers = [
            threading.Thread(target=self._worker, args=(todo, n), name=f"map-{n}", daemon=True)
            for n in range(max(1, min(self.config.max_concurrency, len(todo) or 1)))
        ]
        for w in workers:
            w.start()
        closed = False
        while any(w.is_alive() for w in workers):
            for w in workers:
                w.join(0.2)
            if self.stop.is_set() and not closed:
                # Stopped: end the invocations in flight now, as StopExecution does,
                # rather than wait up to a function timeout for them.
                closed = True
                with self._lock:
                    functions = list(self._functions)
                for fn in functions:
                    fn.close()
            self._save()
        for fn in self._functions:
            fn.close()
        with self._lock:
            if self.stop.is_set() and self.state == RUNNING:
                self.state = ABORTED
            elif self.state == RUNNING:
                failed = [f for f in self.files if f.status == FAILED]
                self.state = FAILED if self._over_threshold(len(failed)) else SUCCEEDED
                if self.state == FAILED:
                    self.error = "States.ExceedToleratedFailureThreshold"
        if self.state in (SUCCEEDED, FAILED):
            self._write_result()
        self._save()
        return self.state

    def _worker(self, todo: list[_File], n: int) -> None:
        spec = self.spec
        function = LocalFunction(
            FunctionConfig(
                zip_path=Path(spec.zip_path),
                name=spec.function_name,
                handler="handler.load_file",
                timeout_seconds=spec.timeout_seconds,
                memory_mb=spec.memory_mb,
                region=spec.region,
                environment=spec.environment,
            ),
            work_dir=self.run_dir / "functions" / str(n),
            log_path=self.run_dir / "function.log",
        )
        with self._lock:
            self._functions.append(function)
        try:
            while not self.stop.is_set():
                with self._lock:
                    if self.state != RUNNING or not todo:
                        return
                    item = todo.pop(0)
                    item.status = "RUNNING"
                    item.started_at = time.time()
                self._child(function, item)
        finally:
            function.close()

    def _child(self, function: LocalFunction, item: _File) -> None:
        attempts = {"throttle": 0, "error": 0}
        while not self.stop.is_set():
            event = {
                "bucket": self.spec.bucket,
                "key": item.key,
                "key_names": self.spec.key_names,
                "version": self.spec.version,
                "start_line": item.next_line,
                "generations": self.spec.generations,
            }
            result = function.invoke(event)
            item.invocations += 1
            if result.error is None and isinstance(result.payload, dict):
                self._progress(item, result.payload)
                if result.payload.get("complete"):
                    self._finish(item, SUCCEEDED)
                    return
                continue
            if self.stop.is_set():
                break  # ended by the stop, not failed
            error, cause = _error_of(result)
            retrier, kind = (
                (self.config.throttle_retry, "throttle")
                if error in THROTTLE_ERRORS
                else (self.config.error_retry, "error")
            )
            if error in NOT_RETRIED or attempts[kind] >= retrier.max_attempts:
                item.error, item.cause = error, cause
                self._finish(item, FAILED)
                return
            attempts[kind] += 1
            item.retries += 1
            item.throttles += kind == "throttle"
            if self._wait(retrier.delay(attempts[kind])):
                break
        with self._lock:  # stopped: the file stays to do
            item.status = "PENDING"

    def _wait(self, seconds: float) -> bool:
        if self._sleep is not None:
            self._sleep(seconds)
            return self.stop.is_set()
        return self.stop.wait(seconds)

    def _progress(self, item: _File, payload: Mapping[str, Any]) -> None:
        with self._lock:
            item.next_line = int(payload.get("next_line", item.next_line))
            for name in ("rows", "indexed", "stale", "dead_lettered"):
                setattr(item, name, getattr(item, name) + int(payload.get(name) or 0))
            item.throttles += bool(payload.get("throttled"))
        self._save()

    def _finish(self, item: _File, status: str) -> None:
        with self._lock:
            item.status = status
            item.stopped_at = time.time()
            if status == FAILED:
                failed = sum(f.status == FAILED for f in self.files)
                if self._over_threshold(failed) and self.state == RUNNING:
                    self.state = FAILED
                    self.error = "States.ExceedToleratedFailureThreshold"
                    self.cause = f"{failed} of {len(self.files)} file(s) failed"
        self._save()

    def _over_threshold(self, failed: int) -> bool:
        if failed == 0:
            return False
        count, percentage = (
            self.config.tolerated_failure_count,
            self.config.tolerated_failure_percentage,
        )
        if count is None and percentage is None:
            return True
        share = failed * 100.0 / max(1, len(self.files))
        return (count is not None and failed > count) or (
            percentage is not None and share > percentage
        )

    # ------------------------------------------------------------------ records

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            files = [asdict(f) for f in self.files]
        return {
            "run_id": self.spec.run_id,
            "pid": os.getpid(),
            "state": self.state,
            "error": self.error,
            "cause": self.cause,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "resumed": self.resumed,
            "max_concurrency": self.config.max_concurrency,
            "files": files,
        }

    def _save(self) -> None:
        files.write_json(self.run_dir / PROGRESS_FILE, self.snapshot(), indent=None)

    def _write_result(self) -> None:
        """Write the run's result to S3 in ResultWriter's layout."""
        s3 = clients.local_client("s3", self.spec.moto_url, region=self.spec.region)
        prefix = f"{self.spec.result_prefix.rstrip('/')}/{self.spec.run_id}"
        groups: dict[str, list[dict[str, Any]]] = {SUCCEEDED: [], FAILED: [], "PENDING": []}
        for f in self.files:
            status = f.status if f.status in (SUCCEEDED, FAILED) else "PENDING"
            entry: dict[str, Any] = {
                "Name": f.key,
                "Status": status,
                "Input": json.dumps({"key": f.key}),
                "Output": json.dumps({"rows": f.rows, "dead_lettered": f.dead_lettered}),
                "StartDate": f.started_at,
                "StopDate": f.stopped_at,
            }
            if f.status == FAILED:
                entry["Error"], entry["Cause"] = f.error, f.cause
            groups[status].append(entry)
        manifest: dict[str, Any] = {
            "DestinationBucket": self.spec.result_bucket,
            "MapRunArn": (
                f"arn:aws:states:{self.spec.region}:000000000000:mapRun:local/{self.spec.run_id}"
            ),
            "ResultFiles": {},
        }
        for status, entries in groups.items():
            manifest["ResultFiles"][status] = []
            if entries:
                key = f"{prefix}/{status}_0.json"
                body = json.dumps(entries).encode()
                s3.put_object(Bucket=self.spec.result_bucket, Key=key, Body=body)
                manifest["ResultFiles"][status].append({"Key": key, "Size": len(body)})
        s3.put_object(
            Bucket=self.spec.result_bucket,
            Key=f"{prefix}/manifest.json",
            Body=json.dumps(manifest).encode(),
        )


def _error_of(result: InvokeResult) -> tuple[str, str]:
    if result.error is not None:
        return str(result.error.get("errorType") or "Unhandled"), str(
            result.error.get("errorMessage") or ""
        )[:500]
    return "States.Runtime", "the loader answered something that is not a load result"


def _stack_gone(spec: LoadSpec) -> bool:
    """True once the local stack this load writes to has stopped (its emulators are gone)."""
    if not spec.stack_state:
        return False
    pid = state.recorded_pid(Path(spec.stack_state).parent)
    return pid is None or not process_alive(pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddbsearch.local.maprunner")
    parser.add_argument("run_dir", type=Path, help="the load's directory (holds load.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    run = MapRun(args.run_dir, LoadSpec.load(args.run_dir))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: run.stop.set())

    def watch() -> None:
        while not run.stop.wait(1.0):
            if _stack_gone(run.spec):
                log.error("the local stack stopped: stopping the load")
                run.stop.set()

    threading.Thread(target=watch, daemon=True).start()
    state = run.run()
    log.info("map run %s ended: %s", run.spec.run_id, state)
    with contextlib.suppress(Exception):
        logging.shutdown()
    return 0 if state == SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
