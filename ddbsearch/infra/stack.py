"""Deploy and destroy an AWS stack: the working directory, Terraform, and the saved target.

Layout of one stack (``ddbsearch.targets.stack_dir(name)``)::

    target.json              what later commands talk to (from the Terraform outputs)
    terraform.log            every Terraform command and its full output, appended
    terraform/               working directory: a copy of the modules, plus
        terraform.tfvars.json   the variables of this stack
        backend.json / backend.tf   S3 state, when --state-bucket was given
        indexer.zip             the Lambda package
        terraform.tfstate       local state (default)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddbsearch.errors import AuthError, InfraError, InputError, NotDeployedError
from ddbsearch.files import ensure_dir, write_json, write_text
from ddbsearch.infra.plan import PlanSummary, summarize
from ddbsearch.infra.prerequisites import AwsIdentity, TerraformInfo

if TYPE_CHECKING:
    from ddbsearch.ops.reindex import SchemaOptions
from ddbsearch.infra.resources import terraform_dir
from ddbsearch.infra.runner import ProgressCallback, TerraformRunner, tighten
from ddbsearch.infra.tfvars import ZIP_NAME, StackSettings, validate_stack_name
from ddbsearch.targets import (
    Target,
    clear_current,
    forget_aws_target,
    load_aws_target,
    save_aws_target,
    set_current,
    stack_dir,
)

TFVARS_FILE = "terraform.tfvars.json"
_BACKEND_JSON = "backend.json"
_BACKEND_TF = "backend.tf"
_REQUIRED_OUTPUTS = ("table_name", "domain_endpoint", "index_name", "region")


def working_dir(name: str) -> Path:
    return stack_dir(name) / "terraform"


def log_path(name: str) -> Path:
    return stack_dir(name) / "terraform.log"


def _copy_modules(dest: Path) -> None:
    """Refresh the module copy in ``dest``; state, tfvars, zip and .terraform stay."""
    source = terraform_dir()
    ensure_dir(dest)
    for old in dest.glob("*.tf"):
        if old.name != _BACKEND_TF:
            old.unlink()
    shutil.rmtree(dest / "modules", ignore_errors=True)
    for tf in sorted(source.glob("*.tf")):
        shutil.copy2(tf, dest / tf.name)
    shutil.copytree(
        source / "modules",
        dest / "modules",
        ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"),
    )


def _backend(
    workdir: Path, settings: StackSettings, region: str, tf: TerraformInfo
) -> dict[str, str]:
    """The S3 backend config of the stack ({} for local state), remembered across runs."""
    remembered_file = workdir / _BACKEND_JSON
    remembered: dict[str, str] = {}
    if remembered_file.is_file():
        remembered = json.loads(remembered_file.read_text())
    if settings.state_bucket is None:
        return remembered
    config = {
        "bucket": settings.state_bucket,
        "key": f"ddbsearch/{settings.name}/terraform.tfstate",
        "region": region,
        "encrypt": "true",
    }
    if tf.version >= (1, 10, 0):
        config["use_lockfile"] = "true"  # S3-native state locking
    if not remembered and (workdir / "terraform.tfstate").is_file():
        raise InputError(
            f"stack '{settings.name}' already keeps its state locally",
            hint=f"run 'terraform init -migrate-state' in {workdir}, or drop --state-bucket",
        )
    if remembered and remembered.get("bucket") != settings.state_bucket:
        raise InputError(
            f"stack '{settings.name}' keeps its state in s3://{remembered.get('bucket')}",
            hint="pass that --state-bucket (or none)",
        )
    write_json(remembered_file, config)
    write_text(
        workdir / _BACKEND_TF,
        "# Written by ddbsearch deploy --state-bucket: state in S3 (settings in backend.json).\n"
        'terraform {\n  backend "s3" {}\n}\n',
    )
    return config


def _env(profile: str | None, region: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    if profile:
        # The provider prefers key variables over a profile; boto3 with an explicit
        # profile does not. Drop them so Terraform acts as the identity deploy checked.
        env |= {"AWS_PROFILE": profile, "AWS_ACCESS_KEY_ID": None}
        env |= {"AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None}
    return env


def target_from_outputs(
    name: str, outputs: Mapping[str, Any], *, profile: str | None = None
) -> Target:
    """The :class:`Target` later commands use, from ``terraform output -json`` values."""
    missing = [key for key in _REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise InfraError(f"terraform outputs lack {', '.join(missing)}")
    endpoint = str(outputs["domain_endpoint"])
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    arns = outputs.get("operator_arns") or ()
    return Target(
        kind="aws",
        name=name,
        region=str(outputs["region"]),
        table=str(outputs["table_name"]),
        index=str(outputs["index_name"]),
        search_endpoint=endpoint,
        dlq_url=outputs.get("dlq_url"),
        function_name=outputs.get("function_name"),
        event_source_mapping_uuid=outputs.get("event_source_mapping_uuid"),
        dashboards_url=outputs.get("dashboards_url"),
        profile=profile,
        sigv4=True,
        stream_arn=outputs.get("stream_arn"),
        table_adopted=outputs.get("table_adopted"),
        log_group_name=outputs.get("log_group_name"),
        domain_name=outputs.get("domain_name"),
        operator_arns=(arns,) if isinstance(arns, str) else tuple(arns),
        domain_arn=outputs.get("domain_arn"),
        domain_managed=outputs.get("domain_managed"),
        fgac_enabled=outputs.get("fine_grained_access_control_enabled"),
        loader_state_machine_arn=outputs.get("loader_state_machine_arn"),
        export_bucket=outputs.get("export_bucket"),
    )


def _build_zip(workdir: Path) -> Path:
    from ddbsearch.packaging import build_lambda_zip

    return build_lambda_zip(workdir / ZIP_NAME)


@dataclass(frozen=True)
class DeployResult:
    target: Target
    index_created: bool  # False: it existed already, or could not be prepared (see warning)
    index_warning: str | None  # why the index could not be prepared now (not fatal)
    plan: PlanSummary = field(default_factory=PlanSummary)
    security_changes: tuple[str, ...] = ()  # FGAC roles/mappings written (empty: all in place)
    security_warnings: tuple[str, ...] = ()  # FGAC: what deploy could not map (not fatal)
    single_node: bool = False  # one data node, no replica
    access_policy_statement: Mapping[str, Any] | None = None  # existing domain without FGAC


def prepare_index(target: Target, *, credentials: Any, schema: SchemaOptions | None = None) -> bool:
    """Store ddbsearch's index template and create the index, as the operator (SigV4).

    ``schema`` (deploy --mapping/--include/...) configures the first generation;
    the Lambda needs nothing: it reads each generation's configuration from ``_meta``.
    """
    from ddbsearch.core.template import ensure_index
    from ddbsearch.ops.reindex import first_generation_config

    transport = _transport(target, credentials)
    config = first_generation_config(transport, target.index, schema, target.key_names)
    return ensure_index(transport, target.index, update_template=True, config=config)


def _transport(target: Target, credentials: Any) -> Any:
    from ddbsearch.core.transport import SearchTransport

    return SearchTransport(
        target.search_endpoint,
        region=target.region,
        sigv4=target.sigv4,
        credentials=credentials,
    )


@dataclass
class PlannedStack:
    """A stack with a saved plan (``tfplan``) waiting for :func:`apply_stack`."""

    settings: StackSettings
    identity: AwsIdentity
    runner: TerraformRunner
    plan: PlanSummary
    plan_file: str = "tfplan"


def plan_stack(
    settings: StackSettings,
    *,
    terraform: TerraformInfo,
    identity: AwsIdentity,
    on_progress: ProgressCallback | None = None,
    build_zip: Callable[[Path], Path] = _build_zip,
) -> PlannedStack:
    """Package, init and plan (saved to ``tfplan``); nothing in the account changes."""
    validate_stack_name(settings.name)
    progress = on_progress or (lambda _msg: None)
    ensure_dir(stack_dir(settings.name))
    workdir = working_dir(settings.name)
    previous = workdir / TFVARS_FILE
    if previous.is_file():
        # Another region would orphan every resource in the first one.
        before = json.loads(previous.read_text()).get("region")
        if before and before != identity.region:
            raise InputError(
                f"stack '{settings.name}' is deployed in {before}, not {identity.region}",
                hint=f"pass --region {before}, or choose another --name",
            )
    progress("preparing the working directory")
    _copy_modules(workdir)
    progress("building the Lambda package")
    build_zip(workdir)
    write_json(workdir / TFVARS_FILE, settings.tfvars(region=identity.region))
    backend = _backend(workdir, settings, identity.region, terraform)
    tighten(workdir)
    runner = TerraformRunner(
        workdir,
        binary=terraform.path,
        log_path=log_path(settings.name),
        env=_env(settings.profile, identity.region),
        on_progress=progress,
    )
    runner.init(backend)
    runner.plan()
    summary = summarize(runner.show_json())
    return PlannedStack(settings, identity, runner, summary)


def discard_plan(planned: PlannedStack) -> None:
    (planned.runner.working_dir / planned.plan_file).unlink(missing_ok=True)


def apply_stack(
    planned: PlannedStack,
    *,
    on_progress: ProgressCallback | None = None,
    schema: SchemaOptions | None = None,
) -> DeployResult:
    """Apply the saved plan; save the target, make it current, map FGAC roles, prepare the index."""
    from ddbsearch.core.transport import TransportError
    from ddbsearch.errors import DdbsearchError
    from ddbsearch.infra.prerequisites import session_for

    progress = on_progress or (lambda _msg: None)
    settings, runner = planned.settings, planned.runner
    runner.apply(planned.plan_file)
    outputs = runner.outputs()
    target = target_from_outputs(settings.name, outputs, profile=settings.profile)
    save_aws_target(target)
    set_current("aws", settings.name)
    credentials = session_for(planned.identity).get_credentials()
    changed: tuple[str, ...] = ()
    security_warnings: tuple[str, ...] = ()
    if target.fgac_enabled:
        progress("mapping the indexer and the operators to their OpenSearch roles")
        changed, security_warnings = apply_security(target, outputs, credentials=credentials)
    statement = None
    if target.domain_managed is False and not target.fgac_enabled:
        statement = access_policy_statement(outputs)
    single = bool(outputs.get("domain_single_node"))
    progress(f"preparing the index {target.index}")
    # The indexer also creates the index on its first batch, so a failure here (a new
    # domain's access policy can take a minute to apply) is reported, not fatal.
    try:
        created = prepare_index(target, credentials=credentials, schema=schema)
        warning = None
    except (DdbsearchError, TransportError) as exc:
        created, warning = False, str(exc)
    return DeployResult(
        target,
        index_created=created,
        index_warning=warning,
        plan=planned.plan,
        security_changes=changed,
        security_warnings=security_warnings,
        single_node=single,
        access_policy_statement=statement,
    )


def dashboards_record_path(name: str) -> Path:
    """What deploy added to the domain's built-in Dashboards role mappings (FGAC)."""
    return stack_dir(name) / "fgac-dashboards.json"


