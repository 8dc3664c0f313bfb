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


# --------------------------------------------------------------------------- --profile


def _header(request: dict[str, Any], name: str) -> str | None:
    """A header, whatever case the signer wrote it in."""
    return {k.lower(): v for k, v in request["headers"].items()}.get(name.lower())


def _profiles(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> None:
    """A static profile with a session token, and an assume-role profile on top of it."""
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile team]\nregion = eu-west-1\n"
        "[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n"
        "source_profile = team\nrole_session_name = alice\nregion = eu-west-1\n"
    )
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        "[team]\naws_access_key_id = AKIATEAMKEY\naws_secret_access_key = teamsecret\n"
        "aws_session_token = team-session-token\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # STS AssumeRole goes to moto


def _deployed(url: str) -> None:
    target = Target(
        kind="aws", name="profiled", region="eu-west-1", table="T", index="idx",
        search_endpoint=url, sigv4=True, key_names=("pk",),
    )  # fmt: skip
    save_aws_target(target)
    set_current("aws", "profiled")


@pytest.mark.integration
def test_profile_signs_searches_with_its_credentials_and_session_token(
    domain: tuple[str, list[dict[str, Any]]],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
) -> None:
    url, seen = domain
    _profiles(tmp_path, monkeypatch, moto_endpoint)
    _deployed(url)
    result = runner.invoke(app, ["search", "mega", "--profile", "team"])
    assert result.exit_code == 0, result.stderr
    for request in seen:
        assert request["headers"]["Authorization"].startswith(
            "AWS4-HMAC-SHA256 Credential=AKIATEAMKEY/"
        )
        assert _header(request, "X-Amz-Security-Token") == "team-session-token"

    # AWS_PROFILE works the same way, as in the AWS CLI.
    seen.clear()
    monkeypatch.setenv("AWS_PROFILE", "team")
    assert runner.invoke(app, ["search", "mega"]).exit_code == 0
    assert _header(seen[-1], "X-Amz-Security-Token") == "team-session-token"


@pytest.mark.integration
def test_an_assume_role_profile_signs_with_the_role_session(
    domain: tuple[str, list[dict[str, Any]]],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
) -> None:
    import boto3

    from ddbsearch import clients
    from ddbsearch.targets import resolve_target

    url, seen = domain
    _profiles(tmp_path, monkeypatch, moto_endpoint)
    boto3.client(
        "iam", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
    ).create_role(RoleName="ops", AssumeRolePolicyDocument="{}")  # fmt: skip
    _deployed(url)
    result = runner.invoke(app, ["search", "mega", "--profile", "ops"])
    assert result.exit_code == 0, result.stderr
    auth = seen[-1]["headers"]["Authorization"]
    # moto's STS answers AssumeRole with temporary (ASIA...) keys and a session token.
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=ASIA")
    assert "AKIATEAMKEY" not in auth
    token = _header(seen[-1], "X-Amz-Security-Token")
    assert token
    assert token != "team-session-token"

    # The core transport (backfill, redrive) signs with the same role session.
    seen.clear()
    target = resolve_target(profile="ops")
    assert target.profile == "ops"
    clients.search_transport(target).request("GET", "/idx")
    assert seen[-1]["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIA")
    assert _header(seen[-1], "X-Amz-Security-Token")


def test_every_command_that_talks_to_aws_takes_profile() -> None:
    import typer

    group = typer.main.get_command(app)
    for name in (
        "put", "backfill", "search", "status", "redrive", "dashboards", "deploy", "destroy",
    ):  # fmt: skip
        command = group.commands[name]  # type: ignore[attr-defined]
        options = {opt for p in command.params for opt in getattr(p, "opts", [])}
        assert "--profile" in options, name
        param = next(p for p in command.params if "--profile" in getattr(p, "opts", []))
        assert param.envvar == "AWS_PROFILE", name
