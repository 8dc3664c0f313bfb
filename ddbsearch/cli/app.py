"""The Typer application object and the error boundary shared by every command.

Each command module defines its own Typer sub-app; the root group loads the module of
the command being run, and only that one (:data:`COMMANDS`), so every command runs
inside the boundary and ``ddbsearch search`` does not import deploy's or backfill's
modules nor build their options. ``--help`` and ``group.commands.items()`` load them all.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from importlib import import_module
from typing import Annotated, Any

import typer
from typer._click.core import Context
from typer._click.exceptions import UsageError
from typer.core import TyperGroup, TyperOption

from ddbsearch import __version__
from ddbsearch.cli import console
from ddbsearch.errors import DdbsearchError, ExitCode

# Command -> the module (under ddbsearch.cli) whose Typer sub-app defines it, in the
# order of `ddbsearch --help`.
COMMANDS = {
    "deploy": "deploy",
    "destroy": "deploy",
    "demo": "demo",
    "put": "put",
    "search": "search",
    "backfill": "backfill",
    "reindex": "reindex",
    "status": "status",
    "verify": "verify",
    "explain": "explain",
    "package": "package",
    "redrive": "redrive",
    "dashboards": "dashboards",
}


class _LazyCommands(MutableMapping[str, Any]):
    """The root group's commands, each built from its module when first looked up."""

    def __init__(self, modules: dict[str, str], built: MutableMapping[str, Any]) -> None:
        self._modules = dict(modules)
        self._built: dict[str, Any] = dict(built)

    def _load(self, name: str) -> None:
        from typer.main import get_group_from_info
        from typer.models import TyperInfo

        sub_app = import_module(f"ddbsearch.cli.{self._modules[name]}").app
        group = get_group_from_info(
            TyperInfo(sub_app),
            pretty_exceptions_short=app.pretty_exceptions_short,
            suggest_commands=True,
            rich_markup_mode=app.rich_markup_mode,
        )
        for command_name, command in group.commands.items():
            if command_name in self._modules and command_name not in self._built:
                _plain_flags(command)
                self._built[command_name] = command

    def __getitem__(self, name: str) -> Any:
        if name not in self._built and name in self._modules:
            self._load(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._modules.pop(name, None)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._modules
        yield from (name for name in self._built if name not in self._modules)

    def __len__(self) -> int:
        return len(self._modules.keys() | self._built.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._modules or name in self._built


class _ErrorBoundaryGroup(TyperGroup):
    """Turns library errors into one red line and a documented exit code.

    Lives on the click group so that it applies both to the installed console
    script and to ``typer.testing.CliRunner``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_flags(self)
        self.commands = _LazyCommands(COMMANDS, self.commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names alone: nothing is imported to list them

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)
        _blank_flags(params)  # Typer adds the completion options after __init__
        return params

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:  # the root's own options (ddbsearch --bogus)
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:  # a command's options and arguments
            _usage_error(exc)
        except DdbsearchError as exc:
            if console.state.debug:
                raise
            console.error(str(exc))
            raise typer.Exit(int(exc.exit_code)) from None
        except (typer.Exit, typer.Abort, typer.TyperException):  # Typer renders these
            raise
        except KeyboardInterrupt:
            if console.state.debug:
                raise
            console.error("interrupted")
            raise typer.Exit(int(ExitCode.ABORTED)) from None
        except Exception as exc:  # the last line of defence: no traceback without --debug
            if console.state.debug:
                raise
            console.error(
                f"internal error: {type(exc).__name__}: {exc} "
                "(run again with --debug for the traceback, and please report it)"
            )
            raise typer.Exit(int(ExitCode.ERROR)) from None


def _usage_error(exc: UsageError) -> Any:
    """One line like every other error, exit 2; no usage box (``--help`` shows usage)."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # `ddbsearch` alone: Typer prints help
        raise exc
    message = exc.format_message().rstrip(".")
    path = exc.ctx.command_path if exc.ctx is not None else "ddbsearch"
    console.error(f"{message[:1].lower()}{message[1:]} (see '{path} --help')")
    raise typer.Exit(int(ExitCode.USAGE)) from None


def _blank_flags(params: list[Any]) -> None:
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""


def _plain_flags(command: Any) -> None:
    """Flags take no value: no ``<bool>`` after them in --help (an empty metavar)."""
    # --help is made (once, then cached) on demand: make it now to reach it too.
    _blank_flags([*command.params, command.get_help_option(Context(command))])
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)


app = typer.Typer(
    cls=_ErrorBoundaryGroup,
    name="ddbsearch",
    help="Make a DynamoDB table searchable: DynamoDB Streams -> Lambda -> OpenSearch.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ddbsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="DDBSEARCH_DEBUG", help="Show full tracebacks on errors."),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress bars, spinners or tables on stderr."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Make a DynamoDB table searchable: DynamoDB Streams -> Lambda -> OpenSearch."""
    console.configure(debug=debug, quiet=quiet)
