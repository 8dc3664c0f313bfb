"""`ddbsearch search`: query the index and show the hits, or stream them all."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ddbsearch.cli import complete, console
from ddbsearch.cli.formats import (
    Summary,
    cell,
    default_columns,
    hit_value,
    parse_fields,
    writer_for,
)
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
from ddbsearch.errors import ExitCode, InputError

if TYPE_CHECKING:  # the library is imported lazily: `ddbsearch --help` stays fast
    from ddbsearch.ops.search import Aggregation, SearchRequest, SearchResult
    from ddbsearch.targets import Target

app = typer.Typer(rich_markup_mode="rich")


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


def render_hits(
    result: SearchResult, key_names: list[str], columns: list[str] | None = None
) -> Table:
    """The hits as a table that fits the terminal: long values wrap, keys shrink with an
    ellipsis; ``columns`` (--fields) replaces the keys/score/match layout."""
    table = Table(
        title=f"{result.total_text} hit{'s' if result.total != 1 else ''} in {result.took_ms} ms",
        title_justify="left",
        show_lines=False,
    )
    if columns is not None:
        for column in columns:
            table.add_column(escape(column), overflow="fold")
        for hit in result.hits:
            table.add_row(*(escape(cell(hit_value(hit, c))) for c in columns))
        return table
    keys = [k for k in key_names if any(k in h.source for h in result.hits)]
    if not keys:
        table.add_column("_id", style="cyan", no_wrap=True, overflow="ellipsis")
    for k in keys:
        table.add_column(escape(k), style="cyan", no_wrap=True, overflow="ellipsis")
    sorted_hits = any(h.sort is not None and h.score is None for h in result.hits)
    sort_fields = _sort_fields(result.body) if sorted_hits else []
    table.add_column("sort" if sorted_hits else "score", justify="right", overflow="fold")
    table.add_column("match", overflow="fold", ratio=1)
    for hit in result.hits:
        row: list[Any] = (
            [escape(hit.id)] if not keys else [escape(cell(hit.source.get(k))) for k in keys]
        )
        score = "" if hit.score is None else f"{hit.score:.2f}"
        if sorted_hits:
            score = escape(", ".join(cell(hit_value(hit, f)) for f in sort_fields))
        row.append(score)
        match = Text(overflow="fold")
        if hit.highlight:
            for i, (name, fragments) in enumerate(sorted(hit.highlight.items())):
                if i:
                    match.append("\n")
                match.append(f"{name}: ", style="dim")
                match.append_text(_styled(" … ".join(fragments)))
        else:
            others = {k: v for k, v in hit.source.items() if k not in keys}
            match.append(", ".join(f"{k}={cell(v)}" for k, v in list(others.items())[:4]))
        row.append(match)
        table.add_row(*row)
    return table


def _sort_fields(body: dict[str, Any]) -> list[str]:
    """The fields the user sorted by, as _source paths (sub-fields folded back)."""
    out: list[str] = []
    for clause in body.get("sort", []):
        name = next(iter(clause)) if isinstance(clause, dict) else str(clause)
        for suffix in (".keyword", ".long"):
            name = name.removesuffix(suffix)
        if name not in out and name != "_shard_doc":
            out.append(name)
    return out


class Format(str, Enum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"
    tsv = "tsv"


_FIELD_HELP = "Field names complete from the index's mapping."


def _aggregation_table(agg: Aggregation) -> Table | Text:
    title = {"count_by": "count by", "stats": "stats of", "histogram": "histogram of"}
    if agg.kind == "stats" and agg.values is not None:
        table = Table(title=f"stats of {escape(agg.path or '')}", title_justify="left")
        for name in agg.values:
            table.add_column(name, justify="right")
        table.add_row(*(escape(cell(v)) for v in agg.values.values()))
        return table
    buckets = agg.buckets
    if buckets is None:  # a --query-json metric: its answer as it came
        return Text(f"{agg.name}: {json.dumps(agg.raw, ensure_ascii=False)}")
    label = f"{title[agg.kind]} {agg.path}" if agg.kind in title else agg.name
    table = Table(title=escape(label), title_justify="left")
    table.add_column("value", overflow="fold")
    table.add_column("count", justify="right")
    for bucket in buckets:
        table.add_row(escape(cell(bucket.key)), f"{bucket.count:,}")
    if agg.other:
        table.add_row(Text("(other values)", style="dim"), f"{agg.other:,}")
    return table


def _progress(enabled: bool) -> tuple[Any, Callable[[int, int], None] | None]:
    """A progress bar on stderr for --all when stdout is a file or a pipe."""
    if not enabled:
        return contextlib.nullcontext(), None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console.err,
        transient=True,
    )
    task = progress.add_task("hits", total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


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
            metavar="NAME",
            help="Search only this field (repeatable; 'name^2' boosts). Default: all text fields.",
            autocompletion=complete.text_fields,
        ),
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            metavar="FIELD=VALUE",
            help="Keep hits where FIELD is VALUE exactly (repeatable; a repeated field matches "
            "any of its values). Strings match FIELD.keyword, integers FIELD.long (exact to "
            "64 bits), other numbers FIELD.",
            autocompletion=complete.filter_fields,
        ),
    ] = None,
    size: Annotated[
        int,
        typer.Option(
            "--size",
            metavar="N",
            min=0,
            max=10_000,
            help="Number of hits to return (0: counts only).",
        ),
    ] = 10,
    sort: Annotated[
        list[str] | None,
        typer.Option(
            "--sort",
            metavar="FIELD[:asc|desc]",
            help="Sort by a field instead of by relevance (repeatable).",
            autocompletion=complete.sort_fields,
        ),
    ] = None,
    query_json: Annotated[
        str | None,
        typer.Option(
            "--query-json",
            metavar="JSON",
            help='Raw OpenSearch query DSL: a query (\'{"match": {"f": "x"}}\') or a full '
            'search body (with "query"; its "aggs" are printed).',
        ),
    ] = None,
    output_format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json|ndjson|csv|tsv",
            help="Output: a table on stderr, or hits on stdout as one JSON document, JSON "
            "lines, CSV (RFC 4180) or TSV.",
            case_sensitive=False,
        ),
    ] = Format.table,
    json_output: Annotated[
        bool, typer.Option("--json", help="Same as --format ndjson: one JSON hit per line.")
    ] = False,
    fields: Annotated[
        list[str] | None,
        typer.Option(
            "--fields",
            metavar="A,B.C",
            help="Columns to show, in every format (comma-separated; nested paths; _id and "
            "_score too).",
            autocompletion=complete.field_list,
        ),
    ] = None,
    all_hits: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Stream every hit, past 10,000 (point in time + search_after); with "
            "--format json, ndjson, csv or tsv.",
        ),
    ] = False,
    count_by: Annotated[
        list[str] | None,
        typer.Option(
            "--count-by",
            metavar="FIELD[:N]",
            help="Count the N (default 10) most frequent values of FIELD (repeatable).",
            autocompletion=complete.exact_fields,
        ),
    ] = None,
    stats: Annotated[
        list[str] | None,
        typer.Option(
            "--stats",
            metavar="FIELD",
            help="Count, min, max, avg and sum of a number field (repeatable).",
            autocompletion=complete.number_fields,
        ),
    ] = None,
    histogram: Annotated[
        list[str] | None,
        typer.Option(
            "--histogram",
            metavar="FIELD:INTERVAL",
            help="Hits per interval of a number (amount:100) or date field (at:1d, at:month, "
            "at:12h) (repeatable).",
            autocompletion=complete.histogram_fields,
        ),
    ] = None,
    hide_expired: Annotated[
        bool,
        typer.Option(
            "--hide-expired",
            help="Hide items whose time to live (the table's TTL attribute) has passed but "
            "that DynamoDB has not deleted yet.",
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
    """Search the index and print the hits (exit code 3 when nothing matches)."""
    from ddbsearch.ops.search import SearchRequest

    fmt = output_format.value
    if json_output:
        if fmt not in ("table", "ndjson"):
            raise InputError(f"--json is --format ndjson; it contradicts --format {fmt}")
        fmt = "ndjson"
    if all_hits and fmt == "table":
        raise InputError(
            "--all streams every hit; a table holds one screen",
            hint="use --all --format ndjson (or csv, tsv, json) > file",
        )
    columns = parse_fields(fields)
    request = SearchRequest(
        text=" ".join(query) if query else None,
        fields=field or [],
        filters=filter_ or [],
        size=size,
        sort=sort or [],
        query_json=query_json,
        highlight=fmt == "table" and columns is None,
        count_by=count_by or [],
        stats=stats or [],
        histograms=histogram or [],
        hide_expired=hide_expired,
    )
    target = target_from(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
    )
    if all_hits:
        _stream_all(target, request, fmt, columns)
    else:
        _one_page(target, request, fmt, columns)


def _one_page(target: Target, request: SearchRequest, fmt: str, columns: list[str] | None) -> None:
    from ddbsearch.ops.search import search as run_search

    wants_keys = (fmt == "table" and not console.state.quiet) or (
        fmt in ("csv", "tsv") and columns is None
    )
    result = run_search(target, request, with_key_names=wants_keys)
    if fmt == "table":
        if result.hits and not console.state.quiet:
            console.err.print(render_hits(result, result.key_names, columns))
    else:
        if fmt in ("csv", "tsv") and columns is None:
            columns = default_columns(result.key_names, result.field_names)
        writer = writer_for(fmt, sys.stdout, columns)
        writer.start()
        for hit in result.hits:
            writer.hit(hit)
        relation = "gte" if result.total_is_lower_bound else "eq"
        writer.finish(Summary(result.total, relation, result.took_ms, result.aggregations))
    if result.aggregations and fmt in ("table", "csv", "tsv") and not console.state.quiet:
        for agg in result.aggregations:
            console.err.print(_aggregation_table(agg))
    if result.total == 0:
        console.info(f"no hits in {result.took_ms} ms")
        raise typer.Exit(int(ExitCode.NO_HITS))
    if fmt != "table" or not result.hits:  # machine output, or --size 0: just the total
        plural = "s" if result.total != 1 else ""
        console.info(f"{result.total_text} hit{plural} in {result.took_ms} ms")


def _stream_all(
    target: Target, request: SearchRequest, fmt: str, columns: list[str] | None
) -> None:
    from ddbsearch.ops.search import key_names, scan

    show_progress = console.interactive() and not sys.stdout.isatty()
    bar, on_progress = _progress(show_progress)
    hits = scan(target, request, on_progress=on_progress)
    if fmt in ("csv", "tsv") and columns is None:
        columns = default_columns(key_names(target), hits.field_names)
    writer = writer_for(fmt, sys.stdout, columns)
    writer.start()
    with bar, contextlib.closing(hits.hits) as stream:  # closing: the PIT goes on any exit
        for hit in stream:
            writer.hit(hit)
    writer.finish(Summary(writer.count))
    if writer.count == 0:
        console.info("no hits")
        raise typer.Exit(int(ExitCode.NO_HITS))
    console.info(f"{writer.count:,} hit{'s' if writer.count != 1 else ''}")
