"""A recording HTTP endpoint standing in for an OpenSearch domain (tests only).

It records every request (method, path, headers, JSON body) and keeps the
security plugin's roles and role mappings in memory the way the plugin answers
them (``GET`` wraps the object under its name and adds the fields the plugin adds,
``GET rolesmapping`` lists them all, ``PUT`` stores, ``PATCH`` applies a JSON patch
(``add``, ``remove``, ``replace``, ``test``; 400 when a ``test`` fails or a path is
wrong, nothing applied), ``DELETE`` removes, 404 for what is missing). Like an
Amazon OpenSearch Service domain, it starts with the built-in Dashboards roles
(``BUILTIN_ROLES``) and no mapping for them. Other paths answer what ddbsearch's
index preparation and search expect from an empty domain.
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
BUILTIN_ROLES = {
    "roles/opensearch_dashboards_user": {"cluster_permissions": ["cluster_composite_ops"]},
    "roles/opensearch_dashboards_read_only": {},
}
_MAPPING_FIELDS = ("backend_roles", "users", "hosts", "and_backend_roles")


def _empty_mapping() -> dict[str, list[str]]:
    return {key: [] for key in _MAPPING_FIELDS}


class PatchError(Exception):
    pass


def json_patch(document: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 on a copy of ``document`` (the subset the security plugin gets here)."""
    doc = json.loads(json.dumps(document))
    for op in ops:
        *parents, last = op["path"].lstrip("/").split("/")
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if not 0 <= index <= len(node) - (0 if op["op"] == "add" else 1):
                raise PatchError(op["path"])
            if op["op"] == "add":
                node.insert(index, op["value"])
            elif op["op"] == "remove":
                node.pop(index)
            elif op["op"] == "replace":
                node[index] = op["value"]
            elif op["op"] == "test" and node[index] != op["value"]:
                raise PatchError(f"test failed at {op['path']}")
        else:
            if op["op"] in ("add", "replace"):
                node[last] = op["value"]
            elif op["op"] == "remove":
                node.pop(last)
            elif op["op"] == "test" and node.get(last) != op["value"]:
                raise PatchError(f"test failed at {op['path']}")
    return doc


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
    # "roles/x" -> body; starts with the domain's built-in roles
    security: dict[str, dict[str, Any]] = field(
        default_factory=lambda: json.loads(json.dumps(BUILTIN_ROLES))
    )

    def ours(self) -> dict[str, dict[str, Any]]:
        """The security objects besides the built-in roles."""
        return {k: v for k, v in self.security.items() if k not in BUILTIN_ROLES}

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
                if "/" not in key:  # GET rolesmapping: every mapping, by name
                    self._answer(
                        200,
                        {
                            k.split("/", 1)[1]: {**_empty_mapping(), **v}
                            for k, v in domain.security.items()
                            if k.startswith(key + "/")
                        },
                    )
                    return
                name = key.split("/", 1)[1]
                if self.command == "PATCH":
                    if key not in domain.security:
                        self._answer(404, {"status": "NOT_FOUND"})
                        return
                    stored = {**_empty_mapping(), **domain.security[key]}
                    try:
                        domain.security[key] = json_patch(stored, body)
                    except (PatchError, LookupError, ValueError) as exc:
                        self._answer(400, {"status": "BAD_REQUEST", "message": str(exc)})
                        return
                    self._answer(200, {"status": "OK"})
                    return
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

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

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
