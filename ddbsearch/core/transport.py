"""HTTP to the search domain: urllib3 with a pooled connection, SigV4 by botocore.

Why not opensearch-py inside the Lambda: since 3.x it depends on grpcio and
protobuf (compiled, large) and imports requests and asyncio at start-up, which
would break the pure-Python zip and double the cold start. botocore's SigV4Auth
is the signer opensearch-py's own AWS auth wraps, and both botocore and urllib3
come with the Lambda Python runtime, so the zip carries none of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3

from ddbsearch.core.errors import AuthError, ConfigurationError


class TransportError(Exception):
    """The request did not get an HTTP answer (connection refused or reset, timeout)."""


class AccessDenied(AuthError):
    """The domain answered 401/403: this identity may not do what was asked.

    ``error_type`` says which gate refused, so the hint can name the fix:
    ``security_exception`` (fine-grained access control: the identity's IAM role
    is not mapped to an OpenSearch role allowed to do this), ``access_denied``
    (the domain's resource-based access policy, or the identity's IAM policy,
    does not allow the HTTP action on this path) or ``unauthorized`` (401: the
    signature or credentials were not accepted). The message never quotes the
    domain's answer: a security_exception names users and backend roles.
    """

    def __init__(self, status: int, error_type: str, message: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_type = error_type


_ACCESS_HINTS = {
    "security_exception": (
        "fine-grained access control denied it (security_exception)",
        "map this identity's IAM role to an OpenSearch role that may do this "
        "(security plugin role mapping, backend role = the role ARN)",
    ),
    "access_denied": (
        "the access policy does not allow it",
        "allow this identity's role in the domain access policy "
        "(es:ESHttp* actions on the index path)",
    ),
    "unauthorized": (
        "the credentials were not accepted",
        "check the credentials, the region and that requests are SigV4-signed for service es",
    ),
}


def access_denied(status: int, body: bytes) -> AccessDenied:
    """Classify a 401/403 answer by which gate refused it (never quoting the answer)."""
    if status == 401:
        kind = "unauthorized"
    elif b"security_exception" in body:
        kind = "security_exception"
    else:
        # IAM / resource policy denials ("User: ... is not authorized to perform:
        # es:ESHttpPost ...") and anything else a 403 says.
        kind = "access_denied"
    what, hint = _ACCESS_HINTS[kind]
    return AccessDenied(
        status, kind, f"the search endpoint refused the request ({status}): {what}", hint
    )


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}


class SearchTransport:
    """Sends requests to one OpenSearch endpoint, signed with SigV4 when asked to.

    Credentials come from botocore's default chain (on Lambda: the function role,
    with its session token) and are re-read on every request, so rotated
    credentials are picked up without a restart.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        region: str | None = None,
        sigv4: bool = True,
        timeout: float = 30.0,
        service: str = "es",
        credentials: Any = None,
    ) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"search endpoint {endpoint!r} is not an http(s) URL")
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=4,
            retries=False,  # retries are ours: per item, with backoff, within a deadline
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        )
        self._signer: Any = None
        if sigv4:
            self._signer = _SigV4Signer(region, service, credentials)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Response:
        url = self.base_url + path
        headers = {"Content-Type": content_type} if body is not None else {}
        if self._signer is not None:
            headers = self._signer.sign(method, url, body, headers)
        # Never pass timeout=None: urllib3 reads it as "wait forever", overriding the
        # pool's timeout, and a domain that accepts a connection but never answers
        # would hang the invocation until Lambda kills it.
        limit = urllib3.Timeout(
            connect=min(timeout or self.timeout, 5.0), read=timeout or self.timeout
        )
        try:
            resp = self._pool.request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=limit,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(f"{method} {path}: {type(exc).__name__}") from None
        if resp.status in (401, 403) and not _is_cluster_block(resp.data):
            raise access_denied(resp.status, resp.data)
        return Response(resp.status, resp.data)

    def json(self, method: str, path: str, payload: Any = None) -> Response:
        body = None if payload is None else json.dumps(payload).encode()
        return self.request(method, path, body)


def _is_cluster_block(body: bytes) -> bool:
    # A 403 with cluster_block_exception is a full disk / read-only index, not auth.
    return b"cluster_block_exception" in body


class _SigV4Signer:
    def __init__(self, region: str | None, service: str, credentials: Any) -> None:
        # Imported here: the local emulator path and the CLI's unsigned use pay nothing.
        import botocore.session
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        self._auth_cls = SigV4Auth
        self._request_cls = AWSRequest
        session = botocore.session.get_session()
        self._credentials = credentials if credentials is not None else session.get_credentials()
        if self._credentials is None:
            raise AuthError(
                "no AWS credentials to sign search requests with",
                hint="configure credentials (AWS_PROFILE, environment or instance role)",
            )
        self._region = region or session.get_config_variable("region")
        if not self._region:
            raise ConfigurationError("no AWS region to sign search requests for (set AWS_REGION)")
        self._service = service

    def sign(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> dict[str, str]:
        creds: Any = self._credentials
        # Refreshable credentials refresh themselves here when they are about to expire.
        frozen = (
            creds.get_frozen_credentials() if hasattr(creds, "get_frozen_credentials") else creds
        )
        request = self._request_cls(method=method, url=url, data=body, headers=headers)
        self._auth_cls(frozen, self._service, self._region).add_auth(request)
        return dict(request.headers.items())
