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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddbsearch.errors import InfraError, InputError, NotDeployedError
from ddbsearch.infra.prerequisites import AwsIdentity, TerraformInfo

if TYPE_CHECKING:
    from ddbsearch.ops.reindex import SchemaOptions
from ddbsearch.infra.resources import terraform_dir
from ddbsearch.infra.runner import ProgressCallback, TerraformRunner
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
    dest.mkdir(parents=True, exist_ok=True)
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
    remembered_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (workdir / _BACKEND_TF).write_text(
        "# Written by ddbsearch deploy --state-bucket: state in S3 (settings in backend.json).\n"
        'terraform {\n  backend "s3" {}\n}\n'
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
    )


def _build_zip(workdir: Path) -> Path:
    from ddbsearch.packaging import build_lambda_zip

    return build_lambda_zip(workdir / ZIP_NAME)


@dataclass(frozen=True)
class DeployResult:
    target: Target
    index_created: bool  # False: it existed already, or could not be prepared (see warning)
    index_warning: str | None  # why the index could not be prepared now (not fatal)


def prepare_index(target: Target, *, credentials: Any, schema: SchemaOptions | None = None) -> bool:
    """Store ddbsearch's index template and create the index, as the operator (SigV4).

    ``schema`` (deploy --mapping/--include/...) configures the first generation;
    the Lambda needs nothing: it reads each generation's configuration from ``_meta``.
    """
    from ddbsearch.core.template import ensure_index
    from ddbsearch.core.transport import SearchTransport
    from ddbsearch.ops.reindex import first_generation_config

    transport = SearchTransport(
        target.search_endpoint, region=target.region, sigv4=True, credentials=credentials
    )
    config = first_generation_config(transport, target.index, schema, target.key_names)
    return ensure_index(transport, target.index, update_template=True, config=config)


def deploy_stack(
    settings: StackSettings,
    *,
    terraform: TerraformInfo,
    identity: AwsIdentity,
    on_progress: ProgressCallback | None = None,
    build_zip: Callable[[Path], Path] = _build_zip,
    schema: SchemaOptions | None = None,
) -> DeployResult:
    """Package, init, plan, apply; save the target, make it current, prepare the index."""
    validate_stack_name(settings.name)
    progress = on_progress or (lambda _msg: None)
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
    tfvars = settings.tfvars(region=identity.region)
    (workdir / TFVARS_FILE).write_text(json.dumps(tfvars, indent=2, sort_keys=True) + "\n")
    backend = _backend(workdir, settings, identity.region, terraform)
    runner = TerraformRunner(
        workdir,
        binary=terraform.path,
        log_path=log_path(settings.name),
        env=_env(settings.profile, identity.region),
        on_progress=progress,
    )
    runner.init(backend)
    runner.plan()
    runner.apply()
    target = target_from_outputs(settings.name, runner.outputs(), profile=settings.profile)
    save_aws_target(target)
    set_current("aws", settings.name)
    progress(f"preparing the index {target.index}")
    # The indexer also creates the index on its first batch, so a failure here (a new
    # domain's access policy can take a minute to apply) is reported, not fatal.
    from ddbsearch.core.transport import TransportError
    from ddbsearch.errors import DdbsearchError
    from ddbsearch.infra.prerequisites import session_for

    try:
        created = prepare_index(
            target, credentials=session_for(identity).get_credentials(), schema=schema
        )
    except (DdbsearchError, TransportError) as exc:
        return DeployResult(target, index_created=False, index_warning=str(exc))
    return DeployResult(target, index_created=created, index_warning=None)


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
) -> None:
    """terraform destroy; then forget the target. Run :func:`preview_destroy` first."""
    workdir = _existing_workdir(name)
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
