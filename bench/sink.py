"""A search endpoint that answers instantly: the sink for the handler benchmark.

It runs in its own process (``python -m bench.sink``), so the benchmark
process's CPU time is the handler's alone. It speaks just enough of the
OpenSearch REST API: HEAD/PUT of an index and of an index template, ``_bulk``
(the NDJSON is parsed so every item gets its own correct result, as OpenSearch
would answer), and single-document PUT/POST/DELETE for the naive baseline.
``GET /_bench/stats`` returns request and item counts; ``POST /_bench/reset``
zeroes them. The process exits when its stdin closes (its parent's lifeline).
"""

from __future__ import annotations

import faulthandler
import json
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3

_SOURCE_OPS = frozenset({"index", "create", "update"})


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, **counts: int) -> None:
        with self.lock:
            self.counts.update(counts)


STATE = _State()


def bulk_response(body: bytes) -> bytes:
    """The per-item response OpenSearch gives for this NDJSON body (all succeed)."""
    items: list[dict[str, Any]] = []
    lines = body.split(b"\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        ((op, meta),) = json.loads(line).items()
        if op in _SOURCE_OPS:
            i += 1  # the document line
        result = "deleted" if op == "delete" else "created"
        items.append(
            {
                op: {
                    "_index": meta.get("_index"),
                    "_id": meta.get("_id"),
                    "_version": meta.get("version", 1),
                    "result": result,
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "status": 200 if op == "delete" else 201,
                }
            }
        )
    STATE.add(bulk_requests=1, bulk_items=len(items))
    return json.dumps({"took": 0, "errors": False, "items": items}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like OpenSearch

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def setup(self) -> None:
        super().setup()
        # Like OpenSearch (Netty): no Nagle delay on small responses.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reply(self, status: int, payload: bytes = b"{}", *, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        # Headers and body in one write: two small writes would meet the client's
        # delayed ACK (~40 ms per request) under Nagle's algorithm.
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
        if not head:
            self._headers_buffer.append(payload)  # type: ignore[attr-defined]
        self.flush_headers()

    def do_HEAD(self) -> None:
        self._body()
        STATE.add(requests=1)
        self._reply(200, head=True)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_bench/stats":
            with STATE.lock:
                self._reply(200, json.dumps(dict(STATE.counts)).encode())
            return
        STATE.add(requests=1)
        self._reply(200, b'{"acknowledged":true}')

    def do_PUT(self) -> None:
        self._write("PUT")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_bench/reset":
            with STATE.lock:
                STATE.counts.clear()
            self._reply(200)
            return
        self._write("POST")

    def do_DELETE(self) -> None:
        self._body()
        STATE.add(requests=1, doc_requests=1)
        self._reply(200, b'{"result":"deleted","_version":1}')

    def _write(self, method: str) -> None:
        body = self._body()
        path = urlsplit(self.path).path
        STATE.add(requests=1)
        if path.endswith("/_bulk"):
            self._reply(200, bulk_response(body))
        elif "/_doc" in path:
            json.loads(body)  # a real backend parses the document
            STATE.add(doc_requests=1)
            self._reply(201, b'{"result":"created","_version":1}')
        else:  # index or index template
            self._reply(200, b'{"acknowledged":true}')


def serve() -> None:
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid> dumps the threads
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # returns when the parent closes the pipe (or dies)
    server.shutdown()


class Sink:
    """Start the sink in a child process; ``url``, ``stats()``, ``reset()``, ``close()``."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sink"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.strip():
            self.close()
            raise RuntimeError("the bench sink did not start")
        self.url = f"http://127.0.0.1:{int(line)}"
        self._http = urllib3.PoolManager(retries=False)

    def stats(self) -> dict[str, int]:
        data: dict[str, int] = json.loads(
            self._http.request("GET", self.url + "/_bench/stats").data
        )
        return data

    def reset(self) -> None:
        self._http.request("POST", self.url + "/_bench/reset")

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve()
