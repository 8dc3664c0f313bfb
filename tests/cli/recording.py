"""A recording HTTP endpoint standing in for an OpenSearch domain (tests only).

It records every request (method, path, headers, JSON body) and keeps the
security plugin's roles and role mappings in memory the way the plugin answers
them (``GET`` wraps the object under its name and adds the fields the plugin adds,
``PUT`` stores, ``DELETE`` removes, 404 for what is missing). Other paths answer
what ddbsearch's index preparation and search expect from an empty domain.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECURITY = "/_plugins/_security/api/"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class RecordingDomain:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    security: dict[str, dict[str, Any]] = field(default_factory=dict)  # "roles/x" -> body

    def security_requests(self) -> list[tuple[str, str, Any]]:
        return [
            (r.method, r.path[len(SECURITY) :], r.body)
            for r in self.requests
            if r.path.startswith(SECURITY)
        ]

    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.security_requests() if r[0] != "GET"]

    def clear(self) -> None:
        self.requests.clear()


def _handler(domain: RecordingDomain) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _answer(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            path = self.path.split("?", 1)[0]
            domain.requests.append(Recorded(self.command, path, dict(self.headers.items()), body))
            if path.startswith(SECURITY):
                key = path[len(SECURITY) :]
                name = key.split("/", 1)[1]
                if self.command == "GET":
                    if key not in domain.security:
                        self._answer(404, {"status": "NOT_FOUND"})
                        return
                    extra: dict[str, Any] = {"reserved": False, "hidden": False, "static": False}
                    stored = json.loads(json.dumps(domain.security[key]))
                    for entry in stored.get("index_permissions", []):
                        entry.update({"dls": "", "fls": [], "masked_fields": []})
                    if key.startswith("rolesmapping/"):
                        extra |= {"hosts": [], "and_backend_roles": []}
                    self._answer(200, {name: {**stored, **extra}})
                elif self.command == "PUT":
                    created = key not in domain.security
                    domain.security[key] = body
                    self._answer(201 if created else 200, {"status": "OK"})
                elif self.command == "DELETE":
                    if domain.security.pop(key, None) is None:
                        self._answer(404, {"status": "NOT_FOUND"})
                    else:
                        self._answer(200, {"status": "OK"})
                else:
                    self._answer(405)
                return
            if path.endswith("/_search") or path.endswith("/_count"):
                self._answer(
                    200, {"took": 1, "count": 0, "hits": {"total": {"value": 0}, "hits": []}}
                )
            elif self.command == "HEAD":
                self._answer(404)
            else:
                self._answer(200, {"acknowledged": True})

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


@contextmanager
def recording_domain() -> Iterator[RecordingDomain]:
    domain = RecordingDomain()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(domain))
    domain.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield domain
    finally:
        server.shutdown()
        server.server_close()
