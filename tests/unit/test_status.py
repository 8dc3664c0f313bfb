"""How status reads the local stream worker's report (no emulator needed)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ddbsearch.local import state
from ddbsearch.ops.status import Check, StatusReport
from ddbsearch.ops.status.local import pipeline_checks
from ddbsearch.targets import Target

TARGET = Target("local", "local", "us-east-1", "T", "t", "http://127.0.0.1:1")


def checks(report: dict[str, Any] | None, max_lag: float = 300) -> dict[str, Check]:
    if report is not None:
        status = state.MappingStatus.from_json(report)
        state.write_mapping_status(state.default_root(), "T", status)
    now = datetime.now(timezone.utc)
    return {c.name: c for c in pipeline_checks(TARGET, None, max_lag, now)}


def test_a_failed_worker_is_a_failure_with_its_error() -> None:
    got = checks({"state": "Failed", "error": "RuntimeError: no zip"})
    assert got["event source mapping"].state == "fail"
    assert got["event source mapping"].summary == "Failed: RuntimeError: no zip"


def test_iterator_age_is_used_when_the_worker_reports_it() -> None:
    report = {"state": "Enabled", "stats": {"invocations": 2}, "iterator_age_s": 12.5}
    assert checks(report)["lag"].state == "ok"
    assert checks(report, max_lag=10)["lag"].state == "fail"
    assert checks({"state": "Enabled", "stats": {}})["lag"].state == "unknown"
    idle = checks({"state": "Enabled", "stats": {}, "idle": True})["lag"]
    assert (idle.state, idle.summary) == ("ok", "caught up")


def test_local_function_errors_warn_because_they_are_not_windowed() -> None:
    got = checks({"state": "Enabled", "stats": {"function_errors": 2, "last_error": "boom"}})
    assert got["handler errors"].state == "warn"
    assert got["event source mapping"].state == "ok"
    assert "last error: boom" in got["event source mapping"].summary


def test_no_report_means_no_worker() -> None:
    got = checks(None)
    assert got["event source mapping"].state == "fail"
    assert "is the local stack running" in got["event source mapping"].summary


def test_report_health_and_reasons() -> None:
    report = StatusReport(
        TARGET,
        [Check("a", "ok", "fine"), Check("b", "warn", "meh"), Check("c", "fail", "broken")],
    )
    assert not report.healthy
    assert report.reasons == ["c: broken"]
    assert report.to_json()["checks"][2] == {
        "name": "c",
        "state": "fail",
        "summary": "broken",
        "data": {},
    }
    assert StatusReport(TARGET, [Check("a", "warn", "meh")]).healthy
