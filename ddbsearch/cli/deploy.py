"""`ddbsearch deploy` / `ddbsearch destroy` (AWS through Terraform, or --local)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ddbsearch.cli import console
from ddbsearch.cli.options import (
    ExcludeOpt,
    IncludeOpt,
    MappingOpt,
    TtlDeletesOpt,
    VersionAttributeOpt,
    schema_from,
)
from ddbsearch.errors import ExitCode, InputError
from ddbsearch.targets import DEFAULT_STACK, DEFAULT_TABLE, REFERENCE_KEYS, Target

if TYPE_CHECKING:
    from ddbsearch.infra import AwsIdentity, DestroyPreview, StackSettings, TerraformInfo
    from ddbsearch.infra.plan import PlanSummary
    from ddbsearch.ops.deploy import DeployReport
    from ddbsearch.tables import TableInfo

_AWS_PANEL = "AWS stack"


@contextmanager
def _progress(first: str) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr showing the latest step; plain lines when not a terminal."""
    if console.interactive():
        with console.err.status(escape(first), spinner="dots") as status:
            yield lambda message: status.update(escape(message))
        return

    def line(message: str) -> None:
        # Terraform repeats "Still creating... [Ns elapsed]" every 10 s: the log has them.
        if ": Still " not in message:
            console.info(escape(message))

    yield line


def _confirm(question: str, *, yes: bool) -> bool:
    if yes:
        return True
    try:
        # typer's own prompt: typer (0.29+) vendors click and no longer installs it.
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:  # no answer (EOF on stdin, Ctrl-C)
        return False


