"""`ddbsearch status`: is the pipeline healthy?"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ddbsearch.cli import console
from ddbsearch.cli.options import (
    EndpointOpt,
    IndexOpt,
    LocalOpt,
    NameOpt,
    ProfileOpt,
    RegionOpt,
    TableOpt,
    target_from,
)
from ddbsearch.cli.render import emit_json
from ddbsearch.errors import ExitCode

app = typer.Typer(rich_markup_mode="rich")


_STATE_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "unknown": "dim"}


@app.command()
def status(
    *,
    max_lag: Annotated[
        float,
        typer.Option(
            "--max-lag",
            min=0,
            help="Report unhealthy when the stream's iterator age exceeds this many seconds.",
        ),
    ] = 300.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
    local: LocalOpt = False,
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    table: TableOpt = None,
    index: IndexOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Say whether the pipeline is healthy (exit code 9 when it is not).

    Checks the table and its stream, the index and the item/document counts,
    the event source mapping, the stream lag, the dead-letter queue and recent
    handler errors, and lists the reasons for any failure.
    """
    from ddbsearch.ops.status import collect_status

    target = target_from(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
    )
    report = collect_status(target, max_lag_seconds=max_lag)
    if json_output:
        emit_json(report.to_json())
    elif not console.state.quiet:
        view = Table(
            title=f"{escape(target.kind)} stack '{escape(target.name)}' ({escape(target.region)})",
            title_justify="left",
        )
        view.add_column("check")
        view.add_column("state")
        view.add_column("detail")
        for check in report.checks:
            style = _STATE_STYLE[check.state]
            view.add_row(check.name, f"[{style}]{check.state}[/]", escape(check.summary))
        console.err.print(view)
        if report.healthy:
            console.err.print("[green]healthy[/]")
    if not report.healthy:
        console.error("pipeline unhealthy: " + "; ".join(report.reasons))
        raise typer.Exit(int(ExitCode.UNHEALTHY))
