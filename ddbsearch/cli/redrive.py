"""`ddbsearch redrive`: re-index the items behind dead-lettered records."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ddbsearch.cli import console
from ddbsearch.cli.options import (
    EndpointOpt,
    IndexOpt,
    JsonOpt,
    LocalOpt,
    NameOpt,
    ProfileOpt,
    RegionOpt,
    TableOpt,
    target_from,
)
from ddbsearch.errors import PartialFailure

app = typer.Typer(rich_markup_mode="rich")


@app.command()
def redrive(
    *,
    max_messages: Annotated[
        int | None,
        typer.Option("--max", min=1, help="Handle at most this many dead-letter messages."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read the messages and the items; change nothing, delete nothing.",
        ),
    ] = False,
    json_output: JsonOpt = False,
    local: LocalOpt = False,
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    table: TableOpt = None,
    index: IndexOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Re-index the current state of every dead-lettered item, then drop its message.

    Each item is read again from the table and indexed at a version below any
    later stream write, so an old record never overwrites a newer document.
    Items that still cannot be indexed stay in the queue with their reason.
    """
    from ddbsearch.ops.redrive import redrive as run

    target = target_from(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
    )
    report = run(target, max_messages=max_messages, dry_run=dry_run)
    if json_output:
        console.out.print(json.dumps(report.to_json()), markup=False, highlight=False)
    elif not console.state.quiet:
        view = Table(title="redrive" + (" (dry run)" if dry_run else ""), show_header=False)
        view.add_row("messages received", str(report.received))
        view.add_row("re-indexed", str(report.indexed))
        view.add_row("deleted (item gone)", str(report.deleted))
        view.add_row("already newer in the index", str(report.stale))
        view.add_row("still failing (kept in queue)", str(len(report.still_failing)))
        view.add_row("stream batch records (use backfill)", str(report.batch_records))
        console.err.print(view)
        for failure in report.still_failing[:20]:
            console.warn(f"{failure['documentId']}: {failure['reason']}")
    if report.still_failing:
        raise PartialFailure(
            f"{len(report.still_failing)} dead-lettered item(s) still cannot be indexed",
            hint="fix them in the table, then run redrive again",
        )
