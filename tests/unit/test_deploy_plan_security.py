"""The plan summary deploy shows, and the FGAC role bodies docs/aws.md prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ddbsearch.infra.plan import summarize
from ddbsearch.infra.security import stack_roles

DOCS = Path(__file__).resolve().parents[2] / "docs" / "aws.md"


def _rc(address: str, kind: str, actions: list[str], mode: str = "managed") -> dict[str, object]:
    return {"address": address, "type": kind, "mode": mode, "change": {"actions": actions}}


def test_summary_counts_each_action_and_flags_only_data_losing_changes() -> None:
    plan = summarize(
        {
            "resource_changes": [
                _rc("module.search[0].aws_opensearch_domain.this", "aws_opensearch_domain",
                    ["delete", "create"]),
                _rc("module.table.aws_dynamodb_table.this[0]", "aws_dynamodb_table", ["update"]),
                _rc("module.indexer.aws_sqs_queue.dlq", "aws_sqs_queue", ["create", "delete"]),
                _rc("module.indexer.aws_lambda_function.this", "aws_lambda_function", ["create"]),
                _rc("module.indexer.aws_iam_role.this", "aws_iam_role", ["delete"]),
                _rc("module.indexer.aws_cloudwatch_log_group.function", "x", ["no-op"]),
                _rc("data.aws_opensearch_domain.existing[0]", "aws_opensearch_domain", ["read"],
                    mode="data"),
            ],
            "output_changes": {"table_name": {"actions": ["no-op"]}},
        }
    )  # fmt: skip
    assert plan.headline() == "1 to add, 1 to change, 2 to replace, 1 to destroy"
    assert [c.address for c in plan.dangerous] == ["module.search[0].aws_opensearch_domain.this"]
    assert plan.pending
    # Updating the table in place loses nothing; deleting it does.
    table_gone = summarize({"resource_changes": [_rc("t", "aws_dynamodb_table", ["delete"])]})
    assert [c.action for c in table_gone.dangerous] == ["delete"]


def test_nothing_to_do_is_not_pending_but_an_output_change_is() -> None:
    settled = summarize({"resource_changes": [_rc("a", "aws_sqs_queue", ["no-op"])]})
    assert (settled.pending, settled.headline()) == (False, "no changes")
    outputs = summarize({"output_changes": {"dlq_url": {"actions": ["update"]}}})
    assert (outputs.pending, outputs.headline()) == (True, "no changes (outputs only)")


def test_docs_show_the_role_bodies_deploy_sends() -> None:
    text = DOCS.read_text()
    roles = stack_roles(
        stack="<stack>", index="<index>", indexer_role_arn="<indexer_role_arn>", operator_arns=()
    )
    for role in roles:
        match = re.search(
            rf"PUT _plugins/_security/api/roles/{re.escape(role.name)}\n(\{{.*?\n\}})\n",
            text,
            flags=re.S,
        )
        assert match, f"docs/aws.md does not show {role.name}"
        assert json.loads(match.group(1)) == role.role


def test_operators_split_into_backend_roles_and_users() -> None:
    _, operator, _ = stack_roles(
        stack="s",
        index="i",
        indexer_role_arn="arn:aws:iam::123456789012:role/s-indexer",
        operator_arns=(
            "arn:aws:iam::123456789012:user/bob",
            "arn:aws:iam::123456789012:role/team/alice",
            "arn:aws:iam::123456789012:role/team/alice",
        ),
    )
    assert operator.mapping == {
        "backend_roles": ["arn:aws:iam::123456789012:role/team/alice"],
        "users": ["arn:aws:iam::123456789012:user/bob"],
    }
