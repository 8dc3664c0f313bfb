"""The Terraform runner, the tfvars rendering and the outputs -> target mapping."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ddbsearch.errors import InfraError, InputError
from ddbsearch.infra.runner import TerraformRunner, first_error
from ddbsearch.infra.stack import _is_data_source, target_from_outputs
from ddbsearch.infra.tfvars import StackSettings, parse_key, parse_var, parse_vars

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "terraform"

BOXED = """
\u2577
\u2502 Error: creating OpenSearch Domain (ddbsearch): ValidationException: Invalid instance type
\u2502
\u2502   with module.search.aws_opensearch_domain.this,
\u2502   on modules/search/main.tf line 61, in resource "aws_opensearch_domain" "this":
\u2502   61: resource "aws_opensearch_domain" "this" {
\u2502
\u2502 t3.tiny.search is not a valid instance type.
\u2575
"""

PLAIN = """
Error: No valid credential sources found

  with provider["registry.terraform.io/hashicorp/aws"],
  on main.tf line 6, in provider "aws":
   6: provider "aws" {

Please see https://registry.terraform.io/providers/hashicorp/aws for more information.
"""


def test_first_error_reads_boxed_and_plain_diagnostics() -> None:
    assert first_error(BOXED) == (
        "creating OpenSearch Domain (ddbsearch): ValidationException: Invalid instance type: "
        "t3.tiny.search is not a valid instance type."
    )
    assert first_error(PLAIN) == (
        "No valid credential sources found: Please see "
        "https://registry.terraform.io/providers/hashicorp/aws for more information."
    )
    assert first_error("Apply complete!") is None


def test_runner_streams_progress_and_logs_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAKE_TERRAFORM_FAIL", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    (work / "indexer.zip").write_bytes(b"zip")
    (work / "terraform.tfvars.json").write_text(
        json.dumps({"name": "s1", "region": "us-east-1", "lambda_zip_path": "indexer.zip"})
    )
    seen: list[str] = []
    log = tmp_path / "terraform.log"
    runner = TerraformRunner(work, binary=str(FAKE), log_path=log, on_progress=seen.append)
    runner.init()
    runner.plan()
    runner.apply()
    outputs = runner.outputs()

    assert seen[:3] == ["terraform init", "terraform plan", "terraform apply"]
    assert "terraform apply: module.search[0].aws_opensearch_domain.this: Creating..." in seen
    assert any("Still creating" in line for line in seen)
    assert not any("Apply complete" in line for line in seen)  # only resource progress
    assert outputs["table_name"] == "UsersTransactions"
    assert outputs["domain_endpoint"].startswith("https://")
    text = log.read_text()
    headers = [line for line in text.splitlines() if line.startswith("=== ") and " $ " in line]
    assert len(headers) == 4  # one header per command
    assert text.count("=== exit 0") == 4
    assert f"$ {FAKE} apply -input=false -no-color -auto-approve tfplan" in text
    assert "Apply complete!" in text

    assert runner.state_list()[0] == "module.table.aws_dynamodb_table.this[0]"
    failing = TerraformRunner(
        work, binary=str(FAKE), log_path=log, env={"FAKE_TERRAFORM_FAIL": "state list"}
    )
    with pytest.raises(InfraError, match=r"^terraform state list failed: creating OpenSearch"):
        failing.state_list()


def test_runner_reports_a_missing_binary(tmp_path: Path) -> None:
    runner = TerraformRunner(
        tmp_path, binary=str(tmp_path / "no-terraform"), log_path=tmp_path / "log"
    )
    with pytest.raises(InfraError, match="could not start terraform"):
        runner.init()


def test_runner_does_not_inherit_interactive_terraform(tmp_path: Path) -> None:
    runner = TerraformRunner(tmp_path, binary=str(FAKE), log_path=tmp_path / "log", env={"X": "1"})
    env = runner._env
    assert env["TF_IN_AUTOMATION"] == "1"
    assert env["TF_INPUT"] == "0"
    assert env["X"] == "1"
    assert env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("batch_size=500", ("batch_size", 500)),
        ("engine_version=OpenSearch_2.17", ("engine_version", "OpenSearch_2.17")),
        ('tags={"team": "search"}', ("tags", {"team": "search"})),
        ("tracing_enabled=true", ("tracing_enabled", True)),
        ("vpc=null", ("vpc", None)),
        ("index_name=a=b", ("index_name", "a=b")),
    ],
)
def test_parse_var_reads_json_or_text(spec: str, expected: tuple[str, object]) -> None:
    assert parse_var(spec) == expected


def test_parse_vars_rejects_duplicates() -> None:
    with pytest.raises(InputError, match="given twice"):
        parse_vars(["batch_size=1", "batch_size=2"])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("userId:N", ("userId", "N")), ("a:b:s", ("a:b", "S")), ("pk:B", ("pk", "B"))],
)
def test_parse_key(spec: str, expected: tuple[str, str]) -> None:
    assert parse_key(spec, option="--hash-key") == expected


@pytest.mark.parametrize("spec", ["userId", ":N", "userId:X", "userId:"])
def test_parse_key_rejects(spec: str) -> None:
    with pytest.raises(InputError, match="is not NAME:TYPE"):
        parse_key(spec, option="--hash-key")


def test_tfvars_for_an_adopted_table_ignore_key_options() -> None:
    settings = StackSettings(
        name="stack1", table="Orders", adopt_table=True, keys=(("pk", "S"), None)
    )
    assert settings.tfvars(region="eu-west-1") == {
        "name": "stack1",
        "region": "eu-west-1",
        "lambda_zip_path": "indexer.zip",
        "existing_table_name": "Orders",
    }


def test_stack_names_are_checked_when_settings_are_made() -> None:
    with pytest.raises(InputError, match="invalid stack name"):
        StackSettings(name="x")


def test_target_from_outputs() -> None:
    target = target_from_outputs(
        "s1",
        {
            "table_name": "T",
            "index_name": "t",
            "region": "us-east-1",
            "domain_endpoint": "search-s1.us-east-1.es.amazonaws.com",
            "stream_arn": "arn:stream",
            "table_adopted": True,
        },
        profile="prod",
    )
    assert target.search_endpoint == "https://search-s1.us-east-1.es.amazonaws.com"
    assert target.profile == "prod"
    assert target.sigv4 is True
    assert (target.stream_arn, target.table_adopted) == ("arn:stream", True)
    with pytest.raises(InfraError, match="terraform outputs lack domain_endpoint, region"):
        target_from_outputs("s1", {"table_name": "T", "index_name": "t"})


@pytest.mark.parametrize(
    ("address", "is_data"),
    [
        ("module.table.data.aws_dynamodb_table.adopted[0]", True),
        ("data.aws_caller_identity.current", True),
        ("module.table.aws_dynamodb_table.this[0]", False),
        ("module.data.aws_sqs_queue.dlq", False),  # a module named "data"
    ],
)
def test_data_sources_are_told_apart(address: str, is_data: bool) -> None:
    assert _is_data_source(address) is is_data
