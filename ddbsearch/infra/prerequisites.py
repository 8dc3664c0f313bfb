"""Checks that must pass before ``deploy`` touches anything: Terraform, credentials, region.

Each failure is one line that says what is missing and how to get it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from ddbsearch.errors import AuthError, PrerequisiteError

MIN_TERRAFORM = (1, 5, 0)
TERRAFORM_INSTALL_HINT = (
    "install Terraform >= 1.5 from https://developer.hashicorp.com/terraform/install "
    "and make sure 'terraform' is on PATH"
)


@dataclass(frozen=True)
class TerraformInfo:
    path: str
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(str(p) for p in self.version)


@dataclass(frozen=True)
class AwsIdentity:
    account: str
    arn: str
    region: str
    profile: str | None


def parse_terraform_version(text: str) -> tuple[int, int, int]:
    """The version from ``terraform version -json`` (or the plain ``Terraform vX.Y.Z`` line)."""
    raw: str | None = None
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("terraform_version"), str):
            raw = data["terraform_version"]
    except ValueError:
        match = re.search(r"Terraform v(\d+\.\d+\.\d+)", text)
        raw = match.group(1) if match else None
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", raw or "")
    if not match:
        raise PrerequisiteError(
            "could not tell which Terraform version is installed", hint=TERRAFORM_INSTALL_HINT
        )
    major, minor, patch = (int(g) for g in match.groups())
    return (major, minor, patch)


def check_terraform(binary: str = "terraform") -> TerraformInfo:
    """Find Terraform and make sure it is recent enough (>= 1.5)."""
    path = shutil.which(binary)
    if path is None:
        raise PrerequisiteError("terraform was not found on PATH", hint=TERRAFORM_INSTALL_HINT)
    try:
        proc = subprocess.run(
            [path, "version", "-json"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PrerequisiteError(
            f"could not run {path}: {type(exc).__name__}", hint=TERRAFORM_INSTALL_HINT
        ) from exc
    version = parse_terraform_version(proc.stdout)
    if version < MIN_TERRAFORM:
        found = ".".join(str(p) for p in version)
        raise PrerequisiteError(
            f"terraform {found} is too old: ddbsearch needs 1.5 or later",
            hint=TERRAFORM_INSTALL_HINT,
        )
    return TerraformInfo(path=path, version=version)


def check_aws(*, profile: str | None, region: str | None) -> AwsIdentity:
    """Resolve the region and prove the credentials work (STS GetCallerIdentity)."""
    import boto3
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        TokenRetrievalError,
    )

    from ddbsearch.clients import translate

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise AuthError(
            f"AWS profile '{profile}' not found",
            hint="check --profile / AWS_PROFILE against ~/.aws/config",
        ) from exc
    resolved = region or session.region_name
    if not resolved:
        raise PrerequisiteError(
            "no AWS region set",
            hint="pass --region, set AWS_REGION, or set a region in the profile",
        )
    try:
        sts: Any = session.client("sts", region_name=resolved)
        ident = sts.get_caller_identity()
    except (NoCredentialsError, PartialCredentialsError, TokenRetrievalError) as exc:
        raise AuthError(
            "no usable AWS credentials",
            hint="run 'aws configure' or 'aws sso login', or set AWS_PROFILE",
        ) from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        raise AuthError(
            f"AWS rejected the credentials ({code})",
            hint="they may be expired: refresh them ('aws sso login') or check AWS_PROFILE",
        ) from exc
    except BotoCoreError as exc:
        raise translate(exc, "checking AWS credentials") from exc
    return AwsIdentity(
        account=str(ident["Account"]), arn=str(ident["Arn"]), region=resolved, profile=profile
    )


def session_for(identity: AwsIdentity) -> Any:
    """A boto3 session with the checked profile and region."""
    import boto3

    return boto3.Session(profile_name=identity.profile, region_name=identity.region)
