"""A local, SigV4-signing reverse proxy to the search domain, for OpenSearch Dashboards.

A domain that only accepts SigV4-signed requests from listed principals cannot be
opened in a browser. Instead of opening the domain to ``Principal: "*"``, the operator
runs this proxy: it listens on 127.0.0.1 only, forwards every request to the one
domain endpoint of the target, and signs each with the operator's credentials.

Because every local user (and every web page in the browser) can reach a loopback
port, the proxy admits only requests that carry a random secret: the first URL holds
it as a query parameter; the proxy answers that URL with an ``HttpOnly;
SameSite=Strict`` cookie and a redirect to the same path without it. Every other
request needs the cookie (or the parameter). Requests whose ``Host`` is not the
proxy's own loopback address (DNS rebinding) and proxy-style requests (absolute URI,
``CONNECT``) are refused, so the proxy is never a relay to any other host.

Built on :class:`http.server.ThreadingHTTPServer` (one thread per connection) and
urllib3 for the upstream side; responses are streamed, never held in memory.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import http.server
import logging
import os
import re
import secrets
import shutil
import socket
import socketserver
import string
import tempfile
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

import urllib3
import urllib3.connection

from ddbsearch.errors import AuthError, ConfigurationError, InputError
from ddbsearch.targets import Target

TOKEN_PARAM = "ddbsearch_token"  # noqa: S105 (a parameter name, not a secret)
ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE"})
# OpenSearch's default http.max_content_length: nothing larger is accepted upstream anyway.
MAX_REQUEST_BODY = 100 * 1024 * 1024
_CHUNK = 64 * 1024
# RFC 9110 7.6.1; plus Proxy-Connection, which some clients still send.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded: the upstream Host is ours to set, signing headers are recomputed, the
# body is sent whole (http.server has answered any 100-continue already).
_DROP_REQUEST = frozenset(
    {
        "host",
        "content-length",
        "expect",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    }
)
_SIGNED_HEADERS = frozenset({"content-type"})
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_log = logging.getLogger(__name__)
_COOKIE_DOMAIN = re.compile(r";\s*domain=[^;]*", re.IGNORECASE)


def proxy_for(
    target: Target, *, port: int = 0, credentials: CredentialProvider | None = None
) -> DashboardsProxy:
    """The proxy for a target: Dashboards of the AWS domain, or the local search endpoint.

    On AWS the credentials are the target's profile (botocore's chain: environment,
    SSO, assume-role, instance role), resolved again for every request so that
    temporary credentials are refreshed when they expire. The local emulator is
    not signed, like every other local call. Not started: call ``start()``.
    """
    if not target.sigv4:
        return DashboardsProxy(Upstream.parse(target.search_endpoint, sigv4=False), port=port)
    if credentials is None:
        from ddbsearch.clients import session

        credentials = session(target).get_credentials()
    start_path = urlsplit(target.dashboards_url or "").path or "/_dashboards/"
    upstream = Upstream.parse(
        target.search_endpoint, sigv4=True, region=target.region, credentials=credentials
    )
    return DashboardsProxy(upstream, port=port, start_path=start_path)


class CredentialProvider(Protocol):
    """What signs: botocore ``Credentials``/``RefreshableCredentials`` fit."""

    def get_frozen_credentials(self) -> Any: ...


@dataclass(frozen=True)
class Upstream:
    """The one endpoint the proxy talks to, and how to sign for it."""

    base_url: str  # scheme://host[:port], no path
    sigv4: bool
    region: str | None = None
    service: str = "es"
    credentials: CredentialProvider | None = None

    @classmethod
    def parse(cls, endpoint: str, **kwargs: Any) -> Upstream:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"search endpoint {endpoint!r} is not an http(s) URL")
        return cls(base_url=f"{parts.scheme}://{parts.netloc}", **kwargs)


class DashboardsProxy:
    """The proxy server. ``start()`` serves on a background thread; ``close()`` stops it.

    ``url`` is the first URL to open (it carries the token); ``port`` the bound port.
    Usable as a context manager.
    """

    def __init__(
        self,
        upstream: Upstream,
        *,
        port: int = 0,
        start_path: str = "/",
        token: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        if upstream.sigv4:
            if upstream.credentials is None:
                raise AuthError(
                    "no AWS credentials to sign Dashboards requests with",
                    hint="configure credentials (aws configure / AWS_PROFILE / --profile)",
                )
            if not upstream.region:
                raise ConfigurationError("no AWS region to sign Dashboards requests for")
        if not start_path.startswith("/"):
            raise ConfigurationError(f"start path {start_path!r} must start with '/'")
        self.upstream = upstream
        self.token = token or secrets.token_urlsafe(32)
        self.start_path = start_path
        self.timeout = timeout
        self._closing = threading.Event()
        self._upstream_conns: weakref.WeakSet[Any] = weakref.WeakSet()
        self._pool = _tracking_pool(self._upstream_conns, self._closing, timeout)
        try:
            self._server = _Server(("127.0.0.1", port), _Handler, self)
        except OSError as exc:
            raise InputError(
                f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})",
                hint="pick another --port, or leave it out for a free one",
            ) from None
        self.port: int = self._server.server_address[1]
        self.cookie_name = f"ddbsearch_dashboards_{self.port}"  # cookies ignore ports
        self.allowed_hosts = frozenset({f"127.0.0.1:{self.port}", f"localhost:{self.port}"})
        self._thread: threading.Thread | None = None
        self._launcher: Path | None = None

    @property
    def url(self) -> str:
        """The first URL: opening it sets the cookie, then redirects to ``start_path``."""
        sep = "&" if "?" in self.start_path else "?"
        return f"http://127.0.0.1:{self.port}{self.start_path}{sep}{TOKEN_PARAM}={self.token}"

    def launcher(self) -> Path:
        """A page that forwards the browser to :attr:`url`, for opening the browser.

        A URL given to a browser on its command line is readable by every local user
        (``ps``) for as long as the browser runs; a path to a file only its owner can
        read is not. The file is removed by :meth:`close`.
        """
        if self._launcher is None:
            folder = Path(tempfile.mkdtemp(prefix="ddbsearch-dashboards-"))  # 0700
            page = folder / "open.html"
            fd = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            target = html.escape(self.url, quote=True)
            with os.fdopen(fd, "w") as out:
                out.write(
                    '<!doctype html><meta name="referrer" content="no-referrer">'
                    f'<meta http-equiv="refresh" content="0;url={target}">'
                    f'<a href="{target}">Open OpenSearch Dashboards</a>\n'
                )
            self._launcher = page
        return self._launcher

    def start(self) -> DashboardsProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"dashboards-proxy-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, cut open connections, join every handler thread, free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        # Wake every handler, wherever it waits: on its browser (keep-alive, streaming)
        # or on the domain (a slow query); connections made from now on are cut at once.
        self._closing.set()
        self._server.close_connections()
        for conn in list(self._upstream_conns):
            _cut(conn)
        self._server.server_close()  # joins the handler threads (block_on_close)
        self._pool.clear()
        if self._launcher is not None:
            shutil.rmtree(self._launcher.parent, ignore_errors=True)
            self._launcher = None

    def __enter__(self) -> DashboardsProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the handler ------------------------------------------------------------

    def authorised(self, cookie_header: str | None, query_token: str | None) -> bool:
        if query_token is not None and hmac.compare_digest(query_token, self.token):
            return True
        for name, value in _cookies(cookie_header):
            if name == self.cookie_name and hmac.compare_digest(value, self.token):
                return True
        return False

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> urllib3.HTTPResponse:
        if self.upstream.sigv4:
            path = sigv4_target(path)
            headers = self._sign(method, self.upstream.base_url + path, headers, body)
        return self._pool.urlopen(
            method,
            self.upstream.base_url + path,
            body=body,
            headers=headers,
            redirect=False,
            preload_content=False,
            decode_content=False,
        )

    def _sign(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        assert self.upstream.credentials is not None
        # Per request: refreshable credentials renew themselves here before they expire.
        frozen = self.upstream.credentials.get_frozen_credentials()
        if frozen is None or not getattr(frozen, "access_key", None):
            raise AuthError("the AWS credentials could not be refreshed")
        # Sign the host, the time, the token, the body's hash and its type; the browser's
        # other headers travel unsigned, so nothing on the way can break the signature.
        signed = {k: v for k, v in headers.items() if k in _SIGNED_HEADERS}
        request = AWSRequest(method=method, url=url, data=body or b"", headers=signed)
        SigV4Auth(frozen, self.upstream.service, self.upstream.region or "").add_auth(request)
        return {**headers, **dict(request.headers.items())}

    def local_location(self, location: str) -> str:
        """An upstream redirect to itself, rewritten to point back through the proxy."""
        if location.startswith(self.upstream.base_url + "/"):
            return location[len(self.upstream.base_url) :]
        return location


def _tracking_pool(
    live: weakref.WeakSet[Any], closing: threading.Event, timeout: float
) -> urllib3.PoolManager:
    """A pool whose every upstream connection ``close()`` can cut, even mid-response."""

    def connect(conn: Any, base: Any) -> None:
        base.connect(conn)
        live.add(conn)
        if closing.is_set():  # raced with close(): do not start a new wait
            _cut(conn)

    class HTTPConnection(urllib3.connection.HTTPConnection):  # type: ignore[misc]
        def connect(self) -> None:
            connect(self, urllib3.connection.HTTPConnection)

    class HTTPSConnection(urllib3.connection.HTTPSConnection):  # type: ignore[misc]
        def connect(self) -> None:
            connect(self, urllib3.connection.HTTPSConnection)

    class HTTPPool(urllib3.HTTPConnectionPool):  # type: ignore[misc]
        ConnectionCls = HTTPConnection

    class HTTPSPool(urllib3.HTTPSConnectionPool):  # type: ignore[misc]
        ConnectionCls = HTTPSConnection

    pool = urllib3.PoolManager(
        num_pools=1,
        maxsize=16,
        block=False,
        retries=False,  # a browser retries what it needs; never resend a POST ourselves
        timeout=urllib3.Timeout(connect=10.0, read=timeout),
    )
    pool.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}
    return pool


def _cut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def sigv4_target(target: str) -> str:
    """``path?query`` in the one spelling SigV4 and the receiving service agree on.

    botocore signs the query string as given, while AWS decodes and re-encodes it
    before checking (RFC 3986 unreserved characters only); urllib3 also rewrites some
    characters. Browsers leave ``( ) ! : ' ,`` raw (Dashboards' rison URLs are full of
    them) and send ``+`` for spaces, so both parts are re-encoded here: every octet but
    the unreserved ones (and ``/`` in the path) becomes ``%XX``, existing escapes are
    kept (upper-cased, so ``%2F`` stays an escaped slash), ``+`` in the query becomes
    ``%20``, which OpenSearch reads as the same space.
    """
    path, sep, query = target.partition("?")
    out = _encode(path, keep="/")
    if sep:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            pairs.append(
                _encode(key.replace("+", "%20"), keep="")
                + eq
                + _encode(value.replace("+", "%20"), keep="")
            )
        out += "?" + "&".join(pairs)
    return out


def _encode(text: str, *, keep: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "%" and _ESCAPE.match(text, i):
            out.append(text[i : i + 3].upper())
            i += 3
            continue
        char = text[i]
        if char in _UNRESERVED or char in keep:
            out.append(char)
        else:  # http.server decodes the request line as latin-1: these are the raw bytes
            out.append("".join(f"%{b:02X}" for b in char.encode("latin-1", "replace")))
        i += 1
    return "".join(out)


def _cookies(header: str | None) -> Iterable[tuple[str, str]]:
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            yield name, value


def _connection_tokens(header: str | None) -> set[str]:
    """Headers a ``Connection`` header names are hop-by-hop too (RFC 9110 7.6.1)."""
    return {h.strip().lower() for h in (header or "").split(",") if h.strip()}


def _without_cookie(header: str, name: str) -> str:
    return "; ".join(
        part.strip()
        for part in header.split(";")
        if part.strip() and part.strip().partition("=")[0] != name
    )


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins every handler thread

    def __init__(self, address: tuple[str, int], handler: Any, proxy: DashboardsProxy) -> None:
        self.proxy = proxy
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # SO_REUSEADDR (as TCPServer sets it): a restart on the same --port is not blocked
        # by TIME_WAIT, and on Linux a port another listener holds still fails to bind.
        # Skips HTTPServer's getfqdn(), a DNS lookup we do not need.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser that goes away mid-answer is routine; socketserver would print it.
        _log.debug("connection from %s ended with an error", client_address[0], exc_info=True)

    def close_connections(self) -> None:
        """Wake every handler blocked on a keep-alive or streaming socket so it can exit."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses for the browser
    server_version = "ddbsearch-dashboards"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.proxy.timeout)  # idle keep-alives end

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the library never prints; URLs could carry the token

    # Every method goes through one place; unsupported ones get 405 from _handle.
    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET
    do_CONNECT = do_OPTIONS = do_PATCH = do_TRACE = do_GET

    def _handle(self) -> None:
        proxy = self.server.proxy
        if self.command not in ALLOWED_METHODS:
            self._refuse(405, f"method {self.command} is not proxied")
            return
        if not self.path.startswith("/"):  # absolute-form or authority-form: a relay request
            self._refuse(403, "only requests for this proxy's own paths are accepted")
            return
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0].lower() not in proxy.allowed_hosts:
            self._refuse(403, "wrong Host header")
            return
        # Split by hand: urlsplit would read a '//host/...' path as a host.
        path, _, query_string = self.path.partition("#")[0].partition("?")
        query = parse_qsl(query_string, keep_blank_values=True)
        tokens = [v for k, v in query if k == TOKEN_PARAM]
        if not proxy.authorised(self.headers.get("Cookie"), tokens[0] if tokens else None):
            self._refuse(403, "open the URL printed by 'ddbsearch dashboards' first")
            return
        if tokens:
            clean_query = urlencode([(k, v) for k, v in query if k != TOKEN_PARAM])
            clean_path = f"{path}?{clean_query}" if clean_query else path
        else:
            clean_path = self.path.partition("#")[0]  # untouched, byte for byte
        if tokens and self.command in ("GET", "HEAD"):
            self._login(clean_path)
            return
        try:
            body = self._read_body()
        except ValueError as exc:
            self._refuse(400, str(exc))
            return
        self._proxy(clean_path, body)

    def _login(self, clean_path: str) -> None:
        proxy = self.server.proxy
        # A SameSite=Strict cookie does not ride on a redirect of a navigation another
        # site started (the launcher file is one): hop through a page of our own then.
        cross_site = self.headers.get("Sec-Fetch-Site", "none") not in ("none", "same-origin")
        body = b""
        if cross_site:
            target = html.escape(clean_path, quote=True)
            body = (
                '<!doctype html><meta http-equiv="refresh" content="0;url='
                f'{target}"><a href="{target}">Continue to OpenSearch Dashboards</a>\n'
            ).encode()
        self.send_response(200 if cross_site else 302)
        self.send_header(
            "Set-Cookie",
            f"{proxy.cookie_name}={proxy.token}; Path=/; HttpOnly; SameSite=Strict",
        )
        if cross_site:
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", "default-src 'none'")
        else:
            self.send_header("Location", clean_path)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        try:
            size = int(length)
        except ValueError:
            raise ValueError("bad Content-Length") from None
        if size < 0 or size > MAX_REQUEST_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ValueError("bad chunked request body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers: dropped
                return bytes(out)
            if len(out) + size > MAX_REQUEST_BODY:
                raise ValueError("request body too large")
            out += self.rfile.read(size)
            self.rfile.readline(16)  # CRLF after the chunk

    def _upstream_headers(self) -> dict[str, str]:
        proxy = self.server.proxy
        named_in_connection = _connection_tokens(self.headers.get("Connection"))
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            lower = name.lower()
            if lower in _HOP_BY_HOP or lower in _DROP_REQUEST or lower in named_in_connection:
                continue
            if lower == "authorization" and proxy.upstream.sigv4:
                continue  # replaced by the signature
            kept = _without_cookie(value, proxy.cookie_name) if lower == "cookie" else value
            if not kept:
                continue
            if lower in headers:
                sep = "; " if lower == "cookie" else ", "
                headers[lower] = f"{headers[lower]}{sep}{kept}"
            else:
                headers[lower] = kept
        return headers

    def _proxy(self, path: str, body: bytes | None) -> None:
        proxy = self.server.proxy
        headers = self._upstream_headers()
        if body is not None:
            headers["content-length"] = str(len(body))
        try:
            upstream = proxy.forward(self.command, path, headers, body)
        except AuthError as exc:
            self._refuse(502, f"cannot sign the request: {exc}")
            return
        except urllib3.exceptions.HTTPError as exc:
            self._refuse(502, f"the search domain did not answer ({type(exc).__name__})")
            return
        try:
            self._relay(upstream)
        finally:
            upstream.release_conn()

    def _relay(self, upstream: urllib3.HTTPResponse) -> None:
        self.send_response_only(upstream.status, upstream.reason)
        for name, value in self._response_headers(upstream):
            self.send_header(name, value)
        length = upstream.headers.get("Content-Length")
        no_body = self.command == "HEAD" or upstream.status in (204, 304) or upstream.status < 200
        chunked = length is None and not no_body
        if length is not None:
            self.send_header("Content-Length", length)
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if no_body:
            return
        try:
            # Raw bytes as they arrive (still gzip'd if they were): nothing is buffered.
            for chunk in upstream.stream(_CHUNK, decode_content=False):
                if chunk:
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                    self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (urllib3.exceptions.HTTPError, OSError):
            # Cut upstream or the browser went away: closing is how the client learns it.
            self.close_connection = True

    def _response_headers(self, upstream: urllib3.HTTPResponse) -> list[tuple[str, str]]:
        proxy = self.server.proxy
        named_in_connection = _connection_tokens(upstream.headers.get("Connection"))
        out: list[tuple[str, str]] = []
        for name, value in upstream.headers.iteritems():
            lower = name.lower()
            if lower in _HOP_BY_HOP or lower in named_in_connection or lower == "content-length":
                continue
            if lower == "location":
                out.append((name, proxy.local_location(value)))
            elif lower == "set-cookie":  # the browser sees our host, not the domain's
                out.append((name, _COOKIE_DOMAIN.sub("", value)))
            else:
                out.append((name, value))
        return out

    def _refuse(self, status: int, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # A refused request's body may still be unread: the connection cannot be reused.
        self.close_connection = True
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
