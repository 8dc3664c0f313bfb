"""``deploy`` and ``destroy``: the whole workflow, locally or on AWS, as one call each.

The library never prints and never prompts. What an operator should see or
decide along the way (a spinner's steps, "adopting the existing table", "turn on
the stream?") goes through a :class:`DeployEvents` the caller passes; the CLI
supplies one that renders to the terminal. Without one, nothing is shown and
nothing that needs consent happens unless ``yes=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ddbsearch.errors import Aborted, InputError
from ddbsearch.targets import DEFAULT_STACK, DEFAULT_TABLE, REFERENCE_KEYS, KeySpec, Target

if TYPE_CHECKING:
    from ddbsearch.infra import AwsIdentity, DestroyPreview, StackSettings, TerraformInfo
    from ddbsearch.infra.plan import PlanSummary
    from ddbsearch.infra.stack import PlannedStack
    from ddbsearch.ops.reindex import SchemaOptions
    from ddbsearch.tables import TableInfo


class DeployEvents(Protocol):
    """What deploy and destroy tell the operator, and the questions they ask."""

    def progress(self, first: str) -> AbstractContextManager[Callable[[str], None]]:
        """A long step starts (``first`` names it); the callable reports its sub-steps."""
        ...

    def starting(
        self, settings: StackSettings, identity: AwsIdentity, terraform: TerraformInfo
    ) -> None:
        """AWS deploy: prerequisites checked, about to change the account."""
        ...

    def adopting(self, table: TableInfo, *, keys_ignored: bool) -> None:
        """An existing table is adopted (``keys_ignored``: key options were given anyway)."""
        ...

    def confirm_stream_change(self, table: TableInfo) -> bool:
        """May the table's stream be turned on / replaced (``table.stream_problem()``)?"""
        ...

    def stream_enabled(self, table: TableInfo) -> None: ...

    def planned(self, plan: PlanSummary) -> None:
        """AWS deploy: what Terraform will do (shown before anything changes)."""
        ...

    def confirm_apply(self, plan: PlanSummary) -> bool:
        """May the plan be applied? (Not asked when nothing is pending or with ``yes``.)"""
        ...

    def destroy_planned(self, preview: DestroyPreview, identity: AwsIdentity) -> None:
        """AWS destroy: what will be deleted and what stays."""
        ...

    def confirm_destroy(self, name: str) -> bool: ...


class SilentEvents:
    """No output; consent is never assumed (pass ``yes=True`` to give it)."""

    @contextmanager
    def progress(self, first: str) -> Iterator[Callable[[str], None]]:
        yield lambda _message: None

    def starting(
        self, settings: StackSettings, identity: AwsIdentity, terraform: TerraformInfo
    ) -> None:
        return None

    def adopting(self, table: TableInfo, *, keys_ignored: bool) -> None:
        return None

    def confirm_stream_change(self, table: TableInfo) -> bool:
        return False

    def stream_enabled(self, table: TableInfo) -> None:
        return None

    def planned(self, plan: PlanSummary) -> None:
        return None

    def confirm_apply(self, plan: PlanSummary) -> bool:
        return False

    def destroy_planned(self, preview: DestroyPreview, identity: AwsIdentity) -> None:
        return None

    def confirm_destroy(self, name: str) -> bool:
        return False


@dataclass(frozen=True)
class DeployReport:
    """What deploy did: the target every other verb takes, and what to tell the operator."""

    target: Target
    adopted: bool = False  # an existing table is indexed (its items need a backfill)
    index_created: bool = False
    index_warning: str | None = None  # why the index could not be prepared yet (not fatal)
    log_path: Path | None = None  # the full Terraform log (AWS)
    plan: PlanSummary | None = None  # AWS: what Terraform planned (and applied)
    security_changes: tuple[str, ...] = ()  # FGAC roles/mappings written by this deploy
    security_warnings: tuple[str, ...] = ()  # FGAC: what could not be mapped (not fatal)
    single_node: bool = False  # one data node and no replica: not for production
    # An existing domain without FGAC: the statement its owner adds for the indexer.
    access_policy_statement: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PlanReport:
    """What :func:`plan` found: Terraform's plan for the stack, nothing applied."""

    plan: PlanSummary
    adopted: bool = False  # the table exists and would be adopted
    log_path: Path | None = None

    @property
    def pending(self) -> bool:
        """Changes are waiting to be applied (``deploy --plan-only`` exits 14)."""
        return self.plan.pending


@dataclass(frozen=True)
class DestroyReport:
    local: bool
    name: str
    stopped: bool = True  # local: False when no local stack was running
    warnings: tuple[str, ...] = ()