def _arns(outputs: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = outputs.get(key) or ()
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def apply_security(
    target: Target, outputs: Mapping[str, Any], *, credentials: Any
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Create or update the stack's FGAC roles and mappings, as the master user.

    With Dashboards in the stack (``dashboards_url``), the operators and readers are
    also added to the built-in Dashboards role mappings (only added, never replaced).
    Returns what was written and warnings (what could not be mapped).
    """
    from ddbsearch.infra import security

    indexer_arn = outputs.get("indexer_role_arn")
    if not indexer_arn:
        raise InfraError("terraform outputs lack indexer_role_arn (needed for FGAC)")
    readers = _arns(outputs, "reader_arns")
    roles = security.stack_roles(
        stack=target.name,
        index=target.index,
        indexer_role_arn=str(indexer_arn),
        operator_arns=target.operator_arns,
        reader_arns=readers,
        loader_role_arns=[str(outputs["loader_role_arn"])]
        if outputs.get("loader_role_arn")
        else [],
    )
    wanted = (
        security.dashboards_grants(target.operator_arns, readers) if target.dashboards_url else {}
    )
    master = outputs.get("master_user_arn")
    transport = _transport(target, credentials)
    record_path = dashboards_record_path(target.name)
    try:
        changed = security.apply_roles(transport, roles)
        dashboards = security.apply_dashboards(
            transport, target.name, wanted, security.DashboardsRecord.read(record_path)
        )
    except AuthError as exc:
        raise AuthError(
            f"could not map ddbsearch's FGAC roles: {exc.message}",
            hint=(
                f"run deploy as the FGAC master user{f' ({master})' if master else ''} "
                "or a principal mapped to security_manager, then deploy again"
            ),
        ) from exc
    dashboards.record.write(record_path)
    return tuple(changed + dashboards.changed), tuple(dashboards.warnings)


def access_policy_statement(outputs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The statement an existing domain's owner adds so the indexer may write (no FGAC)."""
    role = outputs.get("indexer_role_arn")
    domain = outputs.get("domain_arn")
    grants = outputs.get("indexer_domain_grants") or []
    if not role or not domain or not grants:
        return None
    actions = sorted({a for g in grants for a in g.get("actions", [])})
    paths = [f"{domain}/{p}" for g in grants for p in g.get("paths", [])]
    return {
        "Sid": "DdbsearchIndexer",
        "Effect": "Allow",
        # The export loader (loader_role_arn) sends the indexer's requests too.
        "Principal": {
            "AWS": [role, loader] if (loader := outputs.get("loader_role_arn")) else role
        },
        "Action": actions,
        "Resource": list(dict.fromkeys(paths)),
    }


def deploy_stack(
    settings: StackSettings,
    *,
    terraform: TerraformInfo,
    identity: AwsIdentity,
    on_progress: ProgressCallback | None = None,
    build_zip: Callable[[Path], Path] = _build_zip,
    schema: SchemaOptions | None = None,
) -> DeployResult:
    """Plan and apply without asking (the library's non-interactive path)."""
    planned = plan_stack(
        settings,
        terraform=terraform,
        identity=identity,
        on_progress=on_progress,
        build_zip=build_zip,
    )
    return apply_stack(planned, on_progress=on_progress, schema=schema)


@dataclass(frozen=True)
class DestroyPreview:
    name: str
    resources: tuple[str, ...]  # Terraform addresses that destroy will delete
    adopted_table: str | None  # an existing table the stack reads: it stays
    target: Target | None


def _existing_workdir(name: str) -> Path:
    validate_stack_name(name)
    workdir = working_dir(name)
    if not (workdir / TFVARS_FILE).is_file():
        raise NotDeployedError(
            f"no stack named '{name}' was deployed from this machine",
            hint=f"expected its working directory at {workdir}",
        )
    return workdir


def _runner(
    name: str, terraform: TerraformInfo, on_progress: ProgressCallback | None
) -> TerraformRunner:
    workdir = working_dir(name)
    tfvars = json.loads((workdir / TFVARS_FILE).read_text())
    target = load_aws_target(name)
    region = str(tfvars.get("region") or (target.region if target else ""))
    return TerraformRunner(
        workdir,
        binary=terraform.path,
        log_path=log_path(name),
        env=_env(target.profile if target else None, region),
        on_progress=on_progress,
    )


def preview_destroy(
    name: str, *, terraform: TerraformInfo, on_progress: ProgressCallback | None = None
) -> DestroyPreview:
    """What ``destroy`` would delete (from the state) and what it leaves alone."""
    workdir = _existing_workdir(name)
    tfvars = json.loads((workdir / TFVARS_FILE).read_text())
    runner = _runner(name, terraform, on_progress)
    remembered = workdir / _BACKEND_JSON
    runner.init(json.loads(remembered.read_text()) if remembered.is_file() else None)
    # Data sources (an adopted table) are read, never deleted.
    resources = tuple(a for a in runner.state_list() if not _is_data_source(a))
    adopted = tfvars.get("existing_table_name") or None
    return DestroyPreview(
        name=name, resources=resources, adopted_table=adopted, target=load_aws_target(name)
    )


def _is_data_source(address: str) -> bool:
    parts = address.split(".")
    # module.x.module.y.data.type.name / data.type.name
    while parts[:1] == ["module"]:
        parts = parts[2:]
    return parts[:1] == ["data"]


def destroy_stack(
    name: str,
    *,
    terraform: TerraformInfo,
    on_progress: ProgressCallback | None = None,
    build_zip: Callable[[Path], Path] = _build_zip,
    credentials: Any = None,
) -> tuple[str, ...]:
    """Remove the stack's FGAC roles, terraform destroy, forget the target.

    Run :func:`preview_destroy` first. Returns warnings (roles that could not be
    removed); an existing domain itself is never touched.
    """
    from ddbsearch.core.transport import TransportError
    from ddbsearch.errors import DdbsearchError

    workdir = _existing_workdir(name)
    progress = on_progress or (lambda _msg: None)
    warnings: list[str] = []
    target = load_aws_target(name)
    if target is not None and target.fgac_enabled:
        # Before the domain goes (and on an existing domain, which stays).
        progress("removing ddbsearch's OpenSearch roles and mappings")
        from ddbsearch.infra import security

        transport = _transport(target, credentials)
        record_path = dashboards_record_path(name)
        record = security.DashboardsRecord.read(record_path)
        try:
            # Only what deploy added to the built-in Dashboards mappings goes.
            left = security.apply_dashboards(transport, name, {}, record)
            left.record.write(record_path)
        except (DdbsearchError, TransportError) as exc:
            added = "; ".join(
                f"{role}: {', '.join(p.backend_roles + p.users)}"
                for role, p in record.added.items()
                if p
            )
            warnings.append(
                f"ddbsearch's entries in the Dashboards role mappings could not be removed "
                f"({exc}); remove them as the master user ({added})"
            )
        try:
            security.remove_roles(transport, name)
        except (DdbsearchError, TransportError) as exc:
            warnings.append(
                f"the FGAC roles ddbsearch-{name}-* could not be removed ({exc}); "
                "delete them in the security plugin as the master user"
            )
    if not (workdir / ZIP_NAME).is_file():
        # Terraform hashes the zip even to delete the function.
        build_zip(workdir)
    runner = _runner(name, terraform, on_progress)
    runner.destroy()
    forget_aws_target(name)
    clear_current("aws", name)
    # Nothing is left to manage: drop the working directory (its .terraform holds the
    # provider, hundreds of MB). The log stays next to it.
    shutil.rmtree(workdir, ignore_errors=True)
    return tuple(warnings)
