"""`ddbsearch deploy` with the REAL Terraform and AWS provider, end to end, against moto.

The whole command, not a stand-in: init from the local provider mirror, plan,
apply of the table side (table, stream, role, policy, function, event source
mapping, queue, log group) onto a domain that exists already (`--domain-arn`,
created in moto first: moto never reports a domain it creates through the provider
as ready, so the provider would wait for it), the outputs recorded as the target,
a second `--plan-only` with nothing pending, `status` reading the mapping from
moto's Lambda API, and `destroy` leaving nothing behind.

Nothing here talks to anything but 127.0.0.1: the provider and boto3 reach moto
through AWS_ENDPOINT_URL; the domain's endpoint (a moto-made *.es.amazonaws.com
name) resolves to a closed loopback port, so preparing the index fails fast and is
reported as the usual warning (the indexer would create it with its first batch).
Skipped only when the provider mirror or the terraform binary is absent.

It is the slowest test (about 2 minutes on a busy 2-core machine): Terraform runs a
dozen times, and the provider itself waits about 25 s after creating the queue for
its attributes to read back consistently (as it does on AWS); nothing hangs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.errors import ExitCode
from ddbsearch.targets import load_aws_target, resolve_target, stack_dir

PLUGIN_DIR = Path(os.environ.get("DDBSEARCH_TF_PLUGIN_DIR", "/opt/tf-plugins"))
TERRAFORM = shutil.which("terraform")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(),
        reason=f"no local mirror of the hashicorp/aws provider in {PLUGIN_DIR}",
    ),
    pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH"),
]
runner = CliRunner()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def moto_account(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Terraform and boto3 pointed at moto; the provider installed from the mirror only."""
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{PLUGIN_DIR}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n'
        "}\n"
    )
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(cli_config))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # the provider probes IMDS otherwise
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # The domain moto made has an *.es.amazonaws.com endpoint: keep it on loopback.
    closed = _closed_port()
    real = socket.getaddrinfo

    def loopback_for_amazonaws(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".amazonaws.com"):
            return real("127.0.0.1", closed, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_for_amazonaws)
    return moto_endpoint


def _pending_attributes(name: str) -> dict[str, set[str]]:
    """Plan the stack's working directory again; the attributes each change would set."""
    workdir = stack_dir(name) / "terraform"
    assert TERRAFORM is not None
    for argv in (
        [TERRAFORM, "plan", "-input=false", "-no-color", "-out=check.tfplan"],
        [TERRAFORM, "show", "-json", "check.tfplan"],
    ):
        done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    (workdir / "check.tfplan").unlink()
    out: dict[str, set[str]] = {}
    for rc in json.loads(done.stdout).get("resource_changes", []):
        change = rc["change"]
        if change["actions"] in (["no-op"], ["read"]):
            continue
        before, after = change.get("before") or {}, change.get("after") or {}
        keys = set(before) | set(after)
        out[rc["address"]] = {k for k in keys if k in after and before.get(k) != after.get(k)}
    return out


def test_deploy_with_real_terraform_onto_an_existing_domain_then_destroy(
    moto_account: str,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    name, table, domain_name = f"e2e-{suffix}", f"E2eOrders{suffix}", f"shared-{suffix}"
    opensearch = boto3.client("opensearch", endpoint_url=moto_account)
    domain = opensearch.create_domain(
        DomainName=domain_name,
        EngineVersion="OpenSearch_2.13",
        ClusterConfig={"InstanceType": "t3.small.search", "InstanceCount": 1},
        EBSOptions={"EBSEnabled": True, "VolumeType": "gp3", "VolumeSize": 10},
    )["DomainStatus"]
    domain_arn = domain["ARN"]
    args = ["deploy", "--name", name, "--table", table, "--domain-arn", domain_arn]
    # moto (5.2) does not implement ValidateStateMachineDefinition, which the AWS
    # provider calls before creating the export loader's state machine, answering 500
    # (which the provider retries without end): the loader is planned and checked in
    # tests/unit/test_terraform_loader.py instead.
    args += ["--var", "export_loader_enabled=false"]

    deployed = runner.invoke(app, [*args, "--yes"])
    assert deployed.exit_code == 0, deployed.stderr
    assert "aws_opensearch_domain.this" not in deployed.stderr  # the domain is not the stack's
    assert "+ module.indexer.aws_lambda_event_source_mapping.this" in deployed.stderr
    assert "module.indexer.aws_lambda_function.this: Creation complete" in (
        (stack_dir(name) / "terraform.log").read_text()
    )
    # What the real Terraform wrote (state, lock file, plan, .terraform) is owner-only too.
    written = {p.name for p in stack_dir(name).rglob("*")}
    assert {"terraform.tfstate", ".terraform.lock.hcl", "terraform.log"} <= written
    for path in [stack_dir(name), *stack_dir(name).rglob("*")]:
        if path.is_symlink():  # the provider, linked from the read-only mirror
            continue
        mode = path.stat().st_mode & 0o777
        assert mode == 0o700 if path.is_dir() else mode & 0o077 == 0, (path, oct(mode))
    target = load_aws_target(name)
    assert target is not None
    assert resolve_target() == target
    assert (target.table, target.domain_arn, target.domain_managed) == (table, domain_arn, False)
    assert target.function_name
    assert target.event_source_mapping_uuid
    assert target.dlq_url
    assert target.search_endpoint == f"https://{domain['Endpoint']}"
    lam = boto3.client("lambda", endpoint_url=moto_account)
    esm = lam.get_event_source_mapping(UUID=target.event_source_mapping_uuid)
    assert esm["EventSourceArn"] == target.stream_arn
    assert esm["FunctionArn"].endswith(f":function:{target.function_name}")
    # No FGAC on this domain: the owner must grant the indexer; deploy says how, in one line.
    assert "access policy" in deployed.stderr

    # The second plan: everything converged.
    settled = runner.invoke(app, [*args, "--plan-only"])
    assert settled.exit_code == ExitCode.OK, (settled.stderr, _pending_attributes(name))
    assert "Terraform plan: no changes" in settled.stderr

    status = runner.invoke(app, ["status", "--json"])
    checks = {c["name"]: c for c in json.loads(status.stdout)["checks"]}
    mapping = checks["event source mapping"]
    assert mapping["data"]["uuid"] == target.event_source_mapping_uuid
    assert mapping["data"]["state"] == esm["State"]

    gone = runner.invoke(app, ["destroy", "--name", name, "--yes"])
    assert gone.exit_code == 0, gone.stderr
    assert f"The existing domain {domain_name} stays" in gone.stderr
    assert load_aws_target(name) is None
    ddb = boto3.client("dynamodb", endpoint_url=moto_account)
    assert table not in ddb.list_tables()["TableNames"]
    assert not [f for f in lam.list_functions()["Functions"] if f["FunctionName"].startswith(name)]
    assert not lam.list_event_source_mappings(FunctionName=target.function_name).get(
        "EventSourceMappings"
    )
    sqs = boto3.client("sqs", endpoint_url=moto_account)
    assert not sqs.list_queues(QueueNamePrefix=name).get("QueueUrls")
    iam = boto3.client("iam", endpoint_url=moto_account)
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(name)]
    logs = boto3.client("logs", endpoint_url=moto_account)
    assert not logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
    # The existing domain stays.
    assert opensearch.describe_domain(DomainName=domain_name)["DomainStatus"]["ARN"] == domain_arn
