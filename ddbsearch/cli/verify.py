"""`ddbsearch verify`: compare the whole table with the index; `--repair` fixes the drift."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
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
from ddbsearch.cli.render import _RateColumn
from ddbsearch.errors import ExitCode

app = typer.Typer(rich_markup_mode="rich")

if TYPE_CHECKING:
    from ddbsearch.ops.verify import Difference, VerifyReport

_EXPLAIN_KIND = {
    "missing": "in the table, not in the index",
    "orphan": "in the index, not in the table",
    "stale": "content differs from the item",
    "older": "the index holds an older version",
    "unindexable": "the document model rejects the item",
}


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class _Bars:
    """Progress for the two reads and the re-check (nothing when quiet or not a TTY)."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def start(self, report: VerifyReport) -> None:
        if not console.interactive():
            return
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console.err,
        )
        self.progress.start()
        self.tasks["table"] = self.progress.add_task(
            f"table {escape(report.table)}", total=report.estimated_items or None
        )
        self.tasks["index"] = self.progress.add_task(
            f"index {escape(report.index)}", total=report.index_documents or None
        )

    def advance(self, side: str, n: int, total: int | None = None) -> None:
        if self.progress is None:
            return
        if side not in self.tasks:
            self.tasks[side] = self.progress.add_task("re-check differences", total=total)
        self.progress.advance(self.tasks[side], n)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _print_report(report: VerifyReport, shown: int) -> None:
    if console.state.quiet:
        return
    headline = {
        "equal": "[green]index and table agree[/]",
        "drift": "[bold red]drift found[/]",
        "repaired": "[yellow]drift found and repaired[/]",
    }[report.result]
    console.err.print(
        f"verify {escape(report.table)} -> {escape(report.index)}: {headline} "
        f"in {report.seconds:.1f} s"
    )
    view = Table(show_header=False, box=None, padding=(0, 2))
    view.add_column(justify="left")
    view.add_column(justify="right")
    view.add_column(justify="left", style="dim")
    plural = "s" if report.segments != 1 else ""
    view.add_row(
        "items", f"{report.items:,}", f"read from the table ({report.segments} segment{plural})"
    )
    note = f", {report.index_read_note}" if report.index_read_note else ""
    view.add_row(
        "documents", f"{report.documents:,}", f"read from the index ({report.index_read}{note})"
    )
    for kind, meaning in _EXPLAIN_KIND.items():
        count = report.counts.get(kind, 0)
        ids = report.samples.get(kind, [])[:shown]
        more = f" +{count - len(ids):,} more" if count > len(ids) else ""
        detail = (", ".join(escape(i) for i in ids) + more) if ids else meaning
        view.add_row(kind, f"{count:,}", detail)
    view.add_row(
        "in flight", f"{report.in_flight:,}", "resolved when read again (writes in flight)"
    )
    if report.unsettled:
        view.add_row("unsettled", f"{report.unsettled:,}", "changed at every re-check; not counted")
    if report.repair:
        fixed = ", ".join(f"{k} {v:,}" for k, v in sorted(report.repairs.items())) or "nothing"
        view.add_row("repaired", f"{report.repaired:,}", fixed)
    console.err.print(view)


@app.command()
def verify(
    *,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Fix each confirmed difference through the document model, at a version "
            "that never overwrites a newer stream write. Without it nothing is written.",
        ),
    ] = False,
    segments: Annotated[
        int | None,
        typer.Option(
            "--segments",
            min=1,
            max=64,
            help="Parallel Scan segments. Default: as backfill (one per 2 GB or per 100,000 "
            "items, between 1 and 64).",
        ),
    ] = None,
    max_rcu: Annotated[
        float | None,
        typer.Option(
            "--max-rcu", min=0.001, help="Read at most this many read capacity units per second."
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
    page_size: Annotated[
        int | None,
        typer.Option("--page-size", min=1, help="Items per Scan request (default: 1 MB pages)."),
    ] = None,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            min=0,
            help="Seconds between the re-checks of a difference; longer than the "
            "pipeline's lag, so that writes in flight are not reported as drift.",
        ),
    ] = 5.0,
    show: Annotated[
        int, typer.Option("--show", min=0, help="Ids shown per kind of difference.")
    ] = 10,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="JSON lines on stdout: one per difference as it is confirmed, then a summary.",
        ),
    ] = False,
    local: LocalOpt = False,
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    table: TableOpt = None,
    index: IndexOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Compare the whole table with the index, item by item (exit 12 on drift).

    Reports missing documents, orphans, stale content, older versions and items the
    document model rejects; every difference is read again consistently before it is
    reported. With --repair each is fixed and the exit code is 13 when all were.
    """
    from ddbsearch.ops.verify import run_verify

    target = target_from(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
    )
    bars = _Bars()

    def on_progress(side: str, n: int) -> None:
        bars.advance(side, n)

    def on_difference(diff: Difference) -> None:
        if json_output:
            _emit({"type": "difference", **diff.to_json()})

    try:
        report = run_verify(
            target,
            repair=repair,
            segments=segments,
            max_rcu=max_rcu,
            rcu_fraction=rcu_fraction,
            page_size=page_size,
            settle_seconds=settle,
            sample=show,
            on_start=bars.start,
            on_progress=on_progress,
            on_difference=on_difference,
        )
    finally:
        bars.stop()
    if json_output:
        _emit({"type": "summary", **report.to_json()})
    else:
        _print_report(report, show)
    if report.result == "equal":
        return
    if report.result == "repaired":
        console.info(f"repaired {report.repaired:,} difference(s)")
        raise typer.Exit(int(ExitCode.REPAIRED))
    if report.repair:
        console.error(
            f"{report.unrepaired:,} of {report.drift:,} difference(s) could not be repaired "
            "(reasons with --json)"
        )
    else:
        console.error(
            f"{report.drift:,} difference(s) between table and index "
            "(run 'ddbsearch verify --repair' to fix them)"
        )
    raise typer.Exit(int(ExitCode.DRIFT))
