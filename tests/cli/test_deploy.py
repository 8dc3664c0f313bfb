"""`ddbsearch deploy` / `destroy` on AWS, orchestrated against a stand-in terraform.

No AWS account and no provider downloads here: python-terraform runs
tests/fakes/terraform (a stand-in that records its arguments and returns canned
outputs), and a moto server answers STS and DynamoDB (the prerequisite check and
the adopt-table flow).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.errors import ExitCode
from ddbsearch.targets import load_aws_target, resolve_target, stack_dir, state_home

FAKES = Path(__file__).resolve().parents[1] / "fakes"
runner = CliRunner()

Calls = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def fake_terraform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Put the stand-in terraform first on PATH; returns a reader of its recorded calls."""
    record = tmp_path / "terraform-calls.jsonl"
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TERRAFORM_RECORD", str(record))
    monkeypatch.delenv("FAKE_TERRAFORM_FAIL", raising=False)
    monkeypatch.delenv("FAKE_TERRAFORM_VERSION", raising=False)

    def calls() -> list[dict[str, Any]]:
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines()]

    return calls


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """boto3 (in ddbsearch and here) talks to the moto server; returns a DynamoDB client.

    The stand-in's "domain" is a closed local port: deploy's index preparation fails
    fast and is reported as a warning (tests that need a domain use osmem-server).
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("FAKE_TERRAFORM_DOMAIN_ENDPOINT", f"https://127.0.0.1:{closed_port()}")
    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)


def commands(calls: list[dict[str, Any]]) -> list[str]:
    return [" ".join(c["argv"][:2]) if c["argv"][0] == "state" else c["argv"][0] for c in calls]


def argv_of(calls: list[dict[str, Any]], command: str) -> list[str]:
    matching = [c["argv"] for c in calls if c["argv"][0] == command]
    assert len(matching) == 1, matching
    return list(matching[0])


def tfvars(name: str = "ddbsearch") -> dict[str, Any]:
    return dict(json.loads((stack_dir(name) / "terraform" / "terraform.tfvars.json").read_text()))


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def create_table(client: Any, name: str, stream: str | None) -> None:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    client.create_table(**kwargs)


def stream_of(client: Any, name: str) -> dict[str, Any]:
    return dict(client.describe_table(TableName=name)["Table"].get("StreamSpecification") or {})


# --------------------------------------------------------------------------- deploy


@pytest.mark.integration
def test_deploy_runs_init_plan_apply_and_makes_the_stack_current(
    fake_terraform: Calls, aws: Any, osmem_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TERRAFORM_DOMAIN_ENDPOINT", osmem_base)
    index = unique("deployed-")
    result = runner.invoke(app, ["deploy", "--region", "eu-west-1", "--index", index])
    assert result.exit_code == 0, result.stderr

    calls = fake_terraform()
    assert commands(calls) == ["version", "init", "plan", "apply", "output"]
    workdir = stack_dir("ddbsearch") / "terraform"
    assert {c["cwd"] for c in calls[1:]} == {str(workdir)}
    assert all(c["env"]["AWS_REGION"] == "eu-west-1" for c in calls[1:])
    assert all(c["env"]["TF_IN_AUTOMATION"] == "1" for c in calls[1:])
    assert "-input=false" in argv_of(calls, "plan")
    assert "-out=tfplan" in argv_of(calls, "plan")
    apply = argv_of(calls, "apply")
    assert apply[-1] == "tfplan"
    assert "-auto-approve" in apply
    assert not any(a.startswith(("-var", "-var-file")) for a in apply)

    # The working directory: the modules, the variables, and the Lambda zip.
    assert (workdir / "main.tf").is_file()
    assert (workdir / "modules" / "indexer" / "main.tf").is_file()
    assert tfvars() == {
        "name": "ddbsearch",
        "region": "eu-west-1",
        "lambda_zip_path": "indexer.zip",
        "index_name": index,
    }
    with zipfile.ZipFile(workdir / "indexer.zip") as zf:
        assert "handler.py" in zf.namelist()

    # The target later commands use, from the outputs.
    target = load_aws_target("ddbsearch")
    assert target is not None
    assert target.kind == "aws"
    assert target.table == "UsersTransactions"
    assert target.index == index
    assert target.region == "eu-west-1"
    assert target.search_endpoint == osmem_base
    assert target.dashboards_url == target.search_endpoint + "/_dashboards"
    assert target.function_name == "ddbsearch-indexer"
    assert target.dlq_url is not None
    assert target.dlq_url.endswith("/ddbsearch-indexer-dlq")
    assert target.table_adopted is False
    assert resolve_target() == target  # `ddbsearch search` now finds it with no flags

    # Outputs are printed, Dashboards first; the log keeps Terraform's full output.
    err = result.stderr
    assert err.index("Dashboards:") < err.index("Search endpoint:") < err.index("Table:")
    log = (stack_dir("ddbsearch") / "terraform.log").read_text()
    assert "module.search.aws_opensearch_domain.this: Creation complete" in log
    assert "Still creating" not in err  # repeated progress lines stay in the log

    # Deploy prepared the index on the "domain", signed as the operator.
    assert f"index {index} created" in err
    with urllib.request.urlopen(f"{osmem_base}/{index}") as resp:
        assert resp.status == 200


@pytest.mark.integration
def test_an_unready_domain_is_a_warning_not_a_failure(fake_terraform: Calls, aws: Any) -> None:
    result = runner.invoke(app, ["deploy", "--region", "us-east-1"])
    assert result.exit_code == 0, result.stderr
    assert "warning: the index userstransactions could not be prepared yet" in result.stderr
    assert "the indexer creates it with its first batch" in result.stderr
    assert load_aws_target("ddbsearch") is not None


@pytest.mark.integration
def test_deploy_options_become_terraform_variables(fake_terraform: Calls, aws: Any) -> None:
    table = unique("Orders")
    result = runner.invoke(
        app,
        [
            "deploy",
            "--name", "orders-search",
            "--region", "us-east-1",
            "--table", table,
            "--hash-key", "orderId:S",
            "--index", "orders",
            "--instance-type", "r6g.large.search",
            "--instance-count", "2",
            "--operator-arn", "arn:aws:iam::123456789012:role/search-ops",
            "--operator-arn", "arn:aws:iam::123456789012:user/alice",
            "--var", "batch_size=500",
            "--var", 'tags={"team": "search"}',
            "--var", "engine_version=OpenSearch_2.17",
            "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)  # machine output on stdout, nothing else
    assert (printed["kind"], printed["name"], printed["index"]) == (
        "aws",
        "orders-search",
        "orders",
    )
    assert tfvars("orders-search") == {
        "name": "orders-search",
        "region": "us-east-1",
        "lambda_zip_path": "indexer.zip",
        "table_name": table,  # does not exist: created, with the given keys
        "hash_key": {"name": "orderId", "type": "S"},
        "range_key": None,
        "index_name": "orders",
        "instance_type": "r6g.large.search",
        "instance_count": 2,
        "operator_arns": [
            "arn:aws:iam::123456789012:role/search-ops",
            "arn:aws:iam::123456789012:user/alice",
        ],
        "batch_size": 500,
        "tags": {"team": "search"},
        "engine_version": "OpenSearch_2.17",
    }
    current = json.loads((state_home() / "current.json").read_text())
    assert current == {"kind": "aws", "name": "orders-search"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--var", "batch_size"], "--var 'batch_size' is not KEY=VALUE"),
        (["--var", "no_such_variable=1"], "the Terraform module has no such variable"),
        (["--var", "lambda_zip_path=x.zip"], "is set by ddbsearch itself"),
        (["--var", "batch_size=1", "--var", "batch_size=2"], "given twice"),
        (["--var", "instance_type=x", "--instance-type", "y"], "repeats an option"),
        (["--hash-key", "userId"], "--hash-key 'userId' is not NAME:TYPE"),
        (["--range-key", "sk:X"], "--range-key 'sk:X' is not NAME:TYPE"),
        (["--name", "Bad_Name"], "invalid stack name 'Bad_Name'"),
    ],
)
def test_deploy_rejects_bad_options_before_running_anything(
    fake_terraform: Calls, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["deploy", "--region", "us-east-1", *args])
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "init" not in commands(fake_terraform())


# --------------------------------------------------------------------------- prerequisites


def test_missing_terraform_is_a_prerequisite_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH, not even a real terraform
    result = runner.invoke(app, ["deploy"])
    assert result.exit_code == ExitCode.PREREQUISITE
    assert result.stderr.startswith("error: terraform was not found on PATH (install Terraform")
    assert len(result.stderr.strip().splitlines()) == 1


def test_old_terraform_is_a_prerequisite_error(
    fake_terraform: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TERRAFORM_VERSION", "1.4.6")
    result = runner.invoke(app, ["deploy"])
    assert result.exit_code == ExitCode.PREREQUISITE
    assert "terraform 1.4.6 is too old: ddbsearch needs 1.5 or later" in result.stderr
    assert commands(fake_terraform()) == ["version"]


@pytest.fixture
def no_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no 1-2 s IMDS probe


@pytest.mark.usefixtures("no_aws_config")
def test_missing_credentials_is_an_auth_error(
    fake_terraform: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = runner.invoke(app, ["deploy", "--region", "us-east-1"])
    assert result.exit_code == ExitCode.AUTH, result.stderr
    assert "no usable AWS credentials" in result.stderr
    assert "aws configure" in result.stderr
    assert commands(fake_terraform()) == ["version"]


@pytest.mark.usefixtures("no_aws_config")
def test_missing_region_is_a_prerequisite_error(
    fake_terraform: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = runner.invoke(app, ["deploy"])
    assert result.exit_code == ExitCode.PREREQUISITE, result.stderr
    assert "no AWS region set (pass --region" in result.stderr


@pytest.mark.usefixtures("no_aws_config")
def test_unknown_profile_is_an_auth_error(fake_terraform: Calls) -> None:
    result = runner.invoke(app, ["deploy", "--profile", "nope"])
    assert result.exit_code == ExitCode.AUTH, result.stderr
    assert "AWS profile 'nope' not found" in result.stderr


@pytest.mark.integration
def test_unreachable_sts_is_reported_as_unreachable(
    fake_terraform: Calls, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = runner.invoke(app, ["deploy", "--region", "us-east-1"])
    assert result.exit_code == ExitCode.UNREACHABLE, result.stderr
    assert "checking AWS credentials: cannot reach" in result.stderr


@pytest.mark.integration
def test_redeploy_updates_in_place_but_never_moves_region(fake_terraform: Calls, aws: Any) -> None:
    assert runner.invoke(app, ["deploy", "--region", "us-east-1"]).exit_code == 0
    again = runner.invoke(app, ["deploy", "--region", "us-east-1", "--instance-count", "2"])
    assert again.exit_code == 0, again.stderr
    assert tfvars()["instance_count"] == 2
    assert commands(fake_terraform()).count("apply") == 2

    moved = runner.invoke(app, ["deploy", "--region", "eu-west-1"])
    assert moved.exit_code == ExitCode.USAGE
    assert "stack 'ddbsearch' is deployed in us-east-1, not eu-west-1" in moved.stderr
    assert commands(fake_terraform()).count("init") == 2


@pytest.mark.integration
def test_profile_is_used_by_the_check_and_by_terraform(
    fake_terraform: Calls, aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "aws-config"
    config.write_text("[profile sandbox]\nregion = ap-southeast-2\n")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        "[sandbox]\naws_access_key_id = sandboxkey\naws_secret_access_key = sandboxsecret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = runner.invoke(app, ["deploy", "--profile", "sandbox"])
    assert result.exit_code == 0, result.stderr
    assert "to ap-southeast-2 as" in result.stderr  # the profile's region
    for call in fake_terraform()[1:]:
        # Key variables would win over the profile inside the provider: not passed on.
        assert call["env"] == {
            "AWS_PROFILE": "sandbox",
            "AWS_REGION": "ap-southeast-2",
            "TF_IN_AUTOMATION": "1",
            "keys_in_env": False,
        }
    target = load_aws_target("ddbsearch")
    assert target is not None
    assert target.profile == "sandbox"


@pytest.mark.integration
def test_terraform_failure_is_one_line_with_the_log_path(
    fake_terraform: Calls, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TERRAFORM_FAIL", "apply")
    result = runner.invoke(app, ["deploy", "--region", "us-east-1"])
    assert result.exit_code == ExitCode.INFRA
    log = stack_dir("ddbsearch") / "terraform.log"
    assert result.stderr.strip().splitlines()[-1] == (
        "error: terraform apply failed: creating OpenSearch domain (ddbsearch): "
        "ValidationException: stand-in failure: Injected by FAKE_TERRAFORM_FAIL. "
        f"(full log: {log})"
    )
    assert "Injected by FAKE_TERRAFORM_FAIL" in log.read_text()
    assert load_aws_target("ddbsearch") is None
    assert not (state_home() / "current.json").exists()


@pytest.mark.integration
def test_state_bucket_selects_the_s3_backend_and_destroy_reuses_it(
    fake_terraform: Calls, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TERRAFORM_VERSION", "1.10.5")
    result = runner.invoke(
        app, ["deploy", "--name", "shared", "--region", "us-east-1", "--state-bucket", "tf-state"]
    )
    assert result.exit_code == 0, result.stderr
    init = argv_of(fake_terraform(), "init")
    assert "-backend-config=bucket=tf-state" in init
    assert "-backend-config=key=ddbsearch/shared/terraform.tfstate" in init
    assert "-backend-config=encrypt=true" in init
    assert "-backend-config=use_lockfile=true" in init  # Terraform >= 1.10
    assert 'backend "s3"' in (stack_dir("shared") / "terraform" / "backend.tf").read_text()

    result = runner.invoke(app, ["destroy", "--name", "shared", "--yes"])
    assert result.exit_code == 0, result.stderr
    inits = [c["argv"] for c in fake_terraform() if c["argv"][0] == "init"]
    assert len(inits) == 2
    assert "-backend-config=bucket=tf-state" in inits[1]

    # Another bucket for the same stack would split its state: refused.
    runner.invoke(app, ["deploy", "--name", "shared", "--region", "us-east-1", "--yes",
                        "--state-bucket", "tf-state"])  # fmt: skip
    result = runner.invoke(
        app, ["deploy", "--name", "shared", "--region", "us-east-1", "--state-bucket", "other"]
    )
    assert result.exit_code == ExitCode.USAGE
    assert "keeps its state in s3://tf-state" in result.stderr


# --------------------------------------------------------------------------- adopting a table


@pytest.mark.integration
def test_adopting_a_table_without_stream_asks_and_declining_changes_nothing(
    fake_terraform: Calls, aws: Any
) -> None:
    table = unique("Legacy")
    create_table(aws, table, stream=None)
    result = runner.invoke(app, ["deploy", "--region", "us-east-1", "--table", table], input="n\n")
    assert result.exit_code == ExitCode.ABORTED
    assert f"table '{table}' has no DynamoDB stream" in result.stderr
    assert "Turn on a NEW_AND_OLD_IMAGES stream" in result.stderr
    assert "deploy cancelled: the table's stream was left unchanged" in result.stderr
    assert not stream_of(aws, table).get("StreamEnabled")
    assert "init" not in commands(fake_terraform())


@pytest.mark.integration
def test_adopting_a_table_without_stream_enables_it_after_confirmation(
    fake_terraform: Calls, aws: Any
) -> None:
    table = unique("Legacy")
    create_table(aws, table, stream=None)
    result = runner.invoke(app, ["deploy", "--region", "us-east-1", "--table", table], input="y\n")
    assert result.exit_code == 0, result.stderr
    assert stream_of(aws, table) == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert tfvars()["existing_table_name"] == table
    assert "table_name" not in tfvars()
    assert "ddbsearch backfill" in result.stderr
    target = load_aws_target("ddbsearch")
    assert target is not None
    assert target.table == table
    assert target.table_adopted is True


@pytest.mark.integration
def test_adopting_a_keys_only_stream_explains_what_replacing_it_costs(
    fake_terraform: Calls, aws: Any
) -> None:
    # Replacing the stream (disable, then enable NEW_AND_OLD_IMAGES) is covered with
    # botocore's Stubber in tests/unit/test_terraform_adopt.py: moto keeps the old
    # stream label after disabling and then refuses any new stream.
    table = unique("KeysOnly")
    create_table(aws, table, stream="KEYS_ONLY")
    result = runner.invoke(app, ["deploy", "--region", "us-east-1", "--table", table], input="\n")
    assert result.exit_code == ExitCode.ABORTED
    assert "streams KEYS_ONLY, but ddbsearch needs NEW_AND_OLD_IMAGES" in result.stderr
    assert "ends it for any other reader" in result.stderr
    assert stream_of(aws, table) == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}


@pytest.mark.integration
def test_adopting_a_ready_table_asks_nothing(fake_terraform: Calls, aws: Any) -> None:
    table = unique("Ready")
    create_table(aws, table, stream="NEW_AND_OLD_IMAGES")
    result = runner.invoke(
        app, ["deploy", "--region", "us-east-1", "--table", table, "--hash-key", "id:N"]
    )
    assert result.exit_code == 0, result.stderr
    assert "Turn on" not in result.stderr
    assert f"--hash-key/--range-key ignored: table {table} exists with keys pk (HASH)" in (
        result.stderr
    )
    assert tfvars() == {
        "name": "ddbsearch",
        "region": "us-east-1",
        "lambda_zip_path": "indexer.zip",
        "existing_table_name": table,
    }


# --------------------------------------------------------------------------- destroy


@pytest.mark.integration
def test_destroy_shows_what_goes_and_declining_keeps_everything(
    fake_terraform: Calls, aws: Any
) -> None:
    assert runner.invoke(app, ["deploy", "--region", "us-east-1"]).exit_code == 0
    result = runner.invoke(app, ["destroy"], input="n\n")
    assert result.exit_code == ExitCode.ABORTED
    assert "module.search.aws_opensearch_domain.this" in result.stderr
    assert "The table UsersTransactions was created by this stack" in result.stderr
    assert "destroy cancelled: nothing was removed" in result.stderr
    assert "destroy" not in commands(fake_terraform())
    assert load_aws_target("ddbsearch") is not None
    assert (state_home() / "current.json").exists()


@pytest.mark.integration
def test_destroy_with_yes_removes_the_stack_and_forgets_it(fake_terraform: Calls, aws: Any) -> None:
    assert runner.invoke(app, ["deploy", "--region", "us-east-1"]).exit_code == 0
    result = runner.invoke(app, ["destroy", "--yes"])
    assert result.exit_code == 0, result.stderr

    calls = fake_terraform()
    assert commands(calls)[-3:] == ["init", "state list", "destroy"]
    destroy = argv_of(calls, "destroy")
    assert "-auto-approve" in destroy
    assert "-force" not in destroy  # python-terraform's default, rejected by Terraform >= 0.15
    assert "will delete 9 resources" in result.stderr
    assert load_aws_target("ddbsearch") is None
    assert not (state_home() / "current.json").exists()
    assert "Destroy complete!" in (stack_dir("ddbsearch") / "terraform.log").read_text()
    assert not (stack_dir("ddbsearch") / "terraform").exists()  # provider copy and all

    again = runner.invoke(app, ["destroy", "--yes"])
    assert again.exit_code == ExitCode.NOT_DEPLOYED


@pytest.mark.integration
def test_destroy_never_deletes_an_adopted_table(fake_terraform: Calls, aws: Any) -> None:
    table = unique("Kept")
    create_table(aws, table, stream="NEW_AND_OLD_IMAGES")
    assert runner.invoke(app, ["deploy", "--region", "us-east-1", "--table", table]).exit_code == 0
    result = runner.invoke(app, ["destroy", "--yes"])
    assert result.exit_code == 0, result.stderr
    assert f"The adopted table {table} stays" in result.stderr
    # A data source is read, never deleted: it is not in the list of what goes.
    assert "aws_dynamodb_table" not in result.stderr
    assert aws.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"


def test_destroy_of_an_unknown_stack_says_so(fake_terraform: Calls) -> None:
    result = runner.invoke(app, ["destroy", "--name", "never-deployed", "--yes"])
    assert result.exit_code == ExitCode.NOT_DEPLOYED
    assert "no stack named 'never-deployed' was deployed from this machine" in result.stderr
    assert commands(fake_terraform()) == ["version"]
