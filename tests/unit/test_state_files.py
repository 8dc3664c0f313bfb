"""The state files' owners: atomic owner-only writes, typed records, old files still load."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ddbsearch import files
from ddbsearch.core.pacing import backoff_delay
from ddbsearch.local import policy, state
from ddbsearch.targets import Target, load_local_target, resolve_target


def _target(table: str, **fields: object) -> Target:
    return Target(
        "local", "local", "us-east-1", table, table.lower(), "http://127.0.0.1:1", **fields
    )


def test_write_json_is_owner_only_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "f.json"
    files.write_json(path, {"a": 1})
    files.write_json(path, {"a": 2})
    assert files.read_json(path) == {"a": 2}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]


def test_read_json_is_none_for_missing_broken_or_non_objects(tmp_path: Path) -> None:
    assert files.read_json(tmp_path / "missing.json") is None
    (tmp_path / "broken.json").write_text("{")
    assert files.read_json(tmp_path / "broken.json") is None
    (tmp_path / "list.json").write_text("[1]")
    assert files.read_json(tmp_path / "list.json") is None


def test_each_local_table_keeps_its_own_target() -> None:
    first = _target("First", dlq_url="q-first", key_names=("pk",))
    second = _target("Second", dlq_url="q-second")
    state.record_target(first)
    state.record_target(second)
    assert load_local_target() == second  # the last deployed is the default
    assert load_local_target("First") == first
    assert resolve_target(local=True, table="First").dlq_url == "q-first"
    # A table nothing was deployed for gets none of another table's parts.
    other = resolve_target(local=True, table="Other")
    assert (other.table, other.index, other.dlq_url, other.key_names) == (
        "Other",
        "other",
        None,
        (),
    )


def test_an_old_stack_file_with_one_target_and_extra_still_loads() -> None:
    old = _target("T").to_json()
    for key in ("key_names", "stream_arn", "function_log", "root", "operator_arns"):
        old.pop(key)
    old["extra"] = {"hash_key": ["userId", "N"], "range_key": ["tx", "S"], "stream_arn": "arn:s"}
    path = state.stack_file(state.default_root())
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": 1, "target": old}))
    loaded = load_local_target()
    assert loaded is not None
    assert (loaded.key_names, loaded.stream_arn) == (("userId", "tx"), "arn:s")
    assert load_local_target("T") == loaded


def test_mapping_status_round_trips_and_ignores_unknown_fields(tmp_path: Path) -> None:
    status = state.MappingStatus(state="Enabled", generation="g", stats={"invocations": 2})
    state.write_mapping_status(tmp_path, "T", status)
    assert state.read_mapping_status(tmp_path, "T") == status
    raw = state.status_path(tmp_path, "T")
    raw.write_text(json.dumps({"state": "Failed", "error": "boom", "future_field": 1}))
    assert state.read_mapping_status(tmp_path, "T") == state.MappingStatus("Failed", error="boom")


@pytest.mark.parametrize(
    ("attempt", "expected"), [(0, 0.1), (1, 0.2), (3, 0.8), (10, 5.0), (10_000, 5.0)]
)
def test_backoff_is_capped_exponential_times_jitter(attempt: int, expected: float) -> None:
    assert backoff_delay(attempt, base=0.1, cap=5.0, jitter=lambda: 1.0) == pytest.approx(expected)
    assert backoff_delay(attempt, base=0.1, cap=5.0, jitter=lambda: 0.5) == pytest.approx(
        expected / 2
    )


def test_retry_policy_checkpoints_the_done_part_then_bisects_retries_or_discards() -> None:
    ok = policy.FirstFailure(None)
    assert policy.decide(
        4, ok, retries=0, bisect_on_function_error=True, maximum_retry_attempts=2
    ) == (policy.Decision(4, "done", partial=False))
    crashed = policy.FirstFailure(0, whole_batch=True)
    kwargs = {"bisect_on_function_error": True, "maximum_retry_attempts": 2}
    assert policy.decide(4, crashed, retries=0, **kwargs).action == "bisect"
    assert policy.decide(1, crashed, retries=0, **kwargs).action == "retry"
    assert policy.decide(1, crashed, retries=2, **kwargs).action == "discard"
    reported = policy.first_failure(
        ["1", "2", "3"],
        {"batchItemFailures": [{"itemIdentifier": "2"}]},
        report_batch_item_failures=True,
    )
    assert reported == policy.FirstFailure(1)
    decision = policy.decide(3, reported, retries=0, **kwargs)
    assert (decision.succeeded, decision.action, decision.partial) == (1, "retry", True)
    bad = policy.first_failure(
        ["1"], {"batchItemFailures": [{"itemIdentifier": "9"}]}, report_batch_item_failures=True
    )
    assert (bad.index, bad.whole_batch) == (0, True)
    assert policy.retry_delay(1, base=0.05, cap=2.0) == pytest.approx(0.05)
    assert policy.retry_delay(10, base=0.05, cap=2.0) == pytest.approx(2.0)
