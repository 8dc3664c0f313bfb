"""The local stack as a user drives it: deploy --local, put -> searchable through the
real worker and the real built zip, demo beside it, destroy with nothing left behind.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.local.deploy import deploy_local, deploy_table, destroy_local, wait_until_idle
from ddbsearch.local.emulators import port_accepts
from ddbsearch.local.processes import process_alive
from ddbsearch.local.stack import running_stack, start_stack, stop_stack
from ddbsearch.ops.search import SearchRequest, search
from ddbsearch.targets import load_local_target, local_state_file, resolve_target, state_home
from tests.integration.local_helpers import build_zip, seen_batches, wait_for

pytestmark = pytest.mark.integration


def test_deploy_put_search_demo_alongside_then_destroy_leaves_nothing() -> None:
    progress: list[str] = []
    target = deploy_local(on_progress=progress.append)
    stack = running_stack()
    assert stack is not None
    assert resolve_target() == target  # every other command now targets the local stack
    assert resolve_target(local=True) == target
    assert target.table == "UsersTransactions"
    assert target.sigv4 is False
    assert any("building the Lambda zip" in p for p in progress)
    try:
        ddb = stack.client("dynamodb")
        ddb.put_item(
            TableName=target.table,
            Item={
                "userId": {"N": "3"},
                "transactionId": {"N": "51"},
                "shortDescription": {"S": "Final mega test 2"},
            },
        )
        result = wait_for(
            lambda: search(target, SearchRequest(text="mega test", highlight=False)).hits
        )
        assert result[0].source["shortDescription"] == "Final mega test 2"
        status = stack.mapping_status(target.table)
        function_pid = wait_for(
            lambda: getattr(stack.mapping_status(target.table), "function_pid", None)
        )
        assert status is not None
        assert status.state == "Enabled"

        # deploy again: idempotent, same stack.
        assert deploy_local() == target
        assert running_stack() == stack

        # The demo runs on a stack of its own and leaves this one alone.
        runner = CliRunner()
        outcome = runner.invoke(app, ["demo", "--json", "--timeout", "20"])
        assert outcome.exit_code == 0, outcome.output
        assert '"found": true' in outcome.stdout
        assert running_stack() == stack
        assert search(target, SearchRequest(text="mega test")).total == 1
    finally:
        assert destroy_local() is True

    for pid in (stack.pid, stack.osmem_pid, function_pid):
        assert not process_alive(pid), pid
    assert not port_accepts(stack.moto_port)
    assert not port_accepts(stack.osmem_port)
    assert not local_state_file().exists()
    assert load_local_target() is None
    assert not (state_home() / "current.json").exists()
    assert destroy_local() is False  # nothing left to destroy


def test_a_restarted_worker_resumes_and_a_killed_supervisor_leaves_no_orphans(
    tmp_path: Path,
) -> None:
    root = tmp_path / "stack"
    stack = start_stack(root)
    seen = tmp_path / "seen.jsonl"

    def deploy() -> None:
        deploy_table(
            stack,
            table="Ruled",
            keys=(("id", "N"), None),
            zip_path=build_zip(tmp_path / "ruled.zip"),
            function_environment={"SEEN_FILE": str(seen)},
        )

    deploy()
    ddb = stack.client("dynamodb")
    ddb.put_item(TableName="Ruled", Item={"id": {"N": "1"}})
    wait_for(lambda: seen_batches(seen) == [[1]])
    wait_for(lambda: getattr(stack.mapping_status("Ruled"), "checkpoints", None))

    deploy()  # replaces the mapping: a new worker that must resume, not re-deliver
    ddb.put_item(TableName="Ruled", Item={"id": {"N": "2"}})
    status = wait_until_idle(stack, "Ruled", timeout=15)
    assert seen_batches(seen) == [[1], [2]]
    assert status.stats["records_succeeded"] == 1
    function_pid = wait_for(lambda: getattr(stack.mapping_status("Ruled"), "function_pid", None))

    os.kill(stack.pid, signal.SIGKILL)

    # osmem watches its parent; the runtime child exits when its stdin pipe closes.
    wait_for(lambda: not any(process_alive(p) for p in (stack.pid, stack.osmem_pid, function_pid)))
    wait_for(lambda: not port_accepts(stack.moto_port) and not port_accepts(stack.osmem_port))
    assert running_stack(root) is None  # the stale state file is not mistaken for a stack
    assert stop_stack(root) is False
    assert not (root / "stack.json").exists()


def test_a_start_failure_is_reported_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ddbsearch.errors import UnreachableError

    # An osmem binary that does not exist: the supervisor fails and says why.
    monkeypatch.setenv("OSMEM_SERVER_BIN", str(tmp_path / "missing-osmem"))
    started = time.monotonic()
    with pytest.raises(UnreachableError, match="exited during start-up"):
        start_stack(tmp_path / "stack", timeout=30)
    assert time.monotonic() - started < 30
    assert running_stack(tmp_path / "stack") is None


def test_concurrent_starts_share_one_stack(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path / "stack"
    with ThreadPoolExecutor(2) as pool:
        stacks = list(pool.map(lambda _: start_stack(root), range(2)))
    try:
        assert stacks[0] == stacks[1]
    finally:
        assert stop_stack(root) is True
    assert not process_alive(stacks[0].pid)


def _supervisors_for(root: Path) -> list[int]:
    """Live supervisor processes serving ``root`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ours = b"ddbsearch.local.supervisor" in cmdline and str(root).encode() in cmdline
            if ours and process_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_ctrl_c_while_starting_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ddbsearch.local.stack as stack_module

    root = tmp_path / "stack"
    real = stack_module.running_stack
    calls = {"n": 0}

    def interrupted(r: Path | None = None) -> object:
        calls["n"] += 1
        if calls["n"] > 2:  # the supervisor has been spawned and we are waiting for it
            raise KeyboardInterrupt
        return real(r)

    monkeypatch.setattr(stack_module, "running_stack", interrupted)
    with pytest.raises(KeyboardInterrupt):
        start_stack(root)
    monkeypatch.undo()
    wait_for(lambda: not _supervisors_for(root))


def test_the_demo_tears_its_stack_down_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ddbsearch.local.demo as demo

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "deploy_table", interrupted)
    root = tmp_path / "demo"
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(root=root)
    assert running_stack(root) is None
    assert not _supervisors_for(root)


def test_a_wiped_state_directory_stops_the_stack(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    stack = start_stack(root)
    (root / "stack.json").unlink()  # e.g. rm -rf ~/.local/state/ddbsearch

    wait_for(lambda: not process_alive(stack.pid) and not process_alive(stack.osmem_pid))
    wait_for(lambda: not port_accepts(stack.moto_port) and not port_accepts(stack.osmem_port))


def test_demo_exits_nonzero_when_the_item_never_becomes_searchable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    import ddbsearch.local.demo as demo

    # A function that accepts every batch and indexes nothing.
    lazy = build_zip(tmp_path / "lazy.zip", "def handler(event, context):\n    return {}\n")
    monkeypatch.setattr(demo, "deploy_table", functools.partial(deploy_table, zip_path=lazy))

    outcome = CliRunner().invoke(app, ["demo", "--timeout", "1"])

    assert outcome.exit_code == 9, outcome.output
    assert "not searchable within 1 s" in outcome.stderr