def _print_target(target: Target) -> None:
    rows = [
        ("Dashboards", target.dashboards_url),
        ("Search endpoint", target.search_endpoint),
        ("Table", target.table),
        ("Index", target.index),
        ("Function", target.function_name),
        ("Dead-letter queue", target.dlq_url),
        ("Region", target.region),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        if value:
            console.info(f"  {label + ':':<{width + 1}} {escape(str(value))}")


# --------------------------------------------------------------------------- deploy


app = typer.Typer(rich_markup_mode="rich")


@app.command()
def deploy(
    *,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Deploy to the local stack (moto + osmem-server, no AWS account) instead of AWS.",
        ),
    ] = False,
    name: Annotated[
        str,
        typer.Option(
            "--name",
            envvar="DDBSEARCH_STACK",
            help="Stack name: names the search domain and prefixes the other resources.",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = DEFAULT_STACK,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            help="AWS Region (default: AWS_REGION or the profile's region).",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="AWS_PROFILE",
            help="AWS profile for the credentials (default: the usual AWS chain).",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option(
            "--table",
            help=(
                f"Table to index. An existing table is adopted (read only, never deleted); "
                f"a missing one is created. Default: the reference table {DEFAULT_TABLE}."
            ),
        ),
    ] = None,
    hash_key: Annotated[
        str | None,
        typer.Option(
            "--hash-key",
            metavar="NAME:TYPE",
            help="Partition key of a table to create, TYPE one of S, N, B (default userId:N).",
        ),
    ] = None,
    range_key: Annotated[
        str | None,
        typer.Option(
            "--range-key",
            metavar="NAME:TYPE",
            help=(
                "Sort key of a table to create (default transactionId:N; none when only "
                "--hash-key is given)."
            ),
        ),
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index", help="OpenSearch index name (default: the table name, lower case)."
        ),
    ] = None,
    instance_type: Annotated[
        str | None,
        typer.Option(
            "--instance-type",
            help="OpenSearch data node instance type (default t3.small.search).",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    instance_count: Annotated[
        int | None,
        typer.Option(
            "--instance-count",
            min=1,
            help="Number of OpenSearch data nodes (default 1).",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    operator_arn: Annotated[
        list[str] | None,
        typer.Option(
            "--operator-arn",
            metavar="ARN",
            help=(
                "IAM user/role allowed to search and administer the domain; repeatable. "
                "Default: the identity running deploy."
            ),
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    reader_arn: Annotated[
        list[str] | None,
        typer.Option(
            "--reader-arn",
            metavar="ARN",
            help=(
                "IAM user/role that may only read: search, status, verify (no --repair), "
                "explain, Dashboards read-only; repeatable. No index, template or alias writes."
            ),
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var",
            metavar="KEY=VALUE",
            help="Set any Terraform variable (VALUE read as JSON if it is JSON); repeatable.",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    state_bucket: Annotated[
        str | None,
        typer.Option(
            "--state-bucket",
            envvar="DDBSEARCH_STATE_BUCKET",
            help="Keep the Terraform state in this S3 bucket instead of the local stack directory.",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    domain_arn: Annotated[
        str | None,
        typer.Option(
            "--domain-arn",
            metavar="ARN",
            help=(
                "Use this existing OpenSearch domain instead of creating one; it is never "
                "changed or deleted (its owner grants the indexer access: see docs/aws.md)."
            ),
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    plan_only: Annotated[
        bool,
        typer.Option(
            "--plan-only",
            help="Show what Terraform would change and exit: 0 nothing pending, 14 pending.",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = False,
    allow_replace: Annotated[
        bool,
        typer.Option(
            "--allow-replace",
            help=(
                "Allow a plan that replaces or destroys the search domain or the table "
                "(their data is lost); refused otherwise, even with --yes."
            ),
            rich_help_panel=_AWS_PANEL,
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Do not ask: apply the plan and change an existing table's stream (for CI).",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the deployed target as JSON on stdout.")
    ] = False,
    mapping: MappingOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    version_attribute: VersionAttributeOpt = None,
    ttl_deletes: TtlDeletesOpt = None,
) -> None:
    """Create the pipeline: table (or adopt yours) -> stream -> Lambda -> OpenSearch.

    On AWS it runs Terraform (init, plan) in a per-stack directory, shows the plan
    and asks before applying it, keeps the full Terraform log there, and makes the
    stack the default target of the other commands. With --local it starts the
    local stack instead.
    """
    from ddbsearch import infra
    from ddbsearch.ops.deploy import deploy as run_deploy

    # No key option: adopt an existing table's keys, or create one with the
    # reference keys. --hash-key alone: a table without sort key.
    keys_given = hash_key is not None or range_key is not None
    parsed_hash = infra.parse_key(hash_key, option="--hash-key") if hash_key else REFERENCE_KEYS[0]
    parsed_range: tuple[str, str] | None = None
    if range_key and range_key.lower() != "none":
        parsed_range = infra.parse_key(range_key, option="--range-key")
    common: dict[str, Any] = {
        "table": table,
        "keys": (parsed_hash, parsed_range) if keys_given else None,
        "index": index,
        "name": name,
        "region": region,
        "profile": profile,
        "instance_type": instance_type,
        "instance_count": instance_count,
        "operator_arns": operator_arn or (),
        "reader_arns": reader_arn or (),
        "terraform_vars": None if local else infra.parse_vars(var or ()),
        "state_bucket": state_bucket,
        "domain_arn": domain_arn,
        "events": TerminalEvents(),
    }
    if plan_only:
        if local:
            raise InputError("--plan-only is for AWS stacks", hint="drop --local")
        from ddbsearch.ops.deploy import plan as run_plan

        planned = run_plan(**common)
        raise typer.Exit(int(ExitCode.PENDING) if planned.pending else int(ExitCode.OK))
    schema = schema_from(mapping, include, exclude, version_attribute, ttl_deletes)
    report = run_deploy(local=local, yes=yes, allow_replace=allow_replace, schema=schema, **common)
    if json_output:
        console.out.print_json(json.dumps(report.target.to_json()))
    if local:
        _report_local(report.target)
    else:
        _report_deploy(report)


class TerminalEvents:
    """Renders deploy/destroy events on stderr and asks the operator's consent."""

    def progress(self, first: str) -> AbstractContextManager[Callable[[str], None]]:
        return _progress(first)

    def starting(
        self, settings: StackSettings, identity: AwsIdentity, terraform: TerraformInfo
    ) -> None:
        console.info(
            f"deploying stack [bold]{escape(settings.name)}[/] to {escape(identity.region)} "
            f"as {escape(identity.arn)} (terraform {terraform.version_text})"
        )

    def adopting(self, table: TableInfo, *, keys_ignored: bool) -> None:
        console.info(f"adopting the existing table {escape(table.name)} (it is never deleted)")
        if keys_ignored:
            schema = ", ".join(f"{n} ({t})" for n, t in table.key_schema)
            console.warn(
                f"--hash-key/--range-key ignored: table {table.name} exists with keys {schema}"
            )
        problem = table.stream_problem()
        if problem:
            console.warn(problem)
        elif table.lacks_old_images:
            console.info(
                f"table {escape(table.name)} streams NEW_IMAGE: accepted (deletes carry the keys); "
                "ordering deletes by a version attribute would need NEW_AND_OLD_IMAGES"
            )

    def confirm_stream_change(self, table: TableInfo) -> bool:
        question = f"Turn on a NEW_AND_OLD_IMAGES stream on table '{table.name}' now (UpdateTable)?"
        return _confirm(question, yes=False)

    def stream_enabled(self, table: TableInfo) -> None:
        console.info(f"stream enabled on {escape(table.name)} (NEW_AND_OLD_IMAGES)")

    def planned(self, plan: PlanSummary) -> None:
        _print_plan(plan)

    def confirm_apply(self, plan: PlanSummary) -> bool:
        return _confirm(f"Apply this plan ({plan.headline()})?", yes=False)

    def destroy_planned(self, preview: DestroyPreview, identity: AwsIdentity) -> None:
        console.info(
            f"destroying stack [bold]{escape(preview.name)}[/] in {escape(identity.region)} "
            f"will delete {len(preview.resources)} resources:"
        )
        for address in preview.resources:
            console.info(f"  - {escape(address)}")
        if preview.adopted_table:
            console.info(
                f"The adopted table [bold]{escape(preview.adopted_table)}[/] stays (with its "
                "data and stream)."
            )
        elif preview.target is not None:
            console.info(
                f"[bold red]The table {escape(preview.target.table)} was created by this "
                "stack: it is deleted with its data.[/]"
            )

        if preview.target is not None and preview.target.domain_managed is False:
            console.info(
                f"The existing domain [bold]{escape(preview.target.domain_name or '')}[/] "
                "stays (the stack only used it)."
            )
        if preview.target is not None and preview.target.fgac_enabled:
            console.info(
                f"ddbsearch's OpenSearch roles ddbsearch-{escape(preview.name)}-indexer/-operator/"
                "-reader, their mappings and the entries deploy added to the Dashboards role "
                "mappings are removed first."
            )

    def confirm_destroy(self, name: str) -> bool:
        return _confirm(f"Destroy stack '{name}'?", yes=False)


_ACTION_STYLE = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red"}
_ACTION_MARK = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}


def _print_plan(plan: PlanSummary) -> None:
    """The plan in a few lines: one per resource change, data-losing ones in red."""
    console.info(f"Terraform plan: [bold]{escape(plan.headline())}[/]")
    for change in plan.changes:
        if change.precious:
            console.info(
                f"  [bold red]{_ACTION_MARK[change.action]} {escape(change.address)} "
                f"({change.action}: its data is lost)[/]"
            )
        else:
            style = _ACTION_STYLE[change.action]
            console.info(f"  [{style}]{_ACTION_MARK[change.action]}[/] {escape(change.address)}")
    if plan.dangerous:
        console.info(
            "[bold red]This plan replaces or destroys the search domain or the table: "
            "deploy needs --allow-replace to apply it.[/]"
        )


def _report_deploy(report: DeployReport) -> None:
    target = report.target
    console.info(f"[green]deployed[/] stack {escape(target.name)}:")
    _print_target(target)
    console.info(f"  Terraform log: {escape(str(report.log_path))}")
    if report.single_node:
        console.warn(
            "the search domain has one node and no replica: fine for trying, not for "
            "production (raise instance_count: --instance-count 2 or --var instance_count=3)"
        )
    if report.security_changes:
        console.info(
            "fine-grained access control: mapped the indexer and the operators to "
            f"ddbsearch-{escape(target.name)}-indexer/-operator/-reader and Dashboards "
            f"({len(report.security_changes)} roles/mappings written)"
        )
    elif target.fgac_enabled:
        console.info("fine-grained access control: ddbsearch's roles and mappings are in place")
    for warning in report.security_warnings:
        console.warn(f"fine-grained access control: {warning}")
    if report.access_policy_statement is not None:
        console.warn(
            "the existing domain's owner must allow the indexer in its access policy: add "
            + json.dumps(report.access_policy_statement, separators=(",", ":"))
            + " (docs/aws.md, 'An existing domain')"
        )
    if report.index_warning:
        console.warn(
            f"the index {target.index} could not be prepared yet ({report.index_warning}); "
            "the indexer creates it with its first batch"
        )
    elif report.index_created:
        console.info(f"index {escape(target.index)} created with ddbsearch's mapping")
    console.info(
        "Open Dashboards with [bold]ddbsearch dashboards[/] (signed as you; see docs/aws.md)."
    )
    if report.adopted:
        console.info(
            "The stream only carries writes from now on: run [bold]ddbsearch backfill[/] "
            "to index the items already in the table."
        )
    else:
        console.info("Next: [bold]ddbsearch put[/] an item, then [bold]ddbsearch search[/] it.")


def _report_local(target: Target) -> None:
    console.info("[green]deployed[/] locally:")
    console.info(f"  Table:           {escape(target.table)}")
    console.info(f"  Index:           {escape(target.index)}")
    console.info(f"  Search endpoint: {escape(target.search_endpoint)}")
    console.info(
        "Next: [bold]ddbsearch put[/] an item and [bold]ddbsearch search[/] for it; "
        "[bold]ddbsearch destroy --local[/] stops everything."
    )


# --------------------------------------------------------------------------- destroy


@app.command()
def destroy(
    *,
    local: Annotated[
        bool,
        typer.Option("--local", help="Stop the local stack instead of destroying an AWS stack."),
    ] = False,
    name: Annotated[
        str,
        typer.Option(
            "--name",
            envvar="DDBSEARCH_STACK",
            help="Stack to destroy.",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = DEFAULT_STACK,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="AWS_PROFILE",
            help="AWS profile for the credentials (default: the one used by deploy).",
            rich_help_panel=_AWS_PANEL,
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove everything deploy created. An adopted table is never deleted.

    Shows what will be removed and asks first (--yes skips the question).
    """
    from ddbsearch.ops.deploy import destroy as run_destroy

    report = run_destroy(local=local, name=name, profile=profile, yes=yes, events=TerminalEvents())
    for warning in report.warnings:
        console.warn(warning)
    if not report.local:
        console.info(f"[green]destroyed[/] stack {escape(report.name)}")
    elif report.stopped:
        console.info("[green]destroyed[/] the local stack: no process or port is left")
    else:
        console.info("no local stack was running")
