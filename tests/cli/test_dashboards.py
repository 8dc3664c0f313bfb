"""`ddbsearch dashboards` as an operator runs it: a real process, stopped by a signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.targets import Target, local_state_file, save_aws_target, set_current

pytestmark = pytest.mark.integration


@pytest.fixture
def local_target(osmem_base: str) -> Target:
    """The local stack as `deploy --local` records it, reduced to its search endpoint."""
    target = Target(
        kind="local", name="local", region="us-east-1", table="T", index="t",
        search_endpoint=osmem_base, aws_endpoint="http://127.0.0.1:1", sigv4=False,
    )  # fmt: skip
    local_state_file().parent.mkdir(parents=True, exist_ok=True)
    local_state_file().write_text(json.dumps({"target": target.to_json()}))
    set_current("local", "local")
    return target


def start(
    *args: str, env: dict[str, str] | None = None, quiet: bool = False
) -> subprocess.Popen[str]:
    cli = [sys.executable, "-c", "from ddbsearch.cli import main; main()"]
    return subprocess.Popen(
        [*cli, *(["--quiet"] if quiet else []), "dashboards", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or os.environ.copy(),
    )


@pytest.fixture
def running(local_target: Target) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    proc = start("--local", "--json", "--no-browser")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def port_is_free(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serves_the_local_search_endpoint_and_stops_cleanly(
    running: tuple[subprocess.Popen[str], dict[str, str]], local_target: Target, stop: int
) -> None:
    proc, info = running
    assert info["upstream"] == local_target.search_endpoint
    url, port = info["url"], int(info["port"])
    assert url.startswith(f"http://127.0.0.1:{port}/?ddbsearch_token=")
    http = urllib3.PoolManager()
    try:
        login = http.request("GET", url, redirect=False)
        assert login.status == 302
        cookie = login.headers["Set-Cookie"].split(";")[0]
        base = f"http://127.0.0.1:{port}"
        indices = http.request("GET", f"{base}/_cat/indices?v", headers={"Cookie": cookie})
        assert indices.status == 200
        assert b"health status index" in indices.data
        assert http.request("GET", f"{base}/_cat/indices").status == 403
    finally:
        http.clear()
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err  # stopping is how this command ends
    assert url in err  # for humans, on stderr
    assert "proxy stopped" in err
    assert "Traceback" not in err
    assert port_is_free(port)


def test_opens_the_browser_through_a_private_launcher(local_target: Target, tmp_path: Path) -> None:
    seen = tmp_path / "browser-args"
    browser = tmp_path / "browser"
    # webbrowser honours $BROWSER; this one records what it was given.
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {seen}\ncat "${{1#file://}}" >> {seen}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "BROWSER": str(browser)}
    proc = start("--local", "--json", env=env)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        deadline = time.monotonic() + 20
        while not (seen.exists() and "refresh" in seen.read_text()):
            assert proc.poll() is None, "dashboards exited before opening the browser"
            assert time.monotonic() < deadline, "the browser was never opened"
            time.sleep(0.05)  # the fake browser runs in its own process: poll its output
        recorded = seen.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    argument = recorded.split("<", 1)[0]
    assert argument.startswith("file://")
    assert "ddbsearch_token" not in argument  # nothing secret on a command line
    assert info["url"].replace("&", "&amp;") in recorded  # the file leads to the URL
    assert proc.returncode == 0, err
    assert not Path(argument.removeprefix("file://")).exists()  # removed on stop


def test_a_taken_port_is_a_usage_error(local_target: Target) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["dashboards", "--local", "--no-browser", "--port", str(port)]
        )
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_nothing_deployed_exits_4() -> None:
    result = CliRunner().invoke(app, ["dashboards", "--no-browser"])
    assert result.exit_code == 4
    assert "nothing is deployed" in result.stderr


def test_an_unknown_profile_is_an_auth_error() -> None:
    target = Target(
        kind="aws", name="prod", region="eu-west-1", table="T", index="t",
        search_endpoint="search-prod-abc.eu-west-1.es.amazonaws.com",
    )  # fmt: skip
    save_aws_target(target)
    set_current("aws", "prod")
    result = CliRunner().invoke(app, ["dashboards", "--no-browser", "--profile", "no-such"])
    assert result.exit_code == 7
    assert "AWS profile 'no-such' not found" in result.stderr


def test_quiet_still_prints_the_url_and_only_it(local_target: Target) -> None:
    proc = start("--local", "--no-browser", quiet=True)
    try:
        assert proc.stderr is not None
        url = proc.stderr.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert "ddbsearch_token=" in url
        http = urllib3.PoolManager()
        assert http.request("GET", url, redirect=False).status == 302
        http.clear()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out == ""
    assert err == ""
