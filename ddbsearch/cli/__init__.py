"""The ``ddbsearch`` command line: Typer commands only (resolve the target, make one
library call, render). One module per command (``deploy`` holds deploy and destroy),
each a Typer sub-app; :data:`ddbsearch.cli.app.COMMANDS` lists them, and the root
group imports a command's module only when that command runs (or help lists them all).
"""

from __future__ import annotations

from ddbsearch.cli.app import app


def main() -> None:
    app(prog_name="ddbsearch")


__all__ = ["app", "main"]
