"""`ddbsearch search`: query the index and show the hits."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

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
from ddbsearch.errors import ExitCode

if TYPE_CHECKING:  # the library is imported lazily: `ddbsearch --help` stays fast
    from ddbsearch.ops.search import SearchResult

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
    profile: ProfileOpt = None,
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
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
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
