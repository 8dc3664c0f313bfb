"""The ``ddbsearch`` command line: Typer commands only (resolve the target, make one
library call, render). One module per command (``deploy`` holds deploy and destroy),
each a Typer sub-app composed into :data:`ddbsearch.cli.app.app` here.
"""

from __future__ import annotations

from ddbsearch.cli import (
    backfill,
    dashboards,
    demo,
    deploy,
    explain,
    package,
    put,
    redrive,
    reindex,
    search,
    status,
    verify,
)
from ddbsearch.cli.app import app

# The order is the order of `ddbsearch --help`.
for _module in (
    deploy,
    demo,
    put,
    search,
    backfill,
    reindex,
    status,
    verify,
    explain,
    package,
    redrive,
    dashboards,
):
    app.add_typer(_module.app)


def main() -> None:
    app(prog_name="ddbsearch")


__all__ = ["app", "main"]
