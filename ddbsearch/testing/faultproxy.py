"""A fault-injecting HTTP proxy in front of the local search backend.

Used by the tests, the fault-injection suite and the benchmarks to prove that the
handler and backfill survive what a real domain does under stress: 429 and 5xx
answers, per-item rejections inside a ``_bulk``, dropped connections, slowness.
Faults are queued and consumed by the next matching requests, so a test states
exactly what happens; ``random_faults`` draws them from a seeded generator.
Loopback only.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

FaultKind = Literal["status", "drop", "delay", "reject_items"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 503
    seconds: float = 0.0
    every: int = 2  # reject_items: every N-th item of the bulk gets ``status``
    body: bytes = b'{"error":"injected"}'  # status: the answer's body (e.g. a 403's)


@dataclass
class FaultStats:
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1


class FaultProxy:
    """``with FaultProxy(upstream) as proxy:`` then point clients at ``proxy.url``."""

    def __init__(self, upstream: str, *, path_prefix: str = "/_bulk") -> None:
        self.upstream = upstream.rstrip("/")
        self.path_prefix = path_prefix
        self.stats = FaultStats()
        self._faults: list[Fault] = []
        self._random: tuple[random.Random, float] | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- planning

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        self.inject(*[Fault("status", status=status)] * n)

    def drop_next(self, n: int = 1) -> None:
        self.inject(*[Fault("drop")] * n)

    def delay_next(self, seconds: float, n: int = 1) -> None:
        self.inject(*[Fault("delay", seconds=seconds)] * n)

    def reject_items_next(self, n: int = 1, status: int = 429, every: int = 2) -> None:
        self.inject(*[Fault("reject_items", status=status, every=every)] * n)

    def random_faults(self, seed: int, probability: float) -> None:
        """From now on, each matching request draws a fault with this probability."""
        with self._lock:
            self._random = (random.Random(seed), probability)  # noqa: S311 - test faults, not crypto

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._random = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._faults)

    def _next_fault(self, path: str) -> Fault | None:
        if not _matches(path, self.path_prefix):
            return None
        with self._lock:
            if self._faults:
                return self._faults.pop(0)
            if self._random is not None:
                rng, p = self._random
                if rng.random() < p:
                    return rng.choice(
                        [
                            Fault("status", status=429),
                            Fault("status", status=503),
                            Fault("drop"),
                            Fault("reject_items", status=429, every=rng.randint(1, 3)),
                        ]
                    )
        return None

    # ----------------------------------------------------------------- serving

    def _forward(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, str]:
        req = urllib.request.Request(  # noqa: S310 - http(s) to our own loopback upstream
            self.upstream + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - loopback upstream
                return (
                    resp.status,
                    resp.read(),
                    resp.headers.get("Content-Type", "application/json"),
                )
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "application/json")

    def _reject_items(
        self, fault: Fault, body: bytes, headers: dict[str, str], path: str
    ) -> tuple[int, bytes, str]:
        """Forward all but every N-th bulk item; answer those with ``fault.status``."""
        lines = body.decode().splitlines()
        entries: list[list[str]] = []
        i = 0
        while i < len(lines):
            ((op, _),) = json.loads(lines[i]).items()
            take = 1 if op == "delete" else 2
            entries.append(lines[i : i + take])
            i += take
        keep = [n for n in range(len(entries)) if (n + 1) % fault.every != 0]
        forwarded: list[Any] = []
        if keep:
            payload = "".join("\n".join(entries[n]) + "\n" for n in keep).encode()
            status, data, _ = self._forward("POST", path, payload, headers)
            if status >= 300:
                return status, data, "application/json"
            forwarded = json.loads(data)["items"]
        results: list[Any] = []
        it = iter(forwarded)
        for n, entry in enumerate(entries):
            if n in keep:
                results.append(next(it))
            else:
                ((op, meta),) = json.loads(entry[0]).items()
                results.append(
                    {
                        op: {
                            "_index": meta.get("_index"),
                            "_id": meta.get("_id"),
                            "status": fault.status,
                            "error": {
                                "type": "es_rejected_execution_exception",
                                "reason": "injected",
                            },
                        }
                    }
                )
        out = {"took": 1, "errors": True, "items": results}
        return 200, json.dumps(out).encode(), "application/json"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read stats, not logs

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.stats.requests += 1
                fault = proxy._next_fault(self.path)
                headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                if fault is not None:
                    with proxy._lock:
                        proxy.stats.count(
                            fault.kind if fault.kind != "status" else str(fault.status)
                        )
                if fault is not None and fault.kind == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.seconds)
                if fault is not None and fault.kind == "status":
                    status, data, ctype = fault.status, fault.body, "application/json"
                elif fault is not None and fault.kind == "reject_items" and body:
                    status, data, ctype = proxy._reject_items(fault, body, headers, self.path)
                else:
                    status, data, ctype = proxy._forward(self.command, self.path, body, headers)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        return Handler


def _matches(path: str, prefix: str) -> bool:
    """``/_bulk`` names bulk requests wherever they are sent: ``/_bulk`` or ``/<index>/_bulk``."""
    if path.startswith(prefix):
        return True
    return prefix == "/_bulk" and path.split("?", 1)[0].endswith("/_bulk")
