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
    result = runner.invoke(app, ["deploy", "--yes", "--region", "eu-west-1", "--index", index])
    assert result.exit_code == 0, result.stderr

    calls = fake_terraform()
    assert commands(calls) == ["version", "init", "plan", "show", "apply", "output"]
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
    assert "module.search[0].aws_opensearch_domain.this: Creation complete" in log
    assert "Still creating" not in err  # repeated progress lines stay in the log

    # Deploy prepared the index on the "domain", signed as the operator.
    assert f"index {index} created" in err
    with urllib.request.urlopen(f"{osmem_base}/{index}") as resp:
        assert resp.status == 200


@pytest.mark.integration
def test_an_unready_domain_is_a_warning_not_a_failure(fake_terraform: Calls, aws: Any) -> None:
    result = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"])
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
            "--yes",
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
    result = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1", *args])
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "init" not in commands(fake_terraform())


# --------------------------------------------------------------------------- prerequisites


def test_missing_terraform_is_a_prerequisite_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH, not even a real terraform
    result = runner.invoke(app, ["deploy", "--yes"])
    assert result.exit_code == ExitCode.PREREQUISITE
    assert result.stderr.startswith("error: terraform was not found on PATH (install Terraform")
    assert len(result.stderr.strip().splitlines()) == 1


def test_old_terraform_is_a_prerequisite_error(
    fake_terraform: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TERRAFORM_VERSION", "1.4.6")
    result = runner.invoke(app, ["deploy", "--yes"])
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
    result = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"])
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
    result = runner.invoke(app, ["deploy", "--yes"])
    assert result.exit_code == ExitCode.PREREQUISITE, result.stderr
    assert "no AWS region set (pass --region" in result.stderr


@pytest.mark.usefixtures("no_aws_config")
def test_unknown_profile_is_an_auth_error(fake_terraform: Calls) -> None:
    result = runner.invoke(app, ["deploy", "--yes", "--profile", "nope"])
    assert result.exit_code == ExitCode.AUTH, result.stderr
    assert "AWS profile 'nope' not found" in result.stderr


@pytest.mark.integration
def test_unreachable_sts_is_reported_as_unreachable(
    fake_terraform: Calls, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"])
    assert result.exit_code == ExitCode.UNREACHABLE, result.stderr
    assert "checking AWS credentials: cannot reach" in result.stderr


@pytest.mark.integration
def test_redeploy_updates_in_place_but_never_moves_region(fake_terraform: Calls, aws: Any) -> None:
    assert runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"]).exit_code == 0
    again = runner.invoke(
        app, ["deploy", "--yes", "--region", "us-east-1", "--instance-count", "2"]
    )
    assert again.exit_code == 0, again.stderr
    assert tfvars()["instance_count"] == 2
    assert commands(fake_terraform()).count("apply") == 2

    moved = runner.invoke(app, ["deploy", "--yes", "--region", "eu-west-1"])
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
    result = runner.invoke(app, ["deploy", "--yes", "--profile", "sandbox"])
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
    result = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"])
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
        app,
        ["deploy", "--yes", "--name", "shared", "--region", "us-east-1",
         "--state-bucket", "tf-state"],
    )  # fmt: skip
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
    runner.invoke(app, ["deploy", "--yes", "--name", "shared", "--region", "us-east-1", "--yes",
                        "--state-bucket", "tf-state"])  # fmt: skip
    result = runner.invoke(
        app,
        ["deploy", "--yes", "--name", "shared", "--region", "us-east-1",
         "--state-bucket", "other"],
    )  # fmt: skip
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
    result = runner.invoke(
        app, ["deploy", "--region", "us-east-1", "--table", table], input="y\ny\n"
    )
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
    assert "streams KEYS_ONLY, but ddbsearch needs NEW_IMAGE or NEW_AND_OLD_IMAGES" in result.stderr
    assert "ends it for any other reader" in result.stderr
    assert stream_of(aws, table) == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}


