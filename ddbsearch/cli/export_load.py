"""``backfill --from-export`` / ``--cancel`` / ``--detach``: rendering only.

The library (:mod:`ddbsearch.ops.export_load`) starts, attaches to, follows and
cancels the load; this module draws its progress on stderr and prints the summary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from ddbsearch.cli import console
from ddbsearch.cli.render import emit_json
from ddbsearch.targets import Target


def _say_started(started: Any, *, json_output: bool) -> None:
    record = started.record
    if started.resumed:
        console.info(
            f"resumed the interrupted export load of {record.table} "
            f"({record.files} files; finished files are not reloaded)"
        )
    elif started.attached:
        console.info(f"attached to the export load of {record.table} already running")
    elif record.kind == "aws":
        console.info(
            f"started the export load of {record.table} on AWS (Step Functions): it waits "
            "for the export, then loads its files"
        )
    else:
        console.info(
            f"loading {record.files} export file(s) of {record.table} in the local map runner"
        )
    console.info(
        "the load continues if this command stops: 'ddbsearch backfill --from-export' "
        "attaches again, '--cancel' stops it"
    )


@contextlib.contextmanager
def _exporting() -> Iterator[Any]:
    if not console.interactive():
        yield lambda p: None
        return
    with Progress(
        TextColumn("exporting the table (no read capacity used)"),
        TimeElapsedColumn(),
        console=console.err,
        transient=True,
    ) as bar:
        bar.add_task("export", total=None)
        yield lambda p: None


@contextlib.contextmanager
def _load_bar(table: str) -> Iterator[Any]:
    if not console.interactive():
        yield lambda p: None
        return
    columns = [
        TextColumn(f"load {table}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console.err, transient=False) as bar:
        task = bar.add_task("load", total=None, detail="")

        def update(p: Any) -> None:
            eta = "" if p.eta_seconds is None else f" ETA {_duration(p.eta_seconds)}"
            failed = f" [red]{p.files_failed} failed[/]" if p.files_failed else ""
            items = f"{p.items_done:,}" + (f"/{p.items_total:,}" if p.items_total else "")
            bar.update(
                task,
                total=p.files_total or None,
                completed=p.files_done + p.files_failed,
                detail=f"{items} items {p.items_per_second:,.0f}/s{eta}{failed}",
            )

        yield update


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def run(
    target: Target,
    *,
    export_arn: str | None,
    detach: bool,
    max_concurrency: int | None,
    json_output: bool,
) -> None:
    """Start or attach, then follow until the load ends (or detach); raise on failure."""
    from ddbsearch.ops import export_load

    with _exporting() as on_export:
        started = export_load.start_or_attach(
            target,
            export_arn=export_arn,
            max_concurrency=max_concurrency,
            on_progress=on_export,
        )
    _say_started(started, json_output=json_output)
    if detach:
        current = export_load.progress(target, started.record)
        if json_output and current is not None:
            emit_json(current.to_json())
        return
    try:
        with _load_bar(target.table) as update:
            final = export_load.follow(target, started.record, on_progress=update)
    except KeyboardInterrupt:
        console.info("detached: the load goes on ('ddbsearch backfill --from-export' attaches)")
        raise
    if json_output:
        emit_json(final.to_json())
    else:
        _summary(final)
    export_load.check_outcome(final)


def _summary(p: Any) -> None:
    console.info(
        f"{p.state.lower()}: {p.files_done}/{p.files_total} files, {p.items_done:,} items "
        f"in {_duration(p.elapsed_seconds)} ({p.items_per_second:,.0f}/s), "
        f"{p.dead_lettered:,} dead-lettered, {p.files_failed} file(s) failed"
    )
    for key, error in sorted(p.failures.items()):
        console.warn(f"{key}: {error}")


def cancel(target: Target, *, json_output: bool) -> None:
    from ddbsearch.ops import export_load

    current = export_load.cancel(target)
    if current is None:
        console.warn(f"no export load recorded for {target.table}")
        return
    if json_output:
        emit_json(current.to_json())
    elif current.state == "ABORTED":
        console.info(
            f"export load of {target.table} stopped: "
            f"{current.files_done}/{current.files_total} files were loaded"
        )
    else:
        console.info(
            f"no export load of {target.table} is running (the last one ended "
            f"{current.state.lower()})"
        )
