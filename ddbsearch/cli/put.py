"""`ddbsearch put`: write items to the table."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

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
from ddbsearch.cli.render import emit_json, progress_bar, read_file
from ddbsearch.errors import InputError

app = typer.Typer(rich_markup_mode="rich")


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
    profile: ProfileOpt = None,
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
        items = [(f"{file} line {n}", it) for n, it in parse_lines(read_file(file), source=file)]
    target = target_from(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
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
