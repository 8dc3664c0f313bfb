"""The library's error hierarchy; it lives in ``ddbsearch.core.errors`` so the Lambda
zip carries it, and is re-exported here for everything outside the core."""

from ddbsearch.core.errors import (
    Aborted,
    AuthError,
    BusyError,
    ConfigurationError,
    DdbsearchError,
    ExitCode,
    InfraError,
    InputError,
    NotDeployedError,
    NotFoundError,
    PartialFailure,
    PrerequisiteError,
    UnreachableError,
)

__all__ = [
    "Aborted",
    "AuthError",
    "BusyError",
    "ConfigurationError",
    "DdbsearchError",
    "ExitCode",
    "InfraError",
    "InputError",
    "NotDeployedError",
    "NotFoundError",
    "PartialFailure",
    "PrerequisiteError",
    "UnreachableError",
]
