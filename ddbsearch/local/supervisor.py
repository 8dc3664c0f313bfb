"""The local stack's supervisor process: ``python -m ddbsearch.local.supervisor --root DIR``.

Started detached (its own session) by :func:`ddbsearch.local.stack.start_stack`,
it owns everything the local stack runs, for the stack's whole lifetime:

* moto's server (DynamoDB, DynamoDB Streams, SQS), on a thread of this process;
* osmem-server, a child whose stdin pipe this process holds open: the child
  exits when the pipe closes or this process disappears, even on SIGKILL;
* one stream worker (the local event source mapping) per mapping file
  ``ROOT/mappings/<table>.json`` that ``deploy`` writes, each with its own local
  Lambda runtime child (which exits when its stdin pipe, held here, closes).

It writes ``ROOT/stack.json`` once everything listens and removes it on
SIGTERM/SIGINT/SIGHUP, after stopping all of the above. Each mapping's state
(``Enabled`` / ``Failed``, worker counters, checkpoints) is written to
``ROOT/mappings/<table>.status.json`` for ``status`` and for ``deploy`` to wait on.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ddbsearch import clients
from ddbsearch.local import state
from ddbsearch.local.emulators import MotoServer, start_osmem
from ddbsearch.local.runtime import FunctionConfig, LocalFunction
from ddbsearch.local.worker import (
    CheckpointStore,
    MappingConfig,
    StreamWorker,
    sqs_destination,
)

log = logging.getLogger("ddbsearch.local.supervisor")
REGION = clients.LOCAL_REGION


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class _Running:
    spec_text: str
    generation: str | None = None
    # None when the mapping failed to start (its status file says why).
    worker: StreamWorker | None = None
    function: LocalFunction | None = None


class Supervisor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.stop = threading.Event()
        self.moto: MotoServer | None = None
        self.osmem: Any = None
        self.mappings: dict[str, _Running] = {}

    # -------------------------------------------------------------- lifecycle

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stop.set())
        try:
            self.moto = MotoServer.start()
            self.osmem = start_osmem()
            osmem_port = int(str(self.osmem.url).rsplit(":", 1)[1].rstrip("/"))
            state.write_stack(
                self.root,
                state.StackRecord(
                    pid=os.getpid(),
                    ready=True,
                    started_at=time.time(),
                    region=REGION,
                    moto_url=self.moto.url,
                    moto_port=self.moto.port,
                    osmem_url=str(self.osmem.url).rstrip("/"),
                    osmem_port=osmem_port,
                    osmem_pid=int(self.osmem.pid),
                ),
            )
            log.info("ready: moto %s, osmem %s", self.moto.url, self.osmem.url)
            while not self.stop.wait(0.1):
                if self.osmem.process.poll() is not None:
                    # Without its search engine the stack is useless: stop, so that
                    # commands say "not running" instead of failing obscurely.
                    log.error("osmem-server exited (status %s)", self.osmem.process.returncode)
                    return 1
                if not self._still_recorded():
                    # Our state file is gone or names another stack (the state
                    # directory was wiped): nobody can reach or stop us any more.
                    log.error("%s no longer records this stack: stopping", self.root / "stack.json")
                    return 1
                self._sync_mappings()
                self._write_statuses()
        except Exception:
            log.exception("the local stack failed")
            return 1
        finally:
            self._shutdown()
        return 0

    _missing_checks = 0

    def _still_recorded(self) -> bool:
        pid = state.recorded_pid(self.root)
        self._missing_checks = 0 if pid == os.getpid() else self._missing_checks + 1
        return self._missing_checks < 5

    def _shutdown(self) -> None:
        log.info("stopping")
        for table in list(self.mappings):
            self._stop_mapping(table)
        if self.osmem is not None:
            with contextlib.suppress(Exception):
                self.osmem.close()
        if self.moto is not None:
            with contextlib.suppress(Exception):
                self.moto.stop()
        with contextlib.suppress(OSError):
            state.remove_stack(self.root, pid=os.getpid())
        log.info("stopped")

    # -------------------------------------------------------------- mappings

    def _sync_mappings(self) -> None:
        wanted = dict(state.mapping_spec_texts(self.root))
        for table in list(self.mappings):
            if wanted.get(table) != self.mappings[table].spec_text:
                self._stop_mapping(table)
        for table, text in wanted.items():
            if table not in self.mappings:
                self._start_mapping(table, text)

    def _start_mapping(self, table: str, text: str) -> None:
        generation: str | None = None
        try:
            spec = json.loads(text)
            generation = spec.get("generation")
            assert self.moto is not None
            function = LocalFunction(
                FunctionConfig(
                    zip_path=Path(spec["zip_path"]),
                    name=spec["function_name"],
                    timeout_seconds=float(spec["timeout_seconds"]),
                    memory_mb=int(spec["memory_mb"]),
                    region=REGION,
                    environment=spec["environment"],
                ),
                work_dir=self.root / "functions" / table,
                log_path=self.root / "logs" / f"{table}.function.log",
            )
            config = MappingConfig(
                stream_arn=spec["stream_arn"],
                function_arn=function.config.arn,
                **spec.get("settings", {}),
            )
            on_failure = spec.get("on_failure_url")
            worker = StreamWorker(
                config,
                clients.local_client("dynamodbstreams", self.moto.url),
                function,
                # Keyed by stream too: a re-created table has a new stream whose shard
                # ids moto may repeat, and old checkpoints must not apply to it.
                checkpoints=CheckpointStore(
                    self.root / "checkpoints" / f"{table}-{_digest(spec['stream_arn'])}.json"
                ),
                on_failure=(
                    sqs_destination(clients.local_client("sqs", self.moto.url), on_failure)
                    if on_failure
                    else None
                ),
            )
            worker.start()
        except Exception as exc:
            log.exception("mapping for %s failed to start", table)
            state.write_mapping_status(
                self.root,
                table,
                state.MappingStatus(
                    state="Failed", generation=generation, error=f"{type(exc).__name__}: {exc}"
                ),
            )
            # Remember the failure so that we do not retry in a tight loop.
            self.mappings[table] = _Running(text, generation)
            return
        self.mappings[table] = _Running(text, generation, worker, function)
        log.info("mapping %s -> %s enabled", spec["stream_arn"], function.config.name)
        self._write_status(table)

    def _stop_mapping(self, table: str) -> None:
        running = self.mappings.pop(table)
        if running.worker is not None:
            running.worker.stop()
        if running.function is not None:
            running.function.close()
        state.remove_mapping_status(self.root, table)

    def _write_status(self, table: str) -> None:
        running = self.mappings[table]
        if running.worker is None or running.function is None:
            return
        stats = asdict(running.worker.stats)
        stats.pop("batch_sizes", None)
        try:
            caught_up_since = running.worker.caught_up_since()
        except RuntimeError:  # the worker thread changed its shards meanwhile
            caught_up_since = None
        state.write_mapping_status(
            self.root,
            table,
            state.MappingStatus(
                state="Enabled" if running.worker.running else "Stopped",
                generation=running.generation,
                idle=caught_up_since is not None,
                caught_up_since=caught_up_since,
                updated_at=time.time(),
                stream_arn=running.worker.config.stream_arn,
                function_pid=running.function.pid,
                stats=stats,
                checkpoints=running.worker.checkpoints.snapshot(),
            ),
        )

    _last_status_write = 0.0

    def _write_statuses(self) -> None:
        now = time.monotonic()
        if now - self._last_status_write < 0.2:
            return
        self._last_status_write = now
        for table in self.mappings:
            with contextlib.suppress(OSError):
                self._write_status(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddbsearch.local.supervisor")
    parser.add_argument(
        "--root", required=True, type=Path, help="the local stack's state directory"
    )
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # moto's server logs every request; keep the log about the stack itself.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return Supervisor(args.root).run()


if __name__ == "__main__":
    sys.exit(main())
