"""The local map runner's rules that need no process: retry delays, failure thresholds, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ddbsearch.local import maprunner


def spec(files: int, **map_settings: Any) -> maprunner.LoadSpec:
    return maprunner.LoadSpec(
        run_id="r",
        bucket="b",
        files=[{"key": f"data/{n}.json.gz", "size": 1, "items": 1} for n in range(files)],
        key_names=["pk"],
        version=2,
        zip_path="unused.zip",
        environment={},
        moto_url="http://127.0.0.1:1",
        result_bucket="b",
        result_prefix="load-results",
        map=map_settings,
    )


def test_retry_delays_double_up_to_the_cap_with_full_jitter() -> None:
    retrier = maprunner.Retrier(max_attempts=12, interval_seconds=2.0, max_delay_seconds=60.0)
    assert [retrier.delay(n, jitter=lambda: 1.0) for n in range(1, 7)] == [2, 4, 8, 16, 32, 60]
    assert retrier.delay(3, jitter=lambda: 0.25) == 2.0


@pytest.mark.parametrize(
    ("settings", "failed", "fails"),
    [
        ({}, 1, True),  # the module's default: 0 % tolerated
        ({"tolerated_failure_percentage": 10}, 1, False),  # 1 of 10 = 10 %, not more
        ({"tolerated_failure_percentage": 10}, 2, True),
        ({"tolerated_failure_count": 2}, 2, False),  # the percentage is then not applied
        ({"tolerated_failure_count": 2}, 3, True),
        # Both given: exceeding either fails the run (Step Functions' rule).
        ({"tolerated_failure_count": 5, "tolerated_failure_percentage": 10}, 2, True),
        ({"tolerated_failure_count": 1, "tolerated_failure_percentage": 50}, 2, True),
        ({"tolerated_failure_count": 2, "tolerated_failure_percentage": 20}, 2, False),
        ({}, 0, False),
    ],
)
def test_failure_thresholds_follow_distributed_map(
    tmp_path: Path, settings: dict[str, Any], failed: int, fails: bool
) -> None:
    run = maprunner.MapRun(tmp_path, spec(10, **settings))
    assert run._over_threshold(failed) is fails


def test_a_new_runner_on_the_same_directory_keeps_finished_files(tmp_path: Path) -> None:
    progress = {
        "started_at": 1.0,
        "files": [
            {"key": "data/0.json.gz", "status": "SUCCEEDED", "next_line": 5, "rows": 5},
            {"key": "data/1.json.gz", "status": "RUNNING", "next_line": 3, "rows": 3},
            {"key": "data/2.json.gz", "status": "FAILED", "next_line": 0, "rows": 0},
        ],
    }
    (tmp_path / maprunner.PROGRESS_FILE).write_text(json.dumps(progress))
    run = maprunner.MapRun(tmp_path, spec(4))
    by_key = {f.key: f for f in run.files}
    assert by_key["data/0.json.gz"].status == maprunner.SUCCEEDED
    # Interrupted mid-file: continues at its checkpointed line.
    assert (by_key["data/1.json.gz"].status, by_key["data/1.json.gz"].next_line) == ("PENDING", 3)
    assert by_key["data/2.json.gz"].status == "PENDING"  # a failed file is tried again
    assert by_key["data/3.json.gz"].next_line == 0
    assert run.started_at == 1.0
    assert run.resumed == 1


def test_progress_and_spec_files_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    spec(1).save(directory)
    maprunner.MapRun(directory, spec(1))._save()
    for name in (maprunner.SPEC_FILE, maprunner.PROGRESS_FILE):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700


def test_each_invocation_carries_the_loads_generations_as_the_state_machine_does(
    tmp_path: Path,
) -> None:
    """The runner passes the spec's generation restriction through to every event, the
    next parts of a file included (the state machine's ItemSelector and NextPart)."""
    from dataclasses import replace

    from ddbsearch.local.runtime import InvokeResult

    class Function:
        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []

        def invoke(self, event: dict[str, Any]) -> InvokeResult:
            self.events.append(event)
            done = len(self.events) == 2
            payload = {"complete": done, "next_line": 3 * len(self.events), "rows": 3}
            return InvokeResult("r", 0.0, payload=payload)

    restricted = replace(spec(1), generations=["idx-000002"])
    restricted.save(tmp_path)
    assert maprunner.LoadSpec.load(tmp_path).generations == ["idx-000002"]
    run = maprunner.MapRun(tmp_path, restricted)
    function = Function()
    run._child(function, run.files[0])  # type: ignore[arg-type]
    assert [e["generations"] for e in function.events] == [["idx-000002"]] * 2
    assert [e["start_line"] for e in function.events] == [0, 3]
    assert run.files[0].status == maprunner.SUCCEEDED
    # A spec written before the restriction existed loads every live generation.
    old = json.loads((tmp_path / maprunner.SPEC_FILE).read_text())
    del old["generations"]
    (tmp_path / maprunner.SPEC_FILE).write_text(json.dumps(old))
    assert maprunner.LoadSpec.load(tmp_path).generations == []
