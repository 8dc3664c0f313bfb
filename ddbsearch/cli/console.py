"""Where the CLI writes: machine output to stdout, everything for humans to stderr."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape


@dataclass
class _State:
    debug: bool = False
    quiet: bool = False


state = _State()

# Rich output (tables, progress, spinners) goes to stderr; stdout is kept for
# --json / JSON lines so that pipes stay clean. Rich turns colour off by itself when
# NO_COLOR is set, TERM is dumb, or the stream is not a terminal (a pipe, a file).
err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


def configure(*, debug: bool, quiet: bool) -> None:
    global err, out  # noqa: PLW0603 - made again per run: the environment (NO_COLOR,
    # COLUMNS, FORCE_COLOR) and the streams are read when a command starts
    state.debug = debug
    state.quiet = quiet
    err = Console(stderr=True, highlight=False)
    out = Console(highlight=False, soft_wrap=True)


def interactive() -> bool:
    """True when progress bars and spinners should be drawn."""
    return not state.quiet and err.is_terminal


def error(message: str) -> None:
    # Plain write, no wrapping: errors are one line whatever the terminal width.
    if err.is_terminal:
        err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    else:
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()


def info(message: str) -> None:
    if not state.quiet:
        err.print(message, soft_wrap=True)


def warn(message: str) -> None:
    if err.is_terminal:
        err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)
    else:
        sys.stderr.write(f"warning: {message}\n")
        sys.stderr.flush()
