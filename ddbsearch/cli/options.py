"""Options shared by the commands that talk to a deployed pipeline, defined once.

Use them as parameter annotations (``local: LocalOpt = False``) and turn them into a
:class:`~ddbsearch.targets.Target` with :func:`target_from`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ddbsearch.targets import Target, resolve_target

_TARGET_PANEL = "Target (default: the last deploy)"

LocalOpt = Annotated[
    bool,
    typer.Option(
        "--local",
        envvar="DDBSEARCH_LOCAL",
        help="Use the local stack started by 'ddbsearch deploy --local'.",
        rich_help_panel=_TARGET_PANEL,
    ),
]
NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        metavar="NAME",
        envvar="DDBSEARCH_STACK",
        help="Use the AWS stack deployed under this name.",
        rich_help_panel=_TARGET_PANEL,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        metavar="URL",
        envvar="DDBSEARCH_ENDPOINT",
        help="OpenSearch endpoint URL, instead of the deployed one.",
        rich_help_panel=_TARGET_PANEL,
    ),
]
TableOpt = Annotated[
    str | None,
    typer.Option(
        "--table",
        metavar="TABLE",
        envvar="DDBSEARCH_TABLE",
        help="DynamoDB table name, instead of the deployed one.",
        rich_help_panel=_TARGET_PANEL,
    ),
]
IndexOpt = Annotated[
    str | None,
    typer.Option(
        "--index",
        metavar="INDEX",
        envvar="DDBSEARCH_INDEX",
        help="OpenSearch index name, instead of the deployed one.",
        rich_help_panel=_TARGET_PANEL,
    ),
]
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region",
        metavar="REGION",
        envvar="DDBSEARCH_REGION",
        help="AWS region, instead of the deployed one.",
        rich_help_panel=_TARGET_PANEL,
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        envvar="AWS_PROFILE",
        help=(
            "AWS profile for the credentials (SSO and assume-role profiles work as in "
            "the AWS CLI); default: the one deploy used, else the usual AWS chain."
        ),
        rich_help_panel=_TARGET_PANEL,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Machine-readable output on stdout instead of the Rich view."),
]


def target_from(
    *,
    local: bool,
    name: str | None,
    endpoint: str | None,
    table: str | None,
    index: str | None,
    region: str | None,
    profile: str | None = None,
) -> Target:
    """The target the shared options select (NotDeployedError when there is none)."""
    return resolve_target(
        local=local,
        name=name,
        endpoint=endpoint,
        table=table,
        index=index,
        region=region,
        profile=profile,
    )
