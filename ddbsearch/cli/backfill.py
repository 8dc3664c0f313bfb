"""`ddbsearch backfill`: index the items a table already holds."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ddbsearch.cli import console
from ddbsearch.cli import export_load as export_view
from ddbsearch.cli.options import (
    EndpointOpt,
    IndexOpt,
    LocalOpt,
    MaxConcurrencyOpt,
    NameOpt,
    ProfileOpt,
    RegionOpt,
    TableOpt,
    target_from,
)
from ddbsearch.cli.render import emit_json, progress_bar

if TYPE_CHECKING:  # the library is imported lazily: `ddbsearch --help` stays fast
    from ddbsearch.ops.backfill import BackfillSummary
    from ddbsearch.targets import Target

app = typer.Typer(rich_markup_mode="rich")


def _print_backfill_summary(summary: BackfillSummary) -> None:
    if console.state.quiet:
        return
    state = "complete" if summary.complete else "stopped"
    console.err.print(
        f"backfill {escape(summary.table)} -> {escape(summary.index)}: {state} "
        f"in {summary.seconds:.1f} s"
    )
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(justify="left")
    table.add_column(justify="right")
    table.add_column(justify="left", style="dim")
    table.add_row("scanned", f"{summary.scanned:,}", "rows read from the table")
    table.add_row("indexed", f"{summary.indexed:,}", "documents written")
    table.add_row("skipped", f"{summary.stale:,}", "a newer version was already indexed")
    table.add_row("failed", f"{summary.failed:,}", "could not be indexed" if summary.failed else "")
    resumed = f", {summary.skipped_segments} finished earlier" if summary.resumed else ""
    table.add_row("segments", str(summary.segments), f"parallel Scan workers{resumed}")
    table.add_row("read capacity", f"{summary.consumed_rcu:,.1f}", "RCU consumed")
    console.err.print(table)
    for reason, count in summary.failures.most_common(10):
        console.err.print(f"  [red]{count:,}[/] x {escape(reason)}")


def _use_export(
    target: Target, from_export: bool | None, *, export_arn: str | None, detach: bool
) -> bool:
    """Export or Scan: what was asked, else the table's size decides (and we say so)."""
    from ddbsearch import clients
    from ddbsearch.ops.export_load import choose_fill
    from ddbsearch.tables import describe_table

    choice = choose_fill(
        target,
        from_export=from_export,
        export_arn=export_arn,
        detach=detach,
        size_bytes=lambda: (
            describe_table(clients.client(target, "dynamodb"), target.table).size_bytes
        ),
    )
    if choice.reason:
        console.info(choice.reason)
    return choice.export


@app.command()
def backfill(
    *,
    segments: Annotated[
        int | None,
        typer.Option(
            "--segments",
            min=1,
            max=1000,
            help="Parallel Scan segments (workers). Default: one per 2 GB or per 100,000 "
            "items of the table, between 1 and 64.",
        ),
    ] = None,
    max_rcu: Annotated[
        float | None,
        typer.Option(
            "--max-rcu",
            min=0.001,
            help="Read at most this many read capacity units per second (measured with "
            "ConsumedCapacity).",
        ),
    ] = None,
    rcu_fraction: Annotated[
        float | None,
        typer.Option(
            "--rcu-fraction",
            min=0.001,
            max=1.0,
            help="Read at most this fraction of the table's provisioned read capacity.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted backfill from its checkpoints; without it a "
            "new backfill starts from the beginning.",
        ),
    ] = False,
    page_size: Annotated[
        int | None,
        typer.Option(
            "--page-size",
            min=1,
            help="Items per Scan request (default: up to 1 MB per page, DynamoDB's limit).",
        ),
    ] = None,
    from_export: Annotated[
        bool | None,
        typer.Option(
            "--from-export/--scan",
            help="Load from a DynamoDB export (no read capacity; the load runs on AWS, or "
            "in the local map runner) or force a Scan. Default: export for tables of 10 GB "
            "or more on AWS, Scan otherwise and on the local stack.",
        ),
    ] = None,
    export_arn: Annotated[
        str | None,
        typer.Option("--export-arn", help="Load this completed export instead of a new one."),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach", help="Start (or find) the export load and return; it keeps running."
        ),
    ] = False,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Stop the running export load of the table.")
    ] = False,
    max_concurrency: MaxConcurrencyOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
    local: LocalOpt = False,
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    table: TableOpt = None,
    index: IndexOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Index the rows the table already holds (parallel Scan, paced, resumable), or
    load them from a DynamoDB export with --from-export (see --cancel, --detach).

    Uses the handler's document model and bulk path; never overwrites a newer
    stream write and never brings back a deleted item. Exit code 10 when some
    rows could not be indexed; Ctrl-C stops cleanly (continue with --resume).
    """
    from ddbsearch.errors import PartialFailure
    from ddbsearch.ops.backfill import run_backfill

    target = target_from(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
    )
    if cancel:
        export_view.cancel(target, json_output=json_output)
        return
    if _use_export(target, from_export, export_arn=export_arn, detach=detach):
        export_view.run(
            target,
            export_arn=export_arn,
            detach=detach,
            max_concurrency=max_concurrency,
            json_output=json_output,
        )
        return
    holder: list[BackfillSummary] = []
    with contextlib.ExitStack() as stack:
        advance: Callable[[int], None] = lambda n: None  # noqa: E731

        def on_start(summary: BackfillSummary, already: int) -> None:
            nonlocal advance
            holder.append(summary)
            if resume and not summary.resumed:
                console.warn("no interrupted backfill to resume: starting a new one")
            total = summary.estimated_items or None
            advance = stack.enter_context(progress_bar(f"backfill {target.table}", total))
            if already:
                advance(already)

        def on_progress(n: int) -> None:
            advance(n)  # rebound by on_start once the plan (and total) is known

        try:
            result = run_backfill(
                target,
                segments=segments,
                max_rcu=max_rcu,
                rcu_fraction=rcu_fraction,
                resume=resume,
                page_size=page_size,
                on_start=on_start,
                on_progress=on_progress,
            )
        finally:
            stack.close()
            if holder and json_output:
                emit_json(holder[0].to_json())
            elif holder:
                _print_backfill_summary(holder[0])
    if result.failed:
        raise PartialFailure(
            f"{result.failed:,} of {result.scanned:,} rows could not be indexed",
            hint="reasons are listed in the summary",
        )
