"""Searches against an AWS target are SigV4-signed for service ``es`` in the target's region.

A loopback HTTP server stands in for the domain and records what it receives; no
request leaves the machine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.targets import Target, save_aws_target, set_current

runner = CliRunner()

MAPPING = {"idx": {"mappings": {"properties": {"title": {"type": "text"}}}}}
RESPONSE = {
    "took": 3,
    "hits": {
        "total": {"value": 1, "relation": "eq"},
        "hits": [{"_id": "k1", "_score": 2.0, "_source": {"pk": "k1", "title": "mega test"}}],
    },
}


@pytest.fixture
def domain() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, payload: Any) -> None:
            status = 200
            if self.path.startswith("/forbidden"):  # as a domain access policy denies
                status, payload = 403, {"message": "User: anonymous is not authorized"}
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            seen.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
            self._reply(MAPPING)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            seen.append(
                {"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body}
            )
            self._reply(RESPONSE)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_aws_search_requests_are_signed_for_es(domain: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = domain
    target = Target(
        kind="aws",
        name="signed",
        region="eu-west-1",
        table="T",
        index="idx",
        search_endpoint=url,
        sigv4=True,
        key_names=("pk",),  # no DescribeTable call
    )
    save_aws_target(target)
    set_current("aws", "signed")
    result = runner.invoke(app, ["search", "mega test"])
    assert result.exit_code == 0, result.stderr
    assert "1 hit in 3 ms" in result.stderr
    assert [r["method"] for r in seen] == ["GET", "POST"]
    for request in seen:
        auth = request["headers"]["Authorization"]
        # conftest's emulator credentials, the target's region, service es
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "/eu-west-1/es/aws4_request" in auth
        assert "x-amz-date" in {h.lower() for h in request["headers"]}
    assert seen[1]["path"].startswith("/idx/_search")
    assert seen[1]["body"]["query"]["simple_query_string"]["fields"] == ["title"]


def test_a_refusing_domain_is_exit_7(domain: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = domain
    target = Target(
        kind="aws", name="refused", region="us-east-1", table="T", index="forbidden",
        search_endpoint=url, sigv4=True, key_names=("pk",),
    )  # fmt: skip
    save_aws_target(target)
    set_current("aws", "refused")
    result = runner.invoke(app, ["search", "x"])
    assert result.exit_code == 7, result.stderr
    assert result.stderr.startswith(
        "error: index 'forbidden': the search endpoint refused the request (403)"
    )
    assert result.stderr.count("\n") == 1
    assert seen  # it did reach the (refusing) domain
