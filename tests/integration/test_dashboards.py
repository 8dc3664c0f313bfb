"""`ddbsearch dashboards`' proxy, end to end with real HTTP clients.

Unsigned in front of osmem-server (the local stack's search endpoint), and signed in
front of a small recording server whose received headers are checked against a
signature recomputed with botocore.
"""

from __future__ import annotations

import http.client
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from ddbsearch.errors import AuthError, InputError
from ddbsearch.ops.dashboards import TOKEN_PARAM, DashboardsProxy, Upstream, proxy_for
from ddbsearch.targets import Target

pytestmark = pytest.mark.integration


# -- a recording upstream --------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    url: str
    port: int
    requests: list[Recorded] = field(default_factory=list)
    # /stream sends its first chunk, then waits for this before the second one.
    release: threading.Event = field(default_factory=threading.Event)


PAGE = b"""<!doctype html><html><head><title>through the proxy</title></head>
<body><p id="marker">page-served-upstream</p><script>
fetch('/api/search', {method: 'POST', credentials: 'same-origin',
  headers: {'osd-xsrf': 'true', 'content-type': 'application/json'},
  body: JSON.stringify({query: 'mega test'})})
  .then(r => r.json().then(j => {
    document.getElementById('marker').setAttribute('data-api', r.status + ':' + j.echo);
  }));
</script></body></html>"""


def _recording_handler(rec: Recorder) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rec.requests.append(
                Recorded(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
            if self.path == "/page":
                self._send(200, PAGE, "text/html; charset=utf-8")
            elif self.path == "/stream":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (b"first-part;", b"second-part"):
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(part), part))
                    self.wfile.flush()
                    rec.release.wait(60)
                self.wfile.write(b"0\r\n\r\n")
            elif self.path == "/stall":  # a slow query: no answer until released
                rec.release.wait(60)
                self._send(200, b"{}", "application/json")
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", f"{rec.url}/elsewhere?x=1")
                self.send_header("Set-Cookie", "sid=abc; Domain=upstream.example; Path=/; Secure")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(200, json.dumps({"echo": body.decode()}).encode(), "application/json")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    return Handler


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the proxy hanging up mid-stream is part of the tests


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder(url="", port=0)
    server = _QuietServer(("127.0.0.1", 0), _recording_handler(rec))
    rec.port = server.server_address[1]
    rec.url = f"http://127.0.0.1:{rec.port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def local_proxy(osmem_base: str) -> Iterator[DashboardsProxy]:
    with DashboardsProxy(Upstream.parse(osmem_base, sigv4=False)) as proxy:
        yield proxy


# -- helpers ---------------------------------------------------------------------------


