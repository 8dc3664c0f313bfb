"""`ddbsearch reindex`: build the next index generation and swap the alias to it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ddbsearch.cli import console
from ddbsearch.cli.options import (
    EndpointOpt,
    ExcludeOpt,
    IncludeOpt,
    IndexOpt,
    LocalOpt,
    MappingOpt,
    MaxConcurrencyOpt,
    NameOpt,
    ProfileOpt,
    RegionOpt,
    TableOpt,
    TtlDeletesOpt,
    VersionAttributeOpt,
    schema_from,
    target_from,
)
from ddbsearch.cli.render import emit_json, progress_bar

if TYPE_CHECKING:  # the library is imported lazily: `ddbsearch --help` stays fast
    from ddbsearch.ops.reindex import ReindexSummary

app = typer.Typer(rich_markup_mode="rich")


def _print_summary(summary: ReindexSummary) -> None:
    if console.state.quiet:
        return
    if summary.aborted:
        if summary.dropped:
            console.err.print(f"aborted: dropped {escape(', '.join(summary.dropped))}")
        else:
            console.err.print("no reindex in progress")
        return
    lines = [f"reindex {escape(summary.index)} -> {escape(summary.generation)}"]
    if summary.fill is not None:
        f = summary.fill
        lines.append(
            f"  filled   {f.scanned:,} rows, {f.indexed:,} indexed, {f.stale:,} already newer "
            f"from the stream, {f.failed:,} failed, in {f.seconds:.1f} s"
        )
    if summary.load is not None:
        load = summary.load
        lines.append(
            f"  filled   {load.items_done:,} rows from an export ({load.files_done}/"
            f"{load.files_total} files), {load.dead_lettered:,} dead-lettered, "
            f"in {load.elapsed_seconds:.1f} s"
        )
    if summary.verify is not None:
        v = summary.verify
        lines.append(
            f"  verified {v.table_items:,} items = {v.documents:,} documents"
            + (f" ({v.unindexable:,} items not indexable)" if v.unindexable else "")
        )
    if summary.swapped or summary.dropped or summary.kept:
        lines.append(f"  serving  {escape(summary.generation)}")
    if summary.dropped:
        lines.append(f"  dropped  {escape(', '.join(summary.dropped))}")
    if summary.kept:
        lines.append(f"  kept     {escape(', '.join(summary.kept))} (no longer written)")
    lines.append(f"  in {summary.seconds:.1f} s")
    console.err.print("\n".join(lines))


@app.command()
def reindex(
    *,
    mapping: MappingOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    version_attribute: VersionAttributeOpt = None,
    ttl_deletes: TtlDeletesOpt = None,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Start from ddbsearch's defaults instead of the serving generation's "
            "configuration (the options given still apply).",
        ),
    ] = False,
    keep_old: Annotated[
        bool,
        typer.Option(
            "--keep-old",
            help="Keep the old generation after the swap (no longer written or searched).",
        ),
    ] = False,
    abort: Annotated[
        bool,
        typer.Option(
            "--abort",
            help="Drop the generation being built (cancelling its export load, if one runs); "
            "the serving one is left untouched.",
        ),
    ] = False,
    segments: Annotated[
        int | None,
        typer.Option("--segments", min=1, max=1000, help="Parallel Scan segments for the fill."),
    ] = None,
    max_rcu: Annotated[
        float | None,
        typer.Option(
            "--max-rcu", min=0.001, help="Read at most this many RCU per second while filling."
        ),
    ] = None,
    from_export: Annotated[
        bool | None,
        typer.Option(
            "--from-export/--scan",
            help="Fill the new generation from a DynamoDB export (no read capacity; the load "
            "runs on AWS, or in the local map runner, and writes only the new generation) or "
            "force a Scan. Default: export for tables of 10 GB or more on AWS, Scan otherwise "
            "and on the local stack.",
        ),
    ] = None,
    export_arn: Annotated[
        str | None,
        typer.Option(
            "--export-arn",
            help="Fill from this export instead of a new one (it must be taken after the "
            "new generation was created).",
        ),
    ] = None,
    max_concurrency: MaxConcurrencyOpt = None,
    settle_seconds: Annotated[
        float | None,
        typer.Option(
            "--settle-seconds",
            min=0,
            help="How long the stream handlers may keep an old view of the generations "
            "(their cache plus one function timeout); waited before the fill and before "
            "the old generation is dropped. Default: 180.",
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
    profile: ProfileOpt = None,
) -> None:
    """Rebuild the index as a new generation and swap searches to it, with no downtime.

    Creates the next generation (the serving configuration, or the one the options
    give), has the stream write it too, fills it from the table like backfill (a
    Scan, or for large tables an export load into the new generation only),
    verifies ids and counts, then moves the alias atomically and drops the old
    generation. Running it again continues an interrupted reindex; --abort drops
    the generation being built. Exit code 2 for an invalid configuration (nothing
    is created), 10 when the new generation cannot be built (nothing is swapped).
    """
    from ddbsearch.core.lifecycle import RETIRE_GRACE_SECONDS
    from ddbsearch.errors import InputError
    from ddbsearch.ops.reindex import ReindexEvents, abort_reindex, run_reindex

    target = target_from(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
    )
    settle = RETIRE_GRACE_SECONDS if settle_seconds is None else settle_seconds
    schema = schema_from(mapping, include, exclude, version_attribute, ttl_deletes)

    def step(message: str) -> None:
        console.info(escape(message))

    if abort:
        if any(v is not None for v in (mapping, include, exclude, version_attribute, ttl_deletes)):
            raise InputError("--abort takes no configuration options")
        if from_export is not None or export_arn is not None:
            raise InputError("--abort takes no fill options (--from-export, --scan, --export-arn)")
        summary = abort_reindex(target, retire_seconds=settle, events=ReindexEvents(step=step))
        if json_output:
            emit_json(summary.to_json())
        else:
            _print_summary(summary)
        return

    holder: list[Any] = []
    with contextlib.ExitStack() as stack:
        advance: Callable[[int], None] = lambda n: None  # noqa: E731

        def fill_start(total: int, already: int) -> None:
            nonlocal advance
            advance = stack.enter_context(progress_bar(f"fill {target.table}", total or None))
            if already:
                advance(already)

        def progress(n: int) -> None:
            advance(n)  # rebound by fill_start once the total is known

        events = ReindexEvents(step=step, fill_start=fill_start, progress=progress)
        try:
            summary = run_reindex(
                target,
                mapping=schema.mapping,
                include=schema.include,
                exclude=schema.exclude,
                version_attribute=schema.version_attribute,
                ttl_deletes=schema.ttl_deletes,
                reset=reset,
                keep_old=keep_old,
                segments=segments,
                max_rcu=max_rcu,
                from_export=from_export,
                export_arn=export_arn,
                max_concurrency=max_concurrency,
                settle_seconds=settle,
                retire_seconds=settle,
                events=events,
            )
            holder.append(summary)
        finally:
            stack.close()
    if json_output:
        emit_json(holder[0].to_json())
    else:
        _print_summary(holder[0])
