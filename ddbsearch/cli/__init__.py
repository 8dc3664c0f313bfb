"""The ``ddbsearch`` command line: Typer commands only (parse, call the library, render)."""

from __future__ import annotations

# Each module registers its commands on ``app`` when imported.
from ddbsearch.cli import (  # noqa: F401
    deploy,
    local,
    ops,
    package,
    redrive,
)
from ddbsearch.cli.app import app


def main() -> None:
    app(prog_name="ddbsearch")


__all__ = ["app", "main"]
