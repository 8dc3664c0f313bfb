"""Requests to the domain are SigV4-signed (service es) with the session token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from botocore.credentials import Credentials

from ddbsearch.core.transport import SearchTransport, TransportError, access_denied
from ddbsearch.errors import AuthError


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []  # noqa: RUF012 - per-test reset below
    status = 200
    body = b'{"ok":true}'

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = type(self).body
        self.send_response(type(self).status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    _Recorder.seen = []
    _Recorder.status = 200
    _Recorder.body = b'{"ok":true}'
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder
    finally:
        server.shutdown()
        server.server_close()


def test_signed_requests_carry_sigv4_for_es_and_the_session_token(
    recorder: tuple[str, type[_Recorder]],
) -> None:
    url, rec = recorder
    creds = Credentials("AKIDEXAMPLE", "secret", token="session-token-123")
    transport = SearchTransport(url, region="eu-west-1", credentials=creds)
    transport.request("POST", "/_bulk", b"{}\n", content_type="application/x-ndjson")
    headers = rec.seen[0]
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/es/aws4_request" in auth
    assert "x-amz-security-token" in auth.split("SignedHeaders=")[1].split(",")[0]
    assert headers["x-amz-security-token"] == "session-token-123"
    assert "secret" not in str(headers)


def test_rotated_credentials_are_picked_up(recorder: tuple[str, type[_Recorder]]) -> None:
    url, rec = recorder

    class Rotating:
        def __init__(self) -> None:
            self.n = 0

        def get_frozen_credentials(self) -> Credentials:
            self.n += 1
            return Credentials(f"AKID{self.n}", "secret", token=f"token-{self.n}")

    transport = SearchTransport(url, region="us-east-1", credentials=Rotating())
    transport.request("GET", "/")
    transport.request("GET", "/")
    assert [h["x-amz-security-token"] for h in rec.seen] == ["token-1", "token-2"]


def test_unsigned_for_the_local_emulator(recorder: tuple[str, type[_Recorder]]) -> None:
    url, rec = recorder
    SearchTransport(url, sigv4=False).request("GET", "/")
    assert "authorization" not in rec.seen[0]


def test_refusal_is_an_auth_error(recorder: tuple[str, type[_Recorder]]) -> None:
    url, rec = recorder
    rec.status = 403
    with pytest.raises(AuthError, match=r"refused the request \(403\)"):
        SearchTransport(url, sigv4=False).request("GET", "/")


@pytest.mark.parametrize(
    ("status", "body", "etype", "hint"),
    [
        (403, b'{"error":{"type":"security_exception","reason":"no permissions for'
              b' [indices:data/write/bulk] and User [name=arn:aws:iam::1:role/r]"}}',
         "security_exception", "role mapping"),
        (403, b'{"Message":"User: arn:aws:sts::1:assumed-role/r/f is not authorized to'
              b' perform: es:ESHttpPost"}', "access_denied", "access policy"),
        (401, b"", "unauthorized", "credentials"),
    ],
)  # fmt: skip
def test_refusals_say_which_gate_refused_and_name_the_fix(
    status: int, body: bytes, etype: str, hint: str
) -> None:
    exc = access_denied(status, body)
    assert exc.error_type == etype
    assert hint in (exc.hint or "")
    assert "arn:" not in str(exc)  # the answer names users and roles; it is not quoted


def test_a_read_only_block_is_not_a_refusal(recorder: tuple[str, type[_Recorder]]) -> None:
    url, rec = recorder
    rec.status = 403
    rec.body = b'{"error":{"type":"cluster_block_exception"}}'
    assert SearchTransport(url, sigv4=False).request("GET", "/").status == 403


def test_connection_refused_is_a_transport_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(TransportError, match="GET /"):
            SearchTransport(f"http://127.0.0.1:{port}", sigv4=False, timeout=2).request("GET", "/")


def test_a_silent_endpoint_times_out_instead_of_hanging() -> None:
    # A listener that accepts connections and never answers: without a read timeout
    # on every request (the default as well as an explicit one) the call would block.
    import socket
    import threading

    from ddbsearch.core.transport import SearchTransport, TransportError

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        outcomes: list[object] = []

        def call(**kw: float) -> None:
            transport = SearchTransport(f"http://127.0.0.1:{port}", sigv4=False, timeout=0.3)
            try:
                transport.request("GET", "/", **kw)
            except TransportError as exc:
                outcomes.append(exc)

        threads = [
            threading.Thread(target=call, daemon=True),
            threading.Thread(target=call, kwargs={"timeout": 0.3}, daemon=True),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not any(t.is_alive() for t in threads)
        assert len(outcomes) == 2
