"""One error hierarchy for the whole library; the CLI maps each to an exit code.

The library never prints and never exits: it raises one of these. Messages are
one line, say what went wrong and what to do, and never contain item contents
or credentials.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README "Exit codes" keeps this table)."""

    OK = 0
    ERROR = 1  # unexpected internal error (a bug): run with --debug and report it
    USAGE = 2  # bad option or bad input (malformed JSON, wrong DynamoDB types, missing keys)
    NO_HITS = 3  # search ran fine and matched nothing
    NOT_DEPLOYED = 4  # no stack to talk to: deploy first, or name one
    NOT_FOUND = 5  # the named table, index, stack or resource does not exist
    UNREACHABLE = 6  # an endpoint did not answer (network, stopped local stack)
    AUTH = 7  # credentials missing, expired or not allowed
    PREREQUISITE = 8  # a required tool or package is missing (terraform, emulators)
    UNHEALTHY = 9  # status found the pipeline degraded
    PARTIAL = 10  # the command finished but some records or items failed
    INFRA = 11  # terraform (or the cloud API it drives) failed
    DRIFT = 12  # verify (or explain) found the index out of step with the table
    REPAIRED = 13  # verify --repair found drift and repaired all of it
    PENDING = 14  # deploy --plan-only: the stack has changes to apply
    BUSY = 15  # another run holds the target's state (a backfill already running on it)
    ABORTED = 130  # interrupted (Ctrl-C) or confirmation declined


class DdbsearchError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InputError(DdbsearchError):
    """The user's input is malformed or does not fit the table."""

    exit_code = ExitCode.USAGE


class ConfigurationError(DdbsearchError):
    """The environment or the deployed resources are configured in a way we cannot work with."""

    exit_code = ExitCode.USAGE


class NotDeployedError(DdbsearchError):
    exit_code = ExitCode.NOT_DEPLOYED


class NotFoundError(DdbsearchError):
    exit_code = ExitCode.NOT_FOUND


class UnreachableError(DdbsearchError):
    exit_code = ExitCode.UNREACHABLE


class AuthError(DdbsearchError):
    exit_code = ExitCode.AUTH


class PrerequisiteError(DdbsearchError):
    exit_code = ExitCode.PREREQUISITE


class InfraError(DdbsearchError):
    exit_code = ExitCode.INFRA


class BusyError(DdbsearchError):
    """Another run is using the same state (e.g. a backfill's checkpoint): try again later."""

    exit_code = ExitCode.BUSY


class PartialFailure(DdbsearchError):
    exit_code = ExitCode.PARTIAL


class Aborted(DdbsearchError):
    exit_code = ExitCode.ABORTED
