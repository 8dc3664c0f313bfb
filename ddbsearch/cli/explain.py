"""`ddbsearch explain KEY...`: why one item is searchable, or why not."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

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
from ddbsearch.errors import ExitCode

app = typer.Typer(rich_markup_mode="rich")

if TYPE_CHECKING:
    from ddbsearch.ops.explain import Explanation


def _dead_letter_rows(view: Table, result: Explanation) -> None:
    dlq = f"{len(result.dead_letters)} message(s) for this key"
    if result.batch_records:
        dlq += f"; {result.batch_records} on-failure batch record(s) (stream ranges)"
    if result.dead_letter_note:
        dlq += f" ({result.dead_letter_note})"
    view.add_row("dead letters", escape(dlq))
    for letter in result.dead_letters:
        view.add_row("", escape(f"{letter.get('sent_at') or '?'}: {letter.get('reason')}"))


def _render(result: Explanation) -> None:
    style = "green" if result.searchable else ("dim" if result.consistent else "bold red")
    console.err.print(f"[{style}]{escape(result.verdict)}[/]", soft_wrap=True)
    view = Table(show_header=False, box=None, padding=(0, 2))
    view.add_column(style="dim")
    view.add_column()
    view.add_row("key", escape(", ".join(f"{k}={v}" for k, v in result.keys.items())))
    view.add_row("document id", escape(result.doc_id))
    if result.item_present:
        item = f"present, {result.item_attributes} attributes, {result.item_size_bytes:,} bytes"
    else:
        item = "not in the table"
    view.add_row("item", item)
    if result.model_error:
        view.add_row("document model", escape(f"rejects the item: {result.model_error}"))
    if result.doc_present:
        doc = f"present, version {result.doc_version}"
        if result.doc_version_time:
            doc += f" ({result.doc_version_time})"
        view.add_row("document", escape(doc))
        if result.differing_fields:
            view.add_row("differs in", escape(", ".join(result.differing_fields)))
    else:
        view.add_row("document", "not in the index")
    view.add_row("generation", escape(result.generation))
    if result.excluded:
        view.add_row("excluded", escape(", ".join(result.excluded) + " (not indexed)"))
    _dead_letter_rows(view, result)
    view.add_row("indexer", escape(result.lag_note or "unknown"))
    if result.stream is not None:
        view.add_row("stream", escape(result.stream.summary))
    if result.settled:
        view.add_row("note", "the first reads differed; a second read agreed (in flight)")
    console.err.print(view)
    if result.item_values is not None:
        console.err.print_json(json.dumps(result.item_values, ensure_ascii=False))


@app.command()
def explain(
    key: Annotated[
        list[str],
        typer.Argument(
            metavar="KEY...",
            help="The item's key as NAME=VALUE pairs, typed by the table's key schema "
            "(userId=3 transactionId=51), or one JSON object (plain or DynamoDB JSON).",
            show_default=False,
        ),
    ],
    *,
    show_values: Annotated[
        bool,
        typer.Option("--show-values", help="Show the item's values (hidden by default)."),
    ] = False,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            min=0,
            help="When item and document differ, read both again after this many seconds "
            "so that a write in flight is not reported as drift.",
        ),
    ] = 2.0,
    stream_budget: Annotated[
        float,
        typer.Option(
            "--stream-budget",
            min=0,
            help="Read the table's stream for at most this many seconds to find the item's "
            "last change and whether the indexer has read it (0: do not read the stream).",
        ),
    ] = 5.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the verdict and evidence as JSON on stdout.")
    ] = False,
    local: LocalOpt = False,
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    table: TableOpt = None,
    index: IndexOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Say why one item is searchable, or why not: one verdict and its evidence.

    Exit code 0 when table and index agree on the key (searchable, or absent from
    both), 12 when they do not.
    """
    from ddbsearch.ops.explain import explain as run

    target = target_from(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
    )
    result = run(
        target,
        key,
        show_values=show_values,
        settle_seconds=settle,
        stream_budget_seconds=stream_budget,
    )
    if json_output:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    elif not console.state.quiet:
        _render(result)
    if not result.consistent:
        raise typer.Exit(int(ExitCode.DRIFT))
