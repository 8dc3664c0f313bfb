"""Options shared by the commands that talk to a deployed pipeline, defined once.

Use them as parameter annotations (``local: LocalOpt = False``) and turn them into a
:class:`~ddbsearch.targets.Target` with :func:`target_from`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ddbsearch.targets import Target, resolve_target

if TYPE_CHECKING:
    from ddbsearch.ops.reindex import SchemaOptions

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


# The document model of an index generation (deploy: the first one; reindex: the next one).
_SCHEMA_PANEL = "Index schema"
MaxConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--max-concurrency",
        min=1,
        max=1000,
        help="Local export loads: files loaded at once (default 4; on AWS the "
        "Terraform variable export_load_max_concurrency).",
    ),
]
MappingOpt = Annotated[
    str | None,
    typer.Option(
        "--mapping",
        metavar="FILE",
        rich_help_panel=_SCHEMA_PANEL,
        help='Field types merged over ddbsearch\'s template, as JSON: short form {"createdAt": '
        '"date", "sku": "keyword"} or an OpenSearch mapping {"properties": {...}}.',
    ),
]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--include",
        metavar="PATH",
        rich_help_panel=_SCHEMA_PANEL,
        help="Index only these attribute paths (repeatable; a.b is b inside map a). "
        "Keys are always indexed.",
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        metavar="PATH",
        rich_help_panel=_SCHEMA_PANEL,
        help="Do not index these attribute paths (repeatable; wins over --include).",
    ),
]
VersionAttributeOpt = Annotated[
    str | None,
    typer.Option(
        "--version-attribute",
        metavar="NAME",
        rich_help_panel=_SCHEMA_PANEL,
        help="Use this numeric attribute (an optimistic-locking version) as the document "
        "version on every path; '' removes it.",
    ),
]
TtlDeletesOpt = Annotated[
    str | None,
    typer.Option(
        "--ttl-deletes",
        metavar="delete|keep",
        rich_help_panel=_SCHEMA_PANEL,
        help="Items DynamoDB's TTL deletes: delete them from the index (default) or keep them.",
    ),
]


def schema_from(
    mapping: str | None,
    include: list[str] | None,
    exclude: list[str] | None,
    version_attribute: str | None,
    ttl_deletes: str | None,
) -> SchemaOptions:
    """The schema options as the library takes them (the mapping file read and parsed)."""
    from ddbsearch.errors import InputError
    from ddbsearch.ops.reindex import SchemaOptions, read_mapping

    if ttl_deletes is not None and ttl_deletes not in ("delete", "keep"):
        raise InputError(f"--ttl-deletes must be 'delete' or 'keep', not {ttl_deletes!r}")
    return SchemaOptions(
        mapping=read_mapping(mapping) if mapping is not None else None,
        include=include,
        exclude=exclude,
        version_attribute=version_attribute,
        ttl_deletes=ttl_deletes,
    )
