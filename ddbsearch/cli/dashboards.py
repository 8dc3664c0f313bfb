"""`ddbsearch dashboards`: OpenSearch Dashboards through a local signing proxy."""

from __future__ import annotations

import json
import signal
import threading
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

app = typer.Typer(rich_markup_mode="rich")


@app.command()
def dashboards(
    *,
    port: Annotated[
        int,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            envvar="DDBSEARCH_DASHBOARDS_PORT",
            help="Local port to listen on (127.0.0.1 only); 0 picks a free one.",
        ),
    ] = 0,
    no_browser: Annotated[
        bool,
        typer.Option("--no-browser", help="Print the URL only; do not open a browser."),
    ] = False,
    json_output: JsonOpt = False,
    local: LocalOpt = False,
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    table: TableOpt = None,
    index: IndexOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Open OpenSearch Dashboards through a local proxy that signs with your credentials.

    The domain stays closed to everyone but its listed principals: the proxy listens on
    127.0.0.1, admits only the browser that opened its secret URL, forwards to the
    target's domain and nothing else, and signs every request (SigV4) with your AWS
    credentials. On the local stack it proxies the local search endpoint. Stop it with
    Ctrl-C (exit 0).
    """
    from ddbsearch.ops.dashboards import proxy_for

    target = target_from(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
    )
    proxy = proxy_for(target, port=port)
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        proxy.start()
        if json_output:
            console.out.print(
                json.dumps(
                    {"url": proxy.url, "port": proxy.port, "upstream": target.search_endpoint}
                ),
                markup=False,
                highlight=False,
            )
            console.out.file.flush()
        elif console.state.quiet:  # the URL is the one thing this command must say
            console.err.print(proxy.url, markup=False, soft_wrap=True)
        console.info(
            f"Dashboards for [bold]{escape(target.name)}[/] ({escape(target.search_endpoint)}) at\n"
            f"  {escape(proxy.url)}\n"
            "The URL is a password for your AWS identity: do not share it. Ctrl-C stops the proxy."
        )
        if not no_browser:
            import webbrowser

            # The launcher, not the URL: a browser's command line is visible to other users.
            if not webbrowser.open(proxy.launcher().as_uri()):
                console.warn("no browser found: open the URL above yourself")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass  # Ctrl-C is how this command ends: exit 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        proxy.close()
    console.info("proxy stopped")
