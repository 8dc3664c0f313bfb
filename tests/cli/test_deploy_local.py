"""`ddbsearch deploy --local` / `destroy --local`: key parsing and delegation to the local stack."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

import ddbsearch.local.deploy as local_deploy
from ddbsearch.cli import app
from ddbsearch.errors import ExitCode
from ddbsearch.targets import Target, load_local_target, resolve_target

runner = CliRunner()


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the local stack with a recorder (the stack itself has its own tests)."""
    calls: list[dict[str, Any]] = []

    def deploy_local(**kwargs: Any) -> Target:
        calls.append(kwargs)
        kwargs["on_progress"]("creating the table")
        return Target(
            kind="local",
            name="local",
            region="us-east-1",
            table=kwargs["table"],
            index=kwargs["index"] or kwargs["table"].lower(),
            search_endpoint="http://127.0.0.1:9200",
            aws_endpoint="http://127.0.0.1:5000",
            sigv4=False,
        )

    def destroy_local(**kwargs: Any) -> bool:
        calls.append({"destroy": True})
        return len(calls) == 1

    monkeypatch.setattr(local_deploy, "deploy_local", deploy_local)
    monkeypatch.setattr(local_deploy, "destroy_local", destroy_local)
    return calls


def _keys(calls: list[dict[str, Any]]) -> Any:
    return calls[-1]["keys"]


def test_defaults_are_the_reference_table(recorded: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["deploy", "--local"])
    assert result.exit_code == 0, result.stderr
    assert recorded[0]["table"] == "UsersTransactions"
    assert recorded[0]["index"] is None
    assert _keys(recorded) is None  # adopt an existing table's keys, else the reference ones
    assert "creating the table" in result.stderr  # progress reaches stderr
    assert "Search endpoint: http://127.0.0.1:9200" in result.stderr
    assert "ddbsearch put" in result.stderr


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (["--hash-key", "pk:S"], (("pk", "S"), None)),
        (["--hash-key", "pk:s", "--range-key", "sk:n"], (("pk", "S"), ("sk", "N"))),
        (["--range-key", "when:N"], (("userId", "N"), ("when", "N"))),
        (["--hash-key", "pk:B", "--range-key", "none"], (("pk", "B"), None)),
    ],
)
def test_key_options_are_parsed(
    recorded: list[dict[str, Any]], args: list[str], keys: tuple[Any, Any]
) -> None:
    result = runner.invoke(app, ["deploy", "--local", "--table", "Orders", "--index", "o", *args])
    assert result.exit_code == 0, result.stderr
    assert recorded[-1]["table"] == "Orders"
    assert recorded[-1]["index"] == "o"
    assert _keys(recorded) == keys


def test_bad_key_is_a_usage_error(recorded: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["deploy", "--local", "--hash-key", "pk:Q"])
    assert result.exit_code == ExitCode.USAGE
    assert "--hash-key 'pk:Q' is not NAME:TYPE" in result.stderr
    assert recorded == []


def test_json_prints_the_target_on_stdout(recorded: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["deploy", "--local", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["search_endpoint"] == "http://127.0.0.1:9200"


def test_progress_uses_a_spinner_on_a_terminal(
    recorded: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ddbsearch.cli import console

    monkeypatch.setattr(console, "interactive", lambda: True)
    result = runner.invoke(app, ["deploy", "--local"])
    assert result.exit_code == 0, result.stderr
    # The spinner replaces progress lines; the summary is still printed.
    assert "creating the table" not in result.stderr
    assert "Search endpoint: http://127.0.0.1:9200" in result.stderr


def test_destroy_local_says_whether_anything_ran(recorded: list[dict[str, Any]]) -> None:
    first = runner.invoke(app, ["destroy", "--local"])
    assert first.exit_code == 0, first.stderr
    assert "destroyed the local stack" in first.stderr
    second = runner.invoke(app, ["destroy", "--local"])
    assert second.exit_code == 0
    assert "no local stack was running" in second.stderr


@pytest.mark.integration
def test_deploy_and_destroy_the_real_local_stack() -> None:
    result = runner.invoke(app, ["deploy", "--local", "--table", "Things", "--hash-key", "id:S"])
    try:
        assert result.exit_code == 0, result.stderr
        target = load_local_target()
        assert target is not None
        assert target.table == "Things"
        assert resolve_target() == target  # the other commands now talk to it
        assert f"Search endpoint: {target.search_endpoint}" in result.stderr
    finally:
        down = runner.invoke(app, ["destroy", "--local"])
    assert down.exit_code == 0, down.stderr
    assert "destroyed the local stack" in down.stderr
    assert load_local_target() is None
