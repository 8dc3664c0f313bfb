"""Everyday operator commands: put, backfill, search, status."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ddbsearch.cli import console
from ddbsearch.cli.app import app
from ddbsearch.cli.options import (
    EndpointOpt,
    IndexOpt,
    JsonOpt,
    LocalOpt,
    NameOpt,
    RegionOpt,
    TableOpt,
    target_from,
)
from ddbsearch.errors import ExitCode, InputError

if TYPE_CHECKING:  # the library is imported lazily: `ddbsearch --help` stays fast
    from ddbsearch.ops.backfill import BackfillSummary
    from ddbsearch.ops.search import SearchResult

# --------------------------------------------------------------------------- helpers


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} items/s" if speed else "- items/s", style="progress.data.speed")


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr (nothing when quiet or not a terminal); yields advance()."""
    if not console.interactive():
        yield lambda n: None
        return
    columns: list[ProgressColumn] = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console.err, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def emit_json(data: Any) -> None:
    """One JSON document on stdout (machine output)."""
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _read_file(path: str) -> list[str]:
    if path == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None


# --------------------------------------------------------------------------- put


@app.command()
def put(
    *,
    item: Annotated[
        str | None,
        typer.Option(
            "--item",
            help='One item as plain JSON (\'{"userId": 3, "shortDescription": "x"}\') '
            'or DynamoDB JSON (\'{"userId": {"N": "3"}}\').',
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            help="A JSON-lines file, one item per line ('-' reads stdin). "
            "Every line is checked before anything is written.",
        ),
    ] = None,
    generate: Annotated[
        int | None,
        typer.Option(
            "--generate",
            min=1,
            help="Write this many realistic transactions for the reference table.",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.001, help="Write at most this many items per second."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed for --generate, for reproducible data."),
    ] = None,
    json_output: JsonOpt = False,
    local: LocalOpt = False,
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    table: TableOpt = None,
    index: IndexOpt = None,
    region: RegionOpt = None,
) -> None:
    """Write items to the table (the stream then indexes them).

    Every item is checked against the table's key schema first: one
    malformed or incomplete item means nothing is written. Writes are
    batched (25 per request); unprocessed items are retried with backoff.
    """
    from ddbsearch.items import parse_item, parse_lines
    from ddbsearch.ops.put import put as run_put
    from ddbsearch.ops.put import raise_for_report

    if sum(x is not None for x in (item, file, generate)) != 1:
        raise InputError("give exactly one of --item, --file or --generate")
    # Parse before touching the network: malformed input fails fast, even offline.
    items: list[tuple[str, Any]] = []
    if item is not None:
        items = [("item", parse_item(item))]
    elif file is not None:
        items = [(f"{file} line {n}", it) for n, it in parse_lines(_read_file(file), source=file)]
    target = target_from(
        local=local, name=name, endpoint=endpoint, table=table, index=index, region=region
    )
    total = generate if generate is not None else len(items)
    with progress_bar(f"writing to {target.table}", total) as advance:
        report = run_put(
            target, items, generate=generate, seed=seed, rate=rate, on_progress=advance
        )
    if json_output:
        emit_json(
            {
                "table": target.table,
                "written": report.written,
                "requests": report.requests,
                "retried": report.retried,
                "unprocessed": len(report.unprocessed),
                "seconds": round(report.seconds, 3),
            }
        )
    console.info(
        f"wrote {report.written} item{'s' if report.written != 1 else ''} to "
        f"{escape(target.table)} ({report.requests} request{'s' if report.requests != 1 else ''}"
        f", {report.retried} retried)"
    )
    raise_for_report(report)


# --------------------------------------------------------------------------- search


def _styled(fragment: str) -> Text:
    """A highlight fragment with the matched terms in bold."""
    from ddbsearch.ops.search import MARK_END, MARK_START

    text = Text()
    rest = fragment
    while MARK_START in rest:
        before, _, after = rest.partition(MARK_START)
        matched, _, rest = after.partition(MARK_END)
        text.append(before)
        text.append(matched, style="bold reverse")
    text.append(rest)
    return text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render_hits(result: SearchResult, key_names: list[str]) -> Table:
    table = Table(
        title=f"{result.total_text} hit{'s' if result.total != 1 else ''} in {result.took_ms} ms",
        title_justify="left",
        show_lines=False,
    )
    keys = [k for k in key_names if any(k in h.source for h in result.hits)]
    if not keys:
        table.add_column("_id", style="cyan", no_wrap=True)
    for k in keys:
        table.add_column(k, style="cyan", no_wrap=True)
    sorted_hits = any(h.sort is not None and h.score is None for h in result.hits)
    table.add_column("sort" if sorted_hits else "score", justify="right")
    table.add_column("match")
    for hit in result.hits:
        row: list[Any] = (
            [escape(hit.id)] if not keys else [escape(_cell(hit.source.get(k))) for k in keys]
        )
        score = "" if hit.score is None else f"{hit.score:.2f}"
        if hit.sort is not None and hit.score is None:
            score = escape(", ".join(_cell(s) for s in hit.sort))
        row.append(score)
        match = Text()
        if hit.highlight:
            for i, (name, fragments) in enumerate(sorted(hit.highlight.items())):
                if i:
                    match.append("\n")
                match.append(f"{name}: ", style="dim")
                match.append_text(_styled(" … ".join(fragments)))
        else:
            others = {k: v for k, v in hit.source.items() if k not in keys}
            match.append(", ".join(f"{k}={_cell(v)}" for k, v in list(others.items())[:4]))
        row.append(match)
        table.add_row(*row)
    return table


@app.command()
def search(
    *,
    query: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="QUERY",
            help="Words to find (quoted or not). All words must match (AND); 'a | b' for "
            "either, double quotes inside the query for a phrase, -word to exclude, pre* "
            "for a prefix. Omit to list documents.",
            show_default=False,
        ),
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field",
            help="Search only this field (repeatable; 'name^2' boosts). Default: all text fields.",
        ),
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="Keep hits where FIELD=VALUE exactly (repeatable; a repeated field matches "
            "any of its values). Strings match the FIELD.keyword sub-field, numbers FIELD.",
        ),
    ] = None,
    size: Annotated[
        int, typer.Option("--size", min=0, max=10_000, help="Number of hits to return.")
    ] = 10,
    sort: Annotated[
        list[str] | None,
        typer.Option(
            "--sort", help="Sort by FIELD[:asc|desc] (repeatable) instead of by relevance."
        ),
    ] = None,
    query_json: Annotated[
        str | None,
        typer.Option(
            "--query-json",
            help='Raw OpenSearch query DSL: a query (\'{"match": {"f": "x"}}\') or a full '
            'search body (with "query").',
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="JSON lines on stdout, one hit per line with _id, _score, _source."
        ),
    ] = False,
    local: LocalOpt = False,
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    table: TableOpt = None,
    index: IndexOpt = None,
    region: RegionOpt = None,
) -> None:
    """Search the index and print the hits (exit code 3 when nothing matches)."""
    from ddbsearch.ops.search import SearchRequest
    from ddbsearch.ops.search import search as run_search

    request = SearchRequest(
        text=" ".join(query) if query else None,
        fields=field or [],
        filters=filter_ or [],
        size=size,
        sort=sort or [],
        query_json=query_json,
        highlight=not json_output,
    )
    target = target_from(
        local=local, name=name, endpoint=endpoint, table=table, index=index, region=region
    )
    result = run_search(target, request, with_key_names=not json_output and not console.state.quiet)
    if json_output:
        for hit in result.hits:
            sys.stdout.write(json.dumps(hit.to_json(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    elif result.hits and not console.state.quiet:
        console.err.print(render_hits(result, result.key_names))
    if result.total == 0:
        console.info(f"no hits in {result.took_ms} ms")
        raise typer.Exit(int(ExitCode.NO_HITS))
    if json_output or not result.hits:  # --json, or --size 0: just the total
        console.info(f"{result.total_text} hits in {result.took_ms} ms")


# --------------------------------------------------------------------------- backfill


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
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
    local: LocalOpt = False,
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    table: TableOpt = None,
    index: IndexOpt = None,
    region: RegionOpt = None,
) -> None:
    """Index the rows the table already holds (parallel Scan, paced, resumable).

    Uses the handler's document model and bulk path; never overwrites a newer
    stream write and never brings back a deleted item. Exit code 10 when some
    rows could not be indexed; Ctrl-C stops cleanly (continue with --resume).
    """
    from ddbsearch.errors import PartialFailure
    from ddbsearch.ops.backfill import run_backfill

    target = target_from(
        local=local, name=name, endpoint=endpoint, table=table, index=index, region=region
    )
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


# --------------------------------------------------------------------------- status

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
) -> None:
    """Say whether the pipeline is healthy (exit code 9 when it is not).

    Checks the table and its stream, the index and the item/document counts,
    the event source mapping, the stream lag, the dead-letter queue and recent
    handler errors, and lists the reasons for any failure.
    """
    from ddbsearch.ops.status import collect_status

    target = target_from(
        local=local, name=name, endpoint=endpoint, table=table, index=index, region=region
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