def request(
    proxy: DashboardsProxy,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    cookie: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        sent = dict(headers or {})
        if cookie:
            sent.setdefault("Cookie", f"{proxy.cookie_name}={proxy.token}")
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw(proxy: DashboardsProxy, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def signed_proxy(rec: Recorder, credentials: Any, **kwargs: Any) -> DashboardsProxy:
    upstream = Upstream.parse(rec.url, sigv4=True, region="eu-west-1", credentials=credentials)
    return DashboardsProxy(upstream, **kwargs)


def assert_valid_signature(got: Recorded, rec: Recorder, creds: Credentials) -> None:
    """Recompute the SigV4 signature of what the upstream received, with botocore."""
    auth = got.headers["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={creds.access_key}/")
    assert "/eu-west-1/es/aws4_request" in auth
    fields = dict(part.strip().split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    signed = fields["SignedHeaders"].split(";")
    assert "host" in signed
    assert "x-amz-date" in signed
    if creds.token:
        assert got.headers["x-amz-security-token"] == creds.token
        assert "x-amz-security-token" in signed
    # The query as AWS canonicalizes it: decoded, then strictly re-encoded by botocore's
    # params path (not the raw string botocore would otherwise trust).
    path, _, query = got.path.partition("?")
    request = AWSRequest(
        method=got.method,
        url=rec.url + path,
        data=got.body,
        headers={h: got.headers[h] for h in signed},
        params=dict(parse_qsl(query, keep_blank_values=True)),
    )
    request.context["timestamp"] = got.headers["x-amz-date"]
    signer = SigV4Auth(creds, "es", "eu-west-1")
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    assert fields["Signature"] == expected


def live_threads() -> set[threading.Thread]:
    """The proxy's threads: its server thread and its (non-daemon) connection handlers."""
    return {
        t
        for t in threading.enumerate()
        if t.is_alive() and (not t.daemon or t.name.startswith("dashboards-proxy"))
    }


# -- admission: token, cookie, Host, relay --------------------------------------------


def test_token_url_sets_a_strict_cookie_and_redirects_to_the_clean_path(
    local_proxy: DashboardsProxy,
) -> None:
    assert local_proxy.url.startswith(f"http://127.0.0.1:{local_proxy.port}/?{TOKEN_PARAM}=")
    path = local_proxy.url.split(str(local_proxy.port), 1)[1]
    status, headers, _ = request(local_proxy, "GET", path, cookie=False)
    assert status == 302
    assert headers["location"] == "/"
    cookie = headers["set-cookie"]
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    assert name_value == f"{local_proxy.cookie_name}={local_proxy.token}"
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes)
    # the cookie alone then reaches osmem-server
    status, _, body = request(local_proxy, "GET", "/_cat/indices?v")
    assert status == 200
    assert b"health status index" in body
    # the token also works alone (scripts), and keeps the rest of the query
    status, headers, _ = request(
        local_proxy, "GET", f"/_cat/indices?v&{TOKEN_PARAM}={local_proxy.token}", cookie=False
    )
    assert status == 302
    assert headers["location"] == "/_cat/indices?v="


def test_a_cross_site_navigation_gets_the_cookie_through_a_page_of_ours(
    local_proxy: DashboardsProxy,
) -> None:
    # A Strict cookie set on a redirect that another site (or a file) started is not sent
    # to the redirect's target, so the proxy hops through its own page instead.
    path = local_proxy.url.split(str(local_proxy.port), 1)[1]
    status, headers, body = request(
        local_proxy, "GET", path, cookie=False, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert status == 200
    assert headers["set-cookie"].startswith(f"{local_proxy.cookie_name}={local_proxy.token};")
    assert headers["content-security-policy"] == "default-src 'none'"
    assert b'http-equiv="refresh" content="0;url=/"' in body
    assert local_proxy.token.encode() not in body


def test_the_launcher_file_is_private_and_removed_on_close(osmem_base: str) -> None:
    proxy = DashboardsProxy(Upstream.parse(osmem_base, sigv4=False))
    page = proxy.launcher()
    assert page.stat().st_mode & 0o777 == 0o600
    assert page.parent.stat().st_mode & 0o777 == 0o700
    assert proxy.url.replace("&", "&amp;") in page.read_text()
    assert proxy.launcher() == page
    proxy.close()
    assert not page.parent.exists()


@pytest.mark.parametrize(
    "cookie",
    [None, "ddbsearch_dashboards_1=x", "{name}=wrong-token", "other={token}"],
)
def test_requests_without_the_cookie_are_refused(
    local_proxy: DashboardsProxy, cookie: str | None
) -> None:
    headers = {}
    if cookie is not None:
        headers["Cookie"] = cookie.format(name=local_proxy.cookie_name, token=local_proxy.token)
    for method, body in (("GET", None), ("POST", b"{}"), ("DELETE", None)):
        status, _, text = request(
            local_proxy, method, "/_cat/indices", body=body, headers=headers, cookie=False
        )
        assert status == 403, method
        assert b"ddbsearch dashboards" in text
    status, _, _ = request(
        local_proxy, "GET", f"/?{TOKEN_PARAM}=not-the-token", headers=headers, cookie=False
    )
    assert status == 403


@pytest.mark.parametrize(
    "host", ["evil.example:{port}", "127.0.0.1:1", "localhost", "attacker.test", ""]
)
def test_a_foreign_host_header_is_refused(local_proxy: DashboardsProxy, host: str) -> None:
    # DNS rebinding: a page on another name that resolves to 127.0.0.1 has the wrong Host.
    status, _, _ = request(
        local_proxy, "GET", "/", headers={"Host": host.format(port=local_proxy.port)}
    )
    assert status == 403


def test_two_host_headers_are_refused(local_proxy: DashboardsProxy) -> None:
    good = f"Host: 127.0.0.1:{local_proxy.port}\r\n".encode()
    cookie = f"Cookie: {local_proxy.cookie_name}={local_proxy.token}\r\n".encode()
    answer = raw(
        local_proxy, b"GET / HTTP/1.1\r\n" + good + b"Host: evil.example\r\n" + cookie + b"\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 403")


def test_localhost_and_loopback_hosts_are_accepted(local_proxy: DashboardsProxy) -> None:
    for host in (f"localhost:{local_proxy.port}", f"127.0.0.1:{local_proxy.port}"):
        status, _, _ = request(local_proxy, "GET", "/", headers={"Host": host})
        assert status == 200


def test_no_open_relay(recorder: Recorder) -> None:
    creds = Credentials("AKIDEXAMPLE", "secret")
    with signed_proxy(recorder, creds) as proxy:
        cookie = f"Cookie: {proxy.cookie_name}={proxy.token}\r\n".encode()
        host = f"Host: 127.0.0.1:{proxy.port}\r\n".encode()
        absolute = raw(proxy, b"GET http://example.com/ HTTP/1.1\r\n" + host + cookie + b"\r\n")
        assert absolute.startswith(b"HTTP/1.1 403")
        connect = raw(proxy, b"CONNECT example.com:443 HTTP/1.1\r\n" + host + cookie + b"\r\n")
        assert connect.startswith(b"HTTP/1.1 405")
        # paths that look like hosts stay paths on the one upstream
        status, _, _ = request(proxy, "GET", "//example.com/x")
        assert status == 200
        status, _, _ = request(proxy, "GET", "/@example.com/")
        assert status == 200
    # (http.server folds the leading '//' into one '/')
    assert [r.path for r in recorder.requests] == ["/example.com/x", "/%40example.com/"]
    assert all(r.headers["host"] == f"127.0.0.1:{recorder.port}" for r in recorder.requests)


# -- forwarding ------------------------------------------------------------------------


def test_bodies_reach_the_domain_and_answers_come_back(local_proxy: DashboardsProxy) -> None:
    index = f"dash{uuid.uuid4().hex[:8]}"
    doc = json.dumps({"title": "Final mega test 2"}).encode()
    json_headers = {"Content-Type": "application/json", "osd-xsrf": "true"}
    status, _, _ = request(local_proxy, "PUT", f"/{index}", body=b"{}", headers=json_headers)
    assert status == 200
    try:
        status, _, _ = request(
            local_proxy, "PUT", f"/{index}/_doc/1?refresh=true", body=doc, headers=json_headers
        )
        assert status in (200, 201)
        query = json.dumps({"query": {"match": {"title": "mega"}}}).encode()
        status, _, body = request(
            local_proxy, "POST", f"/{index}/_search", body=query, headers=json_headers
        )
        assert status == 200
        assert json.loads(body)["hits"]["hits"][0]["_source"] == {"title": "Final mega test 2"}
        status, _headers, body = request(local_proxy, "HEAD", f"/{index}")
        assert status == 200
        assert body == b""
    finally:
        status, _, _ = request(local_proxy, "DELETE", f"/{index}")
    assert status == 200
    status, _, _ = request(local_proxy, "HEAD", f"/{index}")
    assert status == 404


def test_headers_hop_by_hop_and_our_cookie_are_stripped(recorder: Recorder) -> None:
    with DashboardsProxy(Upstream.parse(recorder.url, sigv4=False)) as proxy:
        status, _, body = request(
            proxy,
            "POST",
            f"/api/saved_objects?{TOKEN_PARAM}={proxy.token}&type=index-pattern",
            body=b'{"a":1}',
            cookie=False,
            headers={
                "Cookie": f"security_authentication=fgac; {proxy.cookie_name}={proxy.token}",
                "osd-xsrf": "true",
                "Content-Type": "application/json",
                "Connection": "keep-alive, X-Private",
                "X-Private": "not for upstream",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic bm8=",
            },
        )
        assert status == 200
        assert json.loads(body) == {"echo": '{"a":1}'}
        # a chunked request body arrives whole, with a length
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request(
            "PUT",
            "/chunked",
            body=iter([b'{"part":', b'"one"}']),
            headers={"Cookie": f"{proxy.cookie_name}={proxy.token}"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        assert resp.status == 200
        assert json.loads(resp.read()) == {"echo": '{"part":"one"}'}
        conn.close()
    first, second = recorder.requests
    assert first.path == "/api/saved_objects?type=index-pattern"
    assert first.headers["cookie"] == "security_authentication=fgac"
    assert first.headers["osd-xsrf"] == "true"
    for gone in ("x-private", "keep-alive", "proxy-authorization", "authorization"):
        assert gone not in first.headers
    assert proxy.token not in json.dumps(first.headers)
    assert second.body == b'{"part":"one"}'
    assert second.headers["content-length"] == "14"
    assert "transfer-encoding" not in second.headers


def test_responses_stream_without_buffering(recorder: Recorder) -> None:
    with DashboardsProxy(Upstream.parse(recorder.url, sigv4=False)) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("GET", "/stream", headers={"Cookie": f"{proxy.cookie_name}={proxy.token}"})
        resp = conn.getresponse()
        assert resp.getheader("Transfer-Encoding") == "chunked"
        # The upstream holds its second chunk back until we have seen the first one.
        assert resp.read1(65536) == b"first-part;"
        recorder.release.set()
        assert resp.read() == b"second-part"
        conn.close()


def test_upstream_redirects_and_cookies_are_rewritten_for_the_browser(recorder: Recorder) -> None:
    with DashboardsProxy(Upstream.parse(recorder.url, sigv4=False)) as proxy:
        status, headers, _ = request(proxy, "GET", "/redirect")
    assert status == 302
    assert headers["location"] == "/elsewhere?x=1"
    assert headers["set-cookie"] == "sid=abc; Path=/; Secure"


def test_an_unreachable_domain_is_a_502_not_a_crash() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with DashboardsProxy(Upstream.parse(f"http://127.0.0.1:{dead}", sigv4=False)) as proxy:
        status, _, body = request(proxy, "GET", "/")
        assert status == 502
        assert b"did not answer" in body
        status, _, _ = request(proxy, "GET", "/")  # and it keeps serving
        assert status == 502


# -- signing ---------------------------------------------------------------------------


def test_requests_are_signed_with_the_operators_session_credentials(recorder: Recorder) -> None:
    creds = Credentials("ASIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token="session-token-1")
    with signed_proxy(recorder, creds) as proxy:
        status, _, _ = request(
            proxy,
            "POST",
            "/_dashboards/api/console/proxy?path=_search&method=POST",
            body=b'{"query":{"match_all":{}}}',
            headers={
                "Content-Type": "application/json",
                "osd-xsrf": "true",
                "Authorization": "Basic ZXZpbDpldmls",  # never reaches the domain
                "X-Amz-Security-Token": "forged",
            },
        )
        assert status == 200
        # Dashboards' rison URLs: raw ( ) ! : ' , and + for spaces, an escaped slash
        status, _, _ = request(
            proxy,
            "GET",
            "/_dashboards/app/discover?_g=(filters:!(),time:(from:now-15m,to:'now'))"
            "&q=mega+test&id=a%2fb&pretty",
        )
        assert status == 200
        status, _, _ = request(proxy, "GET", "/tx/_doc/a%2Fb(1)")
        assert status == 200
    assert len(recorder.requests) == 3
    assert recorder.requests[1].path == (
        "/_dashboards/app/discover?_g=%28filters%3A%21%28%29%2Ctime%3A%28from%3Anow-15m%2C"
        "to%3A%27now%27%29%29&q=mega%20test&id=a%2Fb&pretty"
    )
    assert recorder.requests[2].path == "/tx/_doc/a%2Fb%281%29"
    for got in recorder.requests:
        assert_valid_signature(got, recorder, creds)
    assert recorder.requests[0].headers["osd-xsrf"] == "true"


def test_expiring_credentials_are_refreshed_between_requests(recorder: Recorder) -> None:
    issued: list[Credentials] = []

    def refresh() -> dict[str, str]:
        n = len(issued) + 1
        issued.append(Credentials(f"ASIAKEY{n}", f"secret{n}", f"token{n}"))
        # Expiring inside botocore's mandatory refresh window: every use refreshes.
        expiry = datetime.now(timezone.utc) + timedelta(minutes=5)
        return {
            "access_key": f"ASIAKEY{n}",
            "secret_key": f"secret{n}",
            "token": f"token{n}",
            "expiry_time": expiry.isoformat(),
        }

    creds = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test-provider")
    with signed_proxy(recorder, creds) as proxy:
        for _ in range(3):
            status, _, _ = request(proxy, "GET", "/_cluster/health")
            assert status == 200
    keys = [
        r.headers["authorization"].split("Credential=")[1].split("/")[0] for r in recorder.requests
    ]
    assert len(set(keys)) == 3  # each request signed with the credentials of its time
    by_key = {c.access_key: c for c in issued}
    for got, key in zip(recorder.requests, keys, strict=True):
        assert_valid_signature(got, recorder, by_key[key])


def test_credentials_that_cannot_be_refreshed_give_502(recorder: Recorder) -> None:
    class Broken:
        def get_frozen_credentials(self) -> Any:
            return None

    with signed_proxy(recorder, Broken()) as proxy:
        status, _, body = request(proxy, "GET", "/")
    assert status == 502
    assert b"cannot sign" in body
    assert recorder.requests == []


def test_proxy_for_targets(
    osmem_base: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    local = Target(
        kind="local", name="local", region="us-east-1", table="T", index="t",
        search_endpoint=osmem_base, sigv4=False,
    )  # fmt: skip
    proxy = proxy_for(local)
    assert proxy.start_path == "/"
    assert not proxy.upstream.sigv4
    proxy.close()
    aws = Target(
        kind="aws", name="prod", region="eu-west-1", table="T", index="t",
        search_endpoint="search-prod-abc.eu-west-1.es.amazonaws.com",
        dashboards_url="https://search-prod-abc.eu-west-1.es.amazonaws.com/_dashboards",
    )  # fmt: skip
    proxy = proxy_for(aws)  # conftest's environment credentials
    assert proxy.upstream.base_url == "https://search-prod-abc.eu-west-1.es.amazonaws.com"
    assert proxy.upstream.region == "eu-west-1"
    assert proxy.start_path == "/_dashboards"
    assert proxy.url.startswith(f"http://127.0.0.1:{proxy.port}/_dashboards?{TOKEN_PARAM}=")
    with pytest.raises(InputError, match="cannot listen"):
        proxy_for(aws, port=proxy.port)
    proxy.close()
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    with pytest.raises(AuthError, match="no AWS credentials"):
        proxy_for(aws)


# -- stopping --------------------------------------------------------------------------


def test_close_ends_open_connections_threads_and_the_port(recorder: Recorder) -> None:
    before = live_threads()
    proxy = DashboardsProxy(Upstream.parse(recorder.url, sigv4=False)).start()
    port = proxy.port
    cookie = {"Cookie": f"{proxy.cookie_name}={proxy.token}"}
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a keep-alive, idle
    idle.request("GET", "/_cat/indices", headers=cookie)
    idle.getresponse().read()
    busy = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # mid-stream
    busy.request("GET", "/stream", headers=cookie)
    resp = busy.getresponse()
    assert resp.read1(65536) == b"first-part;"
    waiting = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # awaits the domain
    waiting.request("GET", "/stall", headers=cookie)
    deadline = time.monotonic() + 10
    while not any(r.path == "/stall" for r in recorder.requests):
        assert time.monotonic() < deadline
        time.sleep(0.01)  # another thread's progress: poll it
    assert len(live_threads() - before) >= 4  # server thread + three handler threads

    # returns although the upstream holds its second chunk back and has not answered /stall
    proxy.close()
    assert live_threads() - before == set()
    recorder.release.set()
    with socket.socket() as s:  # the port is free again, for a listener like the proxy
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises((http.client.HTTPException, OSError)):
        waiting.getresponse()  # cut, not left hanging
    idle.close()
    busy.close()
    waiting.close()


# -- a real browser --------------------------------------------------------------------


@pytest.mark.parametrize("opened", ["url", "launcher"])
def test_headless_chromium_loads_a_page_and_its_api_calls_through_the_proxy(
    recorder: Recorder, tmp_path: Path, opened: str
) -> None:
    """The printed URL pasted into a browser, and the launcher file the CLI opens."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium package is not installed (apt-get install chromium)")
    creds = Credentials("ASIABROWSER", "browser-secret", token="browser-token")
    with signed_proxy(recorder, creds, start_path="/page") as proxy:
        start = proxy.url if opened == "url" else proxy.launcher().as_uri()
        result = subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=10000", "--dump-dom", start,
            ],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert "page-served-upstream" in dom, dom  # the cookie set by the token URL was sent
    # the page's own POST (with the cookie, from the page's origin) came back
    assert 'data-api="200:{&quot;query&quot;:&quot;mega test&quot;}"' in dom, dom
    page, api = [r for r in recorder.requests if r.path in ("/page", "/api/search")]
    assert page.method == "GET"
    assert api.method == "POST"
    assert api.headers["osd-xsrf"] == "true"
    assert json.loads(api.body) == {"query": "mega test"}
    for got in (page, api):
        assert_valid_signature(got, recorder, creds)
        assert proxy.token not in json.dumps(got.headers)  # neither cookie nor token leaks
