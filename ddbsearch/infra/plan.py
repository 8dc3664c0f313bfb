"""What a saved Terraform plan will do, from ``terraform show -json <plan>``.

Only ``resource_changes[].change.actions`` is read: ``["create"]``, ``["update"]``,
``["delete"]``, ``["delete", "create"]`` / ``["create", "delete"]`` (a replacement),
``["no-op"]`` and ``["read"]`` (data sources). A replacement or deletion of the
OpenSearch domain or the DynamoDB table loses data (the index, the items), so deploy
calls it out and refuses it unless the operator allows it explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Resource types whose replacement or deletion loses data.
PRECIOUS_TYPES = frozenset(
    {"aws_opensearch_domain", "aws_elasticsearch_domain", "aws_dynamodb_table"}
)


@dataclass(frozen=True)
class ResourceChange:
    address: str
    type: str
    action: str  # create, update, replace, delete

    @property
    def precious(self) -> bool:
        """Replacing or deleting this resource loses the index or the items."""
        return self.type in PRECIOUS_TYPES and self.action in ("replace", "delete")


@dataclass(frozen=True)
class PlanSummary:
    changes: tuple[ResourceChange, ...] = ()
    outputs_changed: tuple[str, ...] = field(default=())

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def pending(self) -> bool:
        """Anything for apply to do (resources or outputs)."""
        return bool(self.changes or self.outputs_changed)

    @property
    def dangerous(self) -> tuple[ResourceChange, ...]:
        return tuple(c for c in self.changes if c.precious)

    def headline(self) -> str:
        if not self.changes:
            return "no changes" + (" (outputs only)" if self.outputs_changed else "")
        return (
            f"{self.count('create')} to add, {self.count('update')} to change, "
            f"{self.count('replace')} to replace, {self.count('delete')} to destroy"
        )


def _action(actions: list[str]) -> str | None:
    if actions in (["delete", "create"], ["create", "delete"]):
        return "replace"
    if actions in (["create"], ["update"], ["delete"]):
        return actions[0]
    return None  # no-op, read


def summarize(plan_json: Mapping[str, Any]) -> PlanSummary:
    changes: list[ResourceChange] = []
    for rc in plan_json.get("resource_changes") or []:
        if rc.get("mode") == "data":
            continue
        action = _action(list((rc.get("change") or {}).get("actions") or []))
        if action is not None:
            changes.append(ResourceChange(str(rc["address"]), str(rc.get("type", "")), action))
    outputs = tuple(
        sorted(
            name
            for name, oc in (plan_json.get("output_changes") or {}).items()
            if (oc or {}).get("actions") not in (["no-op"], None)
        )
    )
    return PlanSummary(tuple(changes), outputs)
