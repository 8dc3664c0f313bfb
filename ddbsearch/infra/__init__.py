"""Infrastructure on AWS: the Terraform modules, their runner, and the deploy/destroy flows."""

from __future__ import annotations

from ddbsearch.infra.prerequisites import (
    AwsIdentity,
    TerraformInfo,
    check_aws,
    check_terraform,
    session_for,
)
from ddbsearch.infra.resources import terraform_dir
from ddbsearch.infra.stack import (
    DeployResult,
    DestroyPreview,
    deploy_stack,
    destroy_stack,
    preview_destroy,
    target_from_outputs,
)
from ddbsearch.infra.tfvars import StackSettings, parse_key, parse_vars, validate_stack_name
from ddbsearch.tables import TableInfo, enable_stream, inspect_table

__all__ = [
    "AwsIdentity",
    "DeployResult",
    "DestroyPreview",
    "StackSettings",
    "TableInfo",
    "TerraformInfo",
    "check_aws",
    "check_terraform",
    "deploy_stack",
    "destroy_stack",
    "enable_stream",
    "inspect_table",
    "parse_key",
    "parse_vars",
    "preview_destroy",
    "session_for",
    "target_from_outputs",
    "terraform_dir",
    "validate_stack_name",
]
