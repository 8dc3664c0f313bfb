"""The local Lambda runtime runs a zip with what the AWS Lambda Python runtime has, nothing more."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddbsearch.local.runtime import FunctionConfig, LocalFunction
from tests.integration.local_helpers import build_zip

pytestmark = pytest.mark.integration

PROBE = """
import os, sys
import boto3  # provided by the Lambda runtime

def handler(event, context):
    print("to the log, not the protocol")
    if event.get("need"):
        __import__(event["need"])
    return {
        "remaining": context.get_remaining_time_in_millis(),
        "name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "request": context.aws_request_id,
        "index": os.environ.get("INDEX_NAME"),
        "venv_on_path": any(".venv" in p or "site-packages" in p for p in sys.path),
    }
"""


def test_handler_runs_with_context_env_and_no_dev_venv(tmp_path: Path) -> None:
    config = FunctionConfig(
        build_zip(tmp_path / "f.zip", PROBE),
        name="probe",
        timeout_seconds=5,
        memory_mb=256,
        environment={"INDEX_NAME": "idx"},
    )
    log = tmp_path / "function.log"
    with LocalFunction(config, work_dir=tmp_path / "fn", log_path=log) as function:
        result = function.invoke({})
        missing = function.invoke({"need": "typer"})  # installed in the dev venv only

    assert result.error is None
    payload = result.payload
    assert payload["name"] == "probe"
    assert payload["memory"] == "256"
    assert payload["request"] == result.request_id
    assert payload["index"] == "idx"
    assert 0 < payload["remaining"] <= 5000
    assert payload["venv_on_path"] is False
    assert missing.error is not None
    assert missing.error["errorType"] == "ModuleNotFoundError"
    assert "to the log, not the protocol" in log.read_text()


def test_a_zip_missing_a_dependency_fails_at_import(tmp_path: Path) -> None:
    zip_path = build_zip(
        tmp_path / "f.zip", "import typer\n\ndef handler(event, context):\n    return {}\n"
    )
    with LocalFunction(FunctionConfig(zip_path), work_dir=tmp_path / "fn") as function:
        result = function.invoke({})
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"
    assert "typer" in result.error["errorMessage"]


def test_timeout_kills_the_environment_and_the_next_invoke_is_a_cold_start(tmp_path: Path) -> None:
    source = (
        "import time\n\ndef handler(event, context):\n"
        "    time.sleep(event['sleep'])\n    return 'ok'\n"
    )
    config = FunctionConfig(build_zip(tmp_path / "f.zip", source), timeout_seconds=0.3)
    with LocalFunction(config, work_dir=tmp_path / "fn") as function:
        slow = function.invoke({"sleep": 10})
        first_pid = function.pid
        fast = function.invoke({"sleep": 0})
        assert function.pid is not None
    assert slow.error is not None
    assert slow.error["errorType"] == "Sandbox.Timedout"
    assert slow.function_error == "Unhandled"
    assert first_pid is None  # killed, not left running
    assert fast.payload == "ok"
    assert function.cold_starts == 2
