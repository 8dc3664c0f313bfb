"""`ddbsearch demo`: the whole pipeline on a throwaway local stack, in one command."""

from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Annotated

import typer
from rich.markup import escape

from ddbsearch.cli import console

app = typer.Typer(rich_markup_mode="rich")


@app.command()
def demo(
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=1,
            envvar="DDBSEARCH_DEMO_TIMEOUT",
            help="Seconds to wait for the item to become searchable.",
        ),
    ] = 30.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout.")
    ] = False,
) -> None:
    """Run the whole pipeline locally (no AWS account): put an item, search it, clean up.

    Starts a temporary local stack (moto server + osmem-server + the stream worker
    running the Lambda zip), deploys the reference table UsersTransactions, puts
    the item userId=3, transactionId=51, "Final mega test 2", waits until the
    search 'mega test' finds it, prints the hit and the put-to-searchable latency,
    and tears the stack down. A local stack you deployed yourself is left alone.
    Exits 0 only if the item was found.
    """
    from ddbsearch.local.demo import run_demo

    interactive = console.interactive()
    status = console.err.status("starting", spinner="dots") if interactive else nullcontext()
    with status as spinner:

        def progress(message: str) -> None:
            if spinner is not None:
                spinner.update(escape(message))
            else:
                console.info(message)

        result = run_demo(timeout=timeout, on_progress=progress)

    if json_output:
        console.out.print_json(json.dumps(result.to_json()))
    source = result.hit_source
    console.info(
        f"[green]found[/] {escape(result.hit_id)}: "
        + ", ".join(f"{escape(str(k))}={escape(repr(v))}" for k, v in sorted(source.items()))
    )
    console.info(
        f"'{escape(result.query)}' found the item [bold]{result.latency_seconds * 1000:.0f} ms[/] "
        "after the put (DynamoDB -> stream -> Lambda zip -> search index)"
    )