def deploy(
    *,
    local: bool = False,
    table: str | None = None,
    keys: KeySpec | None = None,
    index: str | None = None,
    name: str = DEFAULT_STACK,
    region: str | None = None,
    profile: str | None = None,
    instance_type: str | None = None,
    instance_count: int | None = None,
    operator_arns: Sequence[str] = (),
    reader_arns: Sequence[str] = (),
    terraform_vars: Mapping[str, Any] | None = None,
    state_bucket: str | None = None,
    domain_arn: str | None = None,
    yes: bool = False,
    allow_replace: bool = False,
    events: DeployEvents | None = None,
    schema: SchemaOptions | None = None,
) -> DeployReport:
    """Create the pipeline: table (or adopt yours) -> stream -> Lambda -> OpenSearch.

    ``local=True`` runs it on this machine (moto + osmem-server, no AWS account);
    otherwise Terraform deploys stack ``name`` to AWS. An existing ``table`` is
    adopted with its own keys (never deleted); ``keys`` are for a table being
    created (default: the reference keys). The deployed stack becomes the
    default target of the other verbs. ``yes`` consents to changing an adopted
    table's stream and to applying the plan; a plan that replaces or destroys the
    domain or the table is refused (:class:`~ddbsearch.errors.InputError`) unless
    ``allow_replace``. ``domain_arn`` uses an existing domain (never changed or
    deleted). :func:`plan` shows what deploy would do without doing it.
    ``schema`` (mapping overlay, include/exclude, version attribute, TTL policy)
    configures the first index generation; it is validated before anything is
    created (ConfigurationError, exit 2).
    """
    events = events or SilentEvents()
    if schema is not None and schema.given:
        # Against the keys the table will have if created; checked again with the
        # real keys before the index is made (an adopted table keeps its own).
        schema.config([key[0] for key in (keys or REFERENCE_KEYS) if key is not None])
    else:
        schema = None
    if local:
        return _deploy_local(
            table=table or DEFAULT_TABLE, keys=keys, index=index, events=events, schema=schema
        )

    settings = _settings(
        name=name,
        region=region,
        profile=profile,
        table=table,
        keys=keys,
        index=index,
        instance_type=instance_type,
        instance_count=instance_count,
        operator_arns=tuple(operator_arns),
        reader_arns=tuple(reader_arns),
        extra_vars=dict(terraform_vars or {}),
        state_bucket=state_bucket,
        domain_arn=domain_arn,
    )
    return deploy_aws(settings, yes=yes, allow_replace=allow_replace, events=events, schema=schema)


def plan(
    *,
    table: str | None = None,
    keys: KeySpec | None = None,
    index: str | None = None,
    name: str = DEFAULT_STACK,
    region: str | None = None,
    profile: str | None = None,
    instance_type: str | None = None,
    instance_count: int | None = None,
    operator_arns: Sequence[str] = (),
    reader_arns: Sequence[str] = (),
    terraform_vars: Mapping[str, Any] | None = None,
    state_bucket: str | None = None,
    domain_arn: str | None = None,
    events: DeployEvents | None = None,
) -> PlanReport:
    """What :func:`deploy` would change on AWS (Terraform's plan), changing nothing.

    Takes deploy's AWS arguments; an adopted table's stream is left as it is.
    """
    settings = _settings(
        name=name,
        region=region,
        profile=profile,
        table=table,
        keys=keys,
        index=index,
        instance_type=instance_type,
        instance_count=instance_count,
        operator_arns=tuple(operator_arns),
        reader_arns=tuple(reader_arns),
        extra_vars=dict(terraform_vars or {}),
        state_bucket=state_bucket,
        domain_arn=domain_arn,
    )
    return plan_aws(settings, events=events)


def _settings(*, name: str, **values: Any) -> StackSettings:
    from ddbsearch import infra

    return infra.StackSettings(name=infra.validate_stack_name(name), **values)


def _deploy_local(
    *,
    table: str,
    keys: KeySpec | None,
    index: str | None,
    events: DeployEvents,
    schema: SchemaOptions | None = None,
) -> DeployReport:
    from ddbsearch.local.deploy import deploy_local

    with events.progress("starting the local stack") as progress:
        target = deploy_local(
            table=table, keys=keys, index=index, on_progress=progress, schema=schema
        )
    return DeployReport(target)


def _planned(
    settings: StackSettings, *, yes: bool, plan_only: bool, events: DeployEvents
) -> tuple[PlannedStack, bool]:
    """Prerequisites, the table's adoption, init and plan: (the saved plan, adopted)."""
    from ddbsearch import infra
    from ddbsearch.infra.stack import plan_stack

    terraform = infra.check_terraform()
    identity = infra.check_aws(profile=settings.profile, region=settings.region)
    events.starting(settings, identity, terraform)
    # A table this stack created exists on a redeploy: it stays the stack's, never adopted
    # (adopting it would plan its deletion).
    adopted = (
        settings.table is not None
        and not _created_by_stack(settings.name, settings.table)
        and _adopt_table(
            identity,
            settings.table,
            keys_given=settings.keys is not None,
            yes=yes,
            events=events,
            plan_only=plan_only,
        )
    )
    settings = replace(settings, adopt_table=adopted)
    with events.progress("planning") as progress:
        planned = plan_stack(settings, terraform=terraform, identity=identity, on_progress=progress)
    events.planned(planned.plan)
    return planned, adopted