@pytest.mark.integration
def test_adopting_a_ready_table_asks_nothing(fake_terraform: Calls, aws: Any) -> None:
    table = unique("Ready")
    create_table(aws, table, stream="NEW_AND_OLD_IMAGES")
    result = runner.invoke(
        app,
        ["deploy", "--region", "us-east-1", "--table", table, "--hash-key", "id:N"],
        input="y\n",  # the one question: apply the plan
    )
    assert result.exit_code == 0, result.stderr
    assert "Turn on" not in result.stderr
    assert "Apply this plan" in result.stderr
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
    assert runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"]).exit_code == 0
    result = runner.invoke(app, ["destroy"], input="n\n")
    assert result.exit_code == ExitCode.ABORTED
    assert "module.search[0].aws_opensearch_domain.this" in result.stderr
    assert "The table UsersTransactions was created by this stack" in result.stderr
    assert "destroy cancelled: nothing was removed" in result.stderr
    assert "destroy" not in commands(fake_terraform())
    assert load_aws_target("ddbsearch") is not None
    assert (state_home() / "current.json").exists()


@pytest.mark.integration
def test_destroy_with_yes_removes_the_stack_and_forgets_it(fake_terraform: Calls, aws: Any) -> None:
    assert runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"]).exit_code == 0
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
    deployed = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1", "--table", table])
    assert deployed.exit_code == 0
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


# --------------------------------------------------------------------------- the plan


