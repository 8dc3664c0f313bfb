"""`ddbsearch reindex --from-export` on the local stack: moto's export, the map runner and
the built zip fill the new generation only, while the stream keeps writing; resume
after the CLI stops, and --abort cancelling the running load.

The table's first rows are written before its stream exists, so the serving
generation never gets them from the stream: if the export load wrote every live
generation (as ``backfill --from-export`` does) they would appear in it. They must
not. The stream handler's first batch is handled after the new generation exists,
so its live set includes it from the start: ``--settle-seconds 0`` is safe here,
with writes going on during the whole fill.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.lifecycle import list_generations
from ddbsearch.core.transport import SearchTransport
from ddbsearch.errors import Aborted, NotDeployedError
from ddbsearch.local.deploy import deploy_local, destroy_local, wait_until_idle
from ddbsearch.local.processes import process_alive
from ddbsearch.local.stack import LocalStack, start_stack
from ddbsearch.ops import export_load
from ddbsearch.ops.reindex import (
    ReindexEvents,
    ReindexState,
    run_reindex,
    state_path,
)
from ddbsearch.targets import Target
from ddbsearch.testing import oracle
from ddbsearch.testing.data import generate_transactions

pytestmark = pytest.mark.integration

runner = CliRunner()
TABLE = "Reindexed"
PRE_EXISTING = 30
REWRITTEN = 10  # the writer changes the first 10 pre-existing rows only


def _ids(items: Any) -> list[str]:
    return [f"{i['userId']['N']}|{i['transactionId']['N']}" for i in items]


def _table_without_stream(stack: LocalStack, rows: int) -> Any:
    ddb = stack.client("dynamodb")
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "userId", "KeyType": "HASH"},
            {"AttributeName": "transactionId", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "userId", "AttributeType": "N"},
            {"AttributeName": "transactionId", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for item in generate_transactions(rows, seed=7):
        ddb.put_item(TableName=TABLE, Item=item)
    return ddb


@pytest.fixture
def deployed() -> Iterator[tuple[Target, Any]]:
    """The local stack with TABLE holding PRE_EXISTING rows the stream never carried."""
    stack = start_stack()
    try:
        ddb = _table_without_stream(stack, PRE_EXISTING)
        target = deploy_local(table=TABLE)
        yield target, ddb
    finally:
        destroy_local()


def _docs(transport: SearchTransport, name: str) -> dict[str, dict[str, Any]]:
    return oracle.index_documents(transport, name)


def test_reindex_from_export_fills_only_the_new_generation_and_converges_under_writes(
    deployed: tuple[Target, Any],
) -> None:
    target, ddb = deployed
    transport = SearchTransport(target.search_endpoint, sigv4=False)
    first, second = f"{target.index}-000001", f"{target.index}-000002"
    assert _docs(transport, first) == {}  # the stream never carried the first rows

    stop = threading.Event()
    written: list[int] = []

    def keep_writing() -> None:
        # Start once the new generation exists: the stream handler's first live-set
        # read then includes it, as the settle wait guarantees on a real stack.
        while not stop.is_set() and second not in {
            g.name for g in list_generations(transport, target.index)
        }:
            time.sleep(0.05)
        fresh = list(generate_transactions(200, seed=8))
        old = list(generate_transactions(PRE_EXISTING, seed=7))
        n = 0
        while not stop.is_set() and n < len(fresh):
            ddb.put_item(TableName=TABLE, Item=fresh[n])  # a new row
            changed = dict(old[n % REWRITTEN])
            changed["shortDescription"] = {"S": f"changed during the fill {n}"}
            ddb.put_item(TableName=TABLE, Item=changed)  # a row the export holds
            if n % 5 == 0:  # and a new row deleted again
                key = {k: fresh[n][k] for k in ("userId", "transactionId")}
                ddb.delete_item(TableName=TABLE, Key=key)
            written.append(n)
            n += 1
            time.sleep(0.05)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        args = ["reindex", "--from-export", "--local", "--settle-seconds", "0"]
        result = runner.invoke(app, [*args, "--keep-old", "--max-concurrency", "1", "--json"])
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fill"] is None  # not a Scan
    load = summary["load"]
    assert load["state"] == "SUCCEEDED"
    assert load["files_done"] == load["files_total"] >= 1
    assert load["items_done"] >= PRE_EXISTING
    assert summary["verify"]["ok"] is True
    assert summary["swapped"] is True
    assert summary["kept"] == [first]
    assert "export file(s) in the local map runner" in result.stderr
    assert written, "the writer never wrote during the reindex"
    assert not state_path(target).exists()

    # The export load wrote the building generation only: the serving one still
    # lacks every row the stream did not carry (the load record says so too).
    record = export_load.read_record(target)
    assert record is not None
    assert record.generations == [second]
    untouched = set(_ids(generate_transactions(PRE_EXISTING, seed=7))[REWRITTEN:])
    assert not untouched & set(_docs(transport, first))
    assert untouched <= set(_docs(transport, second))

    # The new generation converges to the table once the stream has delivered.
    wait_until_idle(start_stack(), TABLE)
    config = {g.name: g.config for g in list_generations(transport, target.index)}[second]
    diff = oracle.diff_index(ddb, TABLE, transport, target.index, config=config)
    assert diff.ok, diff.summary()
    assert diff.compared >= PRE_EXISTING


def test_an_export_fill_survives_the_command_stopping_and_abort_cancels_it(
    deployed: tuple[Target, Any],
) -> None:
    target, _ddb = deployed
    transport = SearchTransport(target.search_endpoint, sigv4=False)
    second = f"{target.index}-000002"

    # 1. The command stops as soon as the load has started: the load goes on, the
    #    state file names it, and running reindex again attaches to it.
    stop = threading.Event()
    steps: list[str] = []
    events = ReindexEvents(step=steps.append, fill_start=lambda total, done: stop.set())
    with pytest.raises(Aborted) as stopped:
        run_reindex(
            target, from_export=True, settle_seconds=0, retire_seconds=0, events=events, stop=stop
        )
    assert "goes on without this command" in stopped.value.message
    state = ReindexState.load(state_path(target))
    assert state is not None
    assert state.fill == "export"
    assert state.phase == "filling"
    first_load = export_load.read_record(target)
    assert first_load is not None
    assert first_load.generations == [second]
    assert state.load_run == first_load.run_dir

    steps.clear()
    summary = run_reindex(
        target, settle_seconds=0, retire_seconds=0, events=ReindexEvents(step=steps.append)
    )
    assert summary.resumed
    assert summary.swapped
    assert summary.load is not None
    assert summary.load.state == "SUCCEEDED"
    assert not any(s.startswith("exporting table") for s in steps), steps
    again = export_load.read_record(target)
    assert again is not None
    assert again.run_dir == first_load.run_dir
    assert set(_docs(transport, target.index)) >= set(
        _ids(generate_transactions(PRE_EXISTING, seed=7))
    )

    # 2. --abort while the load runs: the load is cancelled, then the generation dropped.
    #    The load is held (SIGSTOP to the runner's process group) the moment it starts,
    #    so the abort always meets it running; it goes on 0.5 s into the abort.
    third = f"{target.index}-000003"
    stop = threading.Event()
    held: list[int] = []

    def hold(total: int, done: int) -> None:
        started = export_load.read_record(target)
        assert started is not None
        assert started.pid is not None
        os.killpg(started.pid, signal.SIGSTOP)
        held.append(started.pid)
        stop.set()

    with pytest.raises(Aborted):
        run_reindex(
            target,
            from_export=True,
            settle_seconds=0,
            retire_seconds=0,
            events=ReindexEvents(fill_start=hold),
            stop=stop,
        )
    record = export_load.read_record(target)
    assert record is not None
    assert record.generations == [third]
    assert held == [record.pid]
    running = export_load.progress(target, record)
    assert running is not None
    assert running.running
    pid = record.pid
    assert pid is not None

    def go_on() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGCONT)

    resume = threading.Timer(0.5, go_on)
    resume.start()
    abort = ["reindex", "--abort", "--local", "--settle-seconds", "0", "--json"]
    try:
        result = runner.invoke(app, abort)
    finally:
        resume.join()
    assert result.exit_code == 0, result.output
    aborted = json.loads(result.stdout)
    assert aborted["dropped"] == [third]
    assert aborted["load"]["state"] == "ABORTED"
    assert "cancelled the export load" in result.stderr
    assert not process_alive(pid)
    assert {g.name for g in list_generations(transport, target.index)} == {second}
    assert not state_path(target).exists()


def test_on_aws_the_size_chooses_the_fill_and_reindex_says_which_and_how_to_force_the_other(
    ops_target: Callable[..., Target],
) -> None:
    """The same choice and line as backfill; a contradiction is refused before anything
    is created. (An AWS-kind target on the emulators: unsigned, as the local stack.)"""
    local = ops_target((("userId", "N"), ("transactionId", "N")))
    target = dataclasses.replace(local, kind="aws", name="sized")
    transport = SearchTransport(target.search_endpoint, sigv4=False)
    before = [g.name for g in list_generations(transport, target.index)]
    try:
        refused = runner.invoke(
            app,
            ["reindex", "--scan", "--export-arn", "arn:aws:dynamodb:x", "--local"],
        )
        assert refused.exit_code == 2
        assert "--export-arn loads an export; drop --scan" in refused.stderr
        assert [g.name for g in list_generations(transport, target.index)] == before
        # An export fill on a stack deployed without the loader: refused up front too.
        with pytest.raises(NotDeployedError, match="no export loader"):
            run_reindex(target, from_export=True, settle_seconds=0)
        assert [g.name for g in list_generations(transport, target.index)] == before

        steps: list[str] = []
        summary = run_reindex(
            target, settle_seconds=0, retire_seconds=0, events=ReindexEvents(step=steps.append)
        )
        assert summary.swapped
        assert summary.fill is not None
        assert summary.load is None
        reason = (
            f"table {target.table} holds 0.0 GB (< 10 GB): scanning it "
            "(--from-export loads it from an export instead)"
        )
        assert reason in steps
        assert steps.index(reason) < next(i for i, s in enumerate(steps) if s.startswith("filling"))
    finally:
        transport.request("DELETE", f"/{target.index}-*")