def plan_aws(settings: StackSettings, *, events: DeployEvents | None = None) -> PlanReport:
    """Terraform's plan for ``settings``; the saved plan is discarded, nothing changes."""
    from ddbsearch.infra.stack import discard_plan, log_path

    planned, adopted = _planned(
        settings, yes=False, plan_only=True, events=events or SilentEvents()
    )
    discard_plan(planned)
    return PlanReport(planned.plan, adopted=adopted, log_path=log_path(settings.name))


def deploy_aws(
    settings: StackSettings,
    *,
    yes: bool = False,
    allow_replace: bool = False,
    events: DeployEvents | None = None,
    schema: SchemaOptions | None = None,
) -> DeployReport:
    """Deploy ``settings`` to AWS with Terraform: adopt the table, plan, ask, apply."""
    from ddbsearch.infra.stack import apply_stack, discard_plan, log_path

    events = events or SilentEvents()
    planned, adopted = _planned(settings, yes=yes, plan_only=False, events=events)
    plan = planned.plan
    if plan.dangerous and not allow_replace:
        discard_plan(planned)
        names = ", ".join(f"{c.action} {c.address}" for c in plan.dangerous)
        raise InputError(
            f"deploy refused: the plan would {names}, and its data with it",
            hint="nothing was changed; rerun with --allow-replace if that is intended",
        )
    if plan.pending and not (yes or events.confirm_apply(plan)):
        discard_plan(planned)
        raise Aborted("deploy cancelled: nothing was changed", hint="--yes applies without asking")
    with events.progress("applying") as progress:
        result = apply_stack(planned, on_progress=progress, schema=schema)
    return DeployReport(
        result.target,
        adopted=adopted,
        index_created=result.index_created,
        index_warning=result.index_warning,
        log_path=log_path(result.target.name),
        plan=plan,
        security_changes=result.security_changes,
        security_warnings=result.security_warnings,
        single_node=result.single_node,
        access_policy_statement=result.access_policy_statement,
    )


def _created_by_stack(name: str, table: str) -> bool:
    """Did stack ``name`` create ``table`` (so it is the stack's, not one to adopt)?"""
    from ddbsearch.targets import load_aws_target

    saved = load_aws_target(name)
    return saved is not None and saved.table == table and saved.table_adopted is False


def _adopt_table(
    identity: AwsIdentity,
    table: str,
    *,
    keys_given: bool,
    yes: bool,
    events: DeployEvents,
    plan_only: bool = False,
) -> bool:
    """True if ``table`` exists (then its stream is made usable, with consent)."""
    from ddbsearch import infra

    info = infra.inspect_table(infra.session_for(identity), table)
    if not info.exists:
        return False
    events.adopting(info, keys_ignored=keys_given)
    if info.stream_problem() and not plan_only:
        if not (yes or events.confirm_stream_change(info)):
            raise Aborted(
                "deploy cancelled: the table's stream was left unchanged",
                hint="rerun with --yes to let ddbsearch enable the stream",
            )
        with events.progress(f"enabling the stream of {table}"):
            info = infra.enable_stream(infra.session_for(identity), info)
        events.stream_enabled(info)
    return True


def destroy(
    *,
    local: bool = False,
    name: str = DEFAULT_STACK,
    profile: str | None = None,
    yes: bool = False,
    events: DeployEvents | None = None,
) -> DestroyReport:
    """Remove everything deploy created; an adopted table is never deleted.

    ``local=True`` stops the local stack. On AWS the plan goes to
    ``events.destroy_planned`` and, unless ``yes``, ``events.confirm_destroy``
    must agree (otherwise :class:`~ddbsearch.errors.Aborted`, nothing removed).
    """
    events = events or SilentEvents()
    if local:
        from ddbsearch.local.deploy import destroy_local

        with events.progress("stopping the local stack") as progress:
            stopped = destroy_local(on_progress=progress)
        return DestroyReport(local=True, name="local", stopped=stopped)

    from ddbsearch import infra

    infra.validate_stack_name(name)
    terraform = infra.check_terraform()
    with events.progress("reading the stack's state") as progress:
        preview = infra.preview_destroy(name, terraform=terraform, on_progress=progress)
    saved = preview.target
    identity = infra.check_aws(
        profile=profile or (saved.profile if saved else None),
        region=saved.region if saved else None,
    )
    events.destroy_planned(preview, identity)
    if not (yes or events.confirm_destroy(name)):
        raise Aborted("destroy cancelled: nothing was removed")
    credentials = infra.session_for(identity).get_credentials()
    with events.progress("destroying") as progress:
        warnings = infra.destroy_stack(
            name, terraform=terraform, on_progress=progress, credentials=credentials
        )
    return DestroyReport(local=False, name=name, warnings=warnings)