@pytest.mark.integration
def test_deploy_shows_the_plan_and_asks_before_applying(fake_terraform: Calls, aws: Any) -> None:
    declined = runner.invoke(app, ["deploy", "--region", "us-east-1"], input="n\n")
    assert declined.exit_code == ExitCode.ABORTED, declined.stderr
    assert "Terraform plan: 9 to add, 0 to change, 0 to replace, 0 to destroy" in declined.stderr
    assert "+ module.search[0].aws_opensearch_domain.this" in declined.stderr
    assert "Apply this plan (9 to add" in declined.stderr
    assert "apply" not in commands(fake_terraform())
    assert load_aws_target("ddbsearch") is None
    assert not (stack_dir("ddbsearch") / "terraform" / "tfplan").exists()  # no stale plan left

    accepted = runner.invoke(app, ["deploy", "--region", "us-east-1"], input="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert commands(fake_terraform()).count("apply") == 1


@pytest.mark.integration
def test_plan_only_exits_14_while_changes_are_pending_and_0_after(
    fake_terraform: Calls, aws: Any
) -> None:
    pending = runner.invoke(app, ["deploy", "--region", "us-east-1", "--plan-only"])
    assert pending.exit_code == ExitCode.PENDING == 14, pending.stderr
    assert "9 to add" in pending.stderr
    assert "apply" not in commands(fake_terraform())
    assert "Apply this plan" not in pending.stderr

    assert runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"]).exit_code == 0
    settled = runner.invoke(app, ["deploy", "--region", "us-east-1", "--plan-only"])
    assert settled.exit_code == ExitCode.OK, settled.stderr
    assert "Terraform plan: no changes" in settled.stderr
    # Nothing pending: a plain deploy asks nothing (and applies the empty plan).
    again = runner.invoke(app, ["deploy", "--region", "us-east-1"])
    assert again.exit_code == 0, again.stderr
    assert "Apply this plan" not in again.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    "address",
    ["module.search[0].aws_opensearch_domain.this", "module.table.aws_dynamodb_table.this[0]"],
)
def test_replacing_the_domain_or_the_table_needs_allow_replace_even_with_yes(
    fake_terraform: Calls, aws: Any, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    assert runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"]).exit_code == 0
    monkeypatch.setenv("FAKE_TERRAFORM_REPLACE", f"{address},module.indexer.aws_sqs_queue.dlq")
    refused = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"])
    assert refused.exit_code == ExitCode.USAGE == 2, refused.stderr
    assert "0 to add, 0 to change, 2 to replace, 0 to destroy" in refused.stderr
    assert f"-/+ {address} (replace: its data is lost)" in refused.stderr
    assert "-/+ module.indexer.aws_sqs_queue.dlq" in refused.stderr  # listed, not flagged
    assert "(replace: its data is lost)" not in refused.stderr.split("aws_sqs_queue.dlq")[1][:30]
    assert "--allow-replace" in refused.stderr
    assert commands(fake_terraform()).count("apply") == 1  # only the first deploy

    allowed = runner.invoke(app, ["deploy", "--yes", "--allow-replace", "--region", "us-east-1"])
    assert allowed.exit_code == 0, allowed.stderr
    assert commands(fake_terraform()).count("apply") == 2


@pytest.mark.integration
def test_a_single_node_domain_gets_a_one_line_warning_naming_the_variable(
    fake_terraform: Calls, aws: Any
) -> None:
    single = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"])
    assert single.exit_code == 0, single.stderr
    warnings = [line for line in single.stderr.splitlines() if "one node and no replica" in line]
    assert len(warnings) == 1
    assert "instance_count" in warnings[0]
    assert "not for production" in warnings[0]
    two = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1", "--instance-count", "2"])
    assert two.exit_code == 0, two.stderr
    assert "one node" not in two.stderr


# --------------------------------------------------------------------------- existing domain


DOMAIN_ARN = "arn:aws:es:us-east-1:123456789012:domain/shared-search"


@pytest.mark.integration
def test_domain_arn_uses_the_existing_domain_and_says_what_its_policy_needs(
    fake_terraform: Calls, aws: Any
) -> None:
    result = runner.invoke(
        app, ["deploy", "--yes", "--region", "us-east-1", "--domain-arn", DOMAIN_ARN]
    )
    assert result.exit_code == 0, result.stderr
    assert tfvars()["existing_domain_arn"] == DOMAIN_ARN
    assert "aws_opensearch_domain.this" not in result.stderr  # no domain is planned
    line = next(x for x in result.stderr.splitlines() if "access policy" in x)
    statement = json.loads(line.split("add ", 1)[1].rsplit(" (docs/aws.md", 1)[0])
    assert statement == {
        "Sid": "DdbsearchIndexer",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:role/ddbsearch-indexer"},
        "Action": ["es:ESHttpPost"],
        "Resource": [f"{DOMAIN_ARN}/userstransactions/_bulk"],
    }
    target = load_aws_target("ddbsearch")
    assert target is not None
    assert (target.domain_managed, target.domain_arn) == (False, DOMAIN_ARN)

    gone = runner.invoke(app, ["destroy", "--yes"])
    assert gone.exit_code == 0, gone.stderr
    assert "opensearch_domain" not in gone.stderr  # the domain is not the stack's to delete
    assert "The existing domain shared-search stays" in gone.stderr


# --------------------------------------------------------------------------- FGAC


INDEXER_ROLE = "arn:aws:iam::123456789012:role/ddbsearch-indexer"
OPS_ROLE = "arn:aws:iam::123456789012:role/team/ops"
OPS_USER = "arn:aws:iam::123456789012:user/alice"
READER = "arn:aws:iam::123456789012:role/analysts"
INDEX_PERMISSIONS = {
    "indexer": [
        "indices:data/write/bulk*",
        "indices:data/write/index",
        "indices:data/write/delete",
        "indices:admin/create",
        "indices:admin/get",
        "indices:admin/exists",
        "indices:admin/mapping/put",
        "indices:admin/aliases",
        "indices:admin/aliases/get",
    ],
}


def _expected_writes(index: str) -> list[tuple[str, str, Any]]:
    patterns = [index, f"{index}-*"]
    return [
        (
            "PUT",
            "roles/ddbsearch-ddbsearch-indexer",
            {
                "description": "ddbsearch ddbsearch: the indexer writes the stack's index",
                "cluster_permissions": [
                    "indices:data/write/bulk",
                    "indices:admin/index_template/get",
                    "indices:admin/index_template/put",
                ],
                "index_permissions": [
                    {"index_patterns": patterns, "allowed_actions": INDEX_PERMISSIONS["indexer"]}
                ],
            },
        ),
        (
            "PUT",
            "rolesmapping/ddbsearch-ddbsearch-indexer",
            {"backend_roles": [INDEXER_ROLE], "users": []},
        ),
        (
            "PUT",
            "roles/ddbsearch-ddbsearch-operator",
            {
                "description": (
                    "ddbsearch ddbsearch: operators search, backfill, reindex, repair, redrive"
                ),
                "cluster_permissions": [
                    "cluster_composite_ops_ro",
                    "indices:data/read/scroll/clear",
                    "cluster:monitor/health",
                    "indices:data/write/bulk",
                    "indices:admin/index_template/get",
                    "indices:admin/index_template/put",
                ],
                "index_permissions": [
                    {
                        "index_patterns": patterns,
                        "allowed_actions": [
                            "read",
                            "indices:data/write/bulk*",
                            "indices:data/write/index",
                            "indices:data/write/delete",
                            "indices:admin/create",
                            "indices:admin/delete",
                            "indices:admin/get",
                            "indices:admin/exists",
                            "indices:admin/mapping/put",
                            "indices:admin/mappings/get",
                            "indices:admin/aliases",
                            "indices:admin/aliases/get",
                            "indices:admin/refresh*",
                            "indices:monitor/stats",
                        ],
                    }
                ],
            },
        ),
        (
            "PUT",
            "rolesmapping/ddbsearch-ddbsearch-operator",
            {"backend_roles": [OPS_ROLE], "users": [OPS_USER]},
        ),
        (
            "PUT",
            "roles/ddbsearch-ddbsearch-reader",
            {
                "description": (
                    "ddbsearch ddbsearch: read-only operators search, status, verify, explain"
                ),
                "cluster_permissions": [
                    "cluster_composite_ops_ro",
                    "indices:data/read/scroll/clear",
                ],
                "index_permissions": [
                    {
                        "index_patterns": patterns,
                        "allowed_actions": [
                            "read",
                            "indices:admin/get",
                            "indices:admin/mappings/get",
                            "indices:admin/aliases/get",
                        ],
                    }
                ],
            },
        ),
        (
            "PUT",
            "rolesmapping/ddbsearch-ddbsearch-reader",
            {"backend_roles": [READER], "users": []},
        ),
        # Dashboards: the built-in mappings had no members yet, so they are created;
        # with members, deploy only appends (tests/unit/test_fgac_roles.py).
        (
            "PUT",
            "rolesmapping/opensearch_dashboards_user",
            {"backend_roles": [READER, OPS_ROLE], "users": [OPS_USER]},
        ),
        (
            "PUT",
            "rolesmapping/opensearch_dashboards_read_only",
            {"backend_roles": [READER], "users": []},
        ),
    ]


@pytest.mark.integration
def test_fgac_roles_are_mapped_signed_idempotent_and_removed_by_destroy(
    fake_terraform: Calls, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.recording import recording_domain

    args = [
        "deploy", "--yes", "--region", "us-east-1", "--index", "orders",
        "--var", "fine_grained_access_control_enabled=true",
        "--operator-arn", OPS_ROLE, "--operator-arn", OPS_USER, "--reader-arn", READER,
    ]  # fmt: skip
    with recording_domain() as domain:
        monkeypatch.setenv("FAKE_TERRAFORM_DOMAIN_ENDPOINT", domain.url)
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.stderr
        assert tfvars()["reader_arns"] == [READER]
        assert domain.writes() == _expected_writes("orders")
        assert "8 roles/mappings written" in first.stderr
        # Signed as the operator running deploy (SigV4 through the security REST API).
        security = [r for r in domain.requests if "_security" in r.path]
        assert all(r.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ") for r in security)
        # The roles come before the index is prepared (the indexer needs them at once).
        paths = [r.path for r in domain.requests]
        last_security = max(i for i, p in enumerate(paths) if "_security" in p)
        assert any(not p.startswith("/_plugins") for p in paths[last_security:])

        domain.clear()
        second = runner.invoke(app, args)
        assert second.exit_code == 0, second.stderr
        assert domain.writes() == []  # compared and skipped: nothing re-sent
        # 6 for ddbsearch's roles and mappings, 2 x (built-in role, its mapping).
        assert [m for m, _, _ in domain.security_requests()] == ["GET"] * 10
        assert "roles and mappings are in place" in second.stderr

        # Someone narrowed the operator mapping by hand: the next deploy restores it only.
        domain.security["rolesmapping/ddbsearch-ddbsearch-operator"] = {"backend_roles": []}
        domain.clear()
        assert runner.invoke(app, args).exit_code == 0
        assert domain.writes() == [_expected_writes("orders")[3]]

        # Someone else maps a principal to Dashboards: destroy leaves it there.
        bi = "arn:aws:iam::123456789012:role/bi"
        domain.security["rolesmapping/opensearch_dashboards_user"]["backend_roles"].append(bi)
        domain.clear()
        gone = runner.invoke(app, ["destroy", "--yes"])
        assert gone.exit_code == 0, gone.stderr
        assert [(m, p) for m, p, _ in domain.writes()] == [
            ("PATCH", "rolesmapping/opensearch_dashboards_user"),
            ("PATCH", "rolesmapping/opensearch_dashboards_read_only"),
            ("DELETE", "rolesmapping/ddbsearch-ddbsearch-indexer"),
            ("DELETE", "rolesmapping/ddbsearch-ddbsearch-operator"),
            ("DELETE", "rolesmapping/ddbsearch-ddbsearch-reader"),
            ("DELETE", "roles/ddbsearch-ddbsearch-indexer"),
            ("DELETE", "roles/ddbsearch-ddbsearch-operator"),
            ("DELETE", "roles/ddbsearch-ddbsearch-reader"),
        ]
        assert domain.ours() == {
            "rolesmapping/opensearch_dashboards_user": {
                "backend_roles": [bi], "users": [], "hosts": [], "and_backend_roles": []
            },
            "rolesmapping/opensearch_dashboards_read_only": {
                "backend_roles": [], "users": [], "hosts": [], "and_backend_roles": []
            },
        }  # fmt: skip
    # Removed before the domain goes: destroy ran after the DELETEs.
    assert commands(fake_terraform())[-1] == "destroy"


@pytest.mark.integration
def test_fgac_on_an_existing_domain_maps_the_indexer_and_destroy_keeps_the_domain(
    fake_terraform: Calls, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.recording import recording_domain

    with recording_domain() as domain:
        monkeypatch.setenv("FAKE_TERRAFORM_DOMAIN_ENDPOINT", domain.url)
        result = runner.invoke(
            app,
            [
                "deploy", "--yes", "--region", "us-east-1", "--domain-arn", DOMAIN_ARN,
                "--var", "fine_grained_access_control_enabled=true",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert ("PUT", "rolesmapping/ddbsearch-ddbsearch-indexer") in [
            (m, p) for m, p, _ in domain.writes()
        ]
        assert "access policy" not in result.stderr  # FGAC grants it: no statement needed
        gone = runner.invoke(app, ["destroy", "--yes"])
        assert gone.exit_code == 0, gone.stderr
        # Only the (now empty) built-in Dashboards mapping deploy created stays.
        assert domain.ours() == {
            "rolesmapping/opensearch_dashboards_user": {
                "backend_roles": [], "users": [], "hosts": [], "and_backend_roles": []
            }
        }  # fmt: skip


@pytest.mark.integration
def test_fgac_without_dashboards_roles_on_the_domain_deploys_and_says_so(
    fake_terraform: Calls, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.recording import recording_domain

    with recording_domain() as domain:
        domain.security.clear()  # a domain without the built-in Dashboards roles
        monkeypatch.setenv("FAKE_TERRAFORM_DOMAIN_ENDPOINT", domain.url)
        result = runner.invoke(
            app,
            [
                "deploy", "--yes", "--region", "us-east-1",
                "--var", "fine_grained_access_control_enabled=true",
            ],
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "the domain has no opensearch_dashboards_user (or kibana_user) role" in " ".join(
        result.stderr.split()
    )
    assert "rolesmapping/ddbsearch-ddbsearch-operator" in domain.security


@pytest.mark.integration
def test_fgac_refused_by_the_domain_names_the_master_user(
    fake_terraform: Calls, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            body = b'{"error":{"type":"security_exception"},"status":403}'
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(
            "FAKE_TERRAFORM_DOMAIN_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}"
        )
        result = runner.invoke(
            app,
            [
                "deploy", "--yes", "--region", "us-east-1",
                "--var", "fine_grained_access_control_enabled=true",
                "--var", f"master_user_arn={OPS_ROLE}",
            ],
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == ExitCode.AUTH, result.stderr
    assert "FGAC master user" in result.stderr
    assert OPS_ROLE in result.stderr


# --------------------------------------------------------------------------- stack files


@pytest.mark.integration
def test_every_stack_file_is_owner_only(fake_terraform: Calls, aws: Any) -> None:
    os.umask(0o022)  # a usual umask: ddbsearch must not rely on the caller's
    assert runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1"]).exit_code == 0
    assert runner.invoke(app, ["deploy", "--region", "us-east-1", "--plan-only"]).exit_code == 0
    root = state_home()
    seen = {"terraform.log", "target.json", "terraform.tfvars.json", "terraform.tfstate"}
    found: set[str] = set()
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            assert mode == 0o700, (path, oct(mode))
        else:
            assert mode & 0o077 == 0, (path, oct(mode))
            found.add(path.name)
    assert seen <= found


@pytest.mark.integration
def test_a_redeploy_keeps_the_table_the_stack_created_instead_of_adopting_it(
    fake_terraform: Calls, aws: Any
) -> None:
    table = unique("Created")
    first = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1", "--table", table])
    assert first.exit_code == 0, first.stderr
    assert tfvars()["table_name"] == table
    create_table(aws, table, stream="NEW_AND_OLD_IMAGES")  # what the real apply made
    again = runner.invoke(app, ["deploy", "--yes", "--region", "us-east-1", "--table", table])
    assert again.exit_code == 0, again.stderr
    assert "adopting" not in again.stderr
    assert tfvars()["table_name"] == table
    assert "existing_table_name" not in tfvars()  # adopting would plan the table's deletion
    assert "Terraform plan: no changes" in again.stderr


@pytest.mark.integration
def test_a_new_image_stream_is_adopted_as_it_is_with_one_line_about_old_images(
    fake_terraform: Calls, aws: Any
) -> None:
    table = unique("NewImage")
    create_table(aws, table, stream="NEW_IMAGE")
    result = runner.invoke(app, ["deploy", "--region", "us-east-1", "--table", table], input="y\n")
    assert result.exit_code == 0, result.stderr
    assert "Turn on" not in result.stderr
    assert stream_of(aws, table) == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    lines = [line for line in result.stderr.splitlines() if "NEW_IMAGE" in line]
    assert len(lines) == 1
    assert "version attribute" in lines[0]
    assert "NEW_AND_OLD_IMAGES" in lines[0]
    assert tfvars()["existing_table_name"] == table
