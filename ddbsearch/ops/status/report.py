"""The status report: named checks, each ok/warn/fail/unknown, and the verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ddbsearch.errors import DdbsearchError
from ddbsearch.targets import Target

State = Literal["ok", "warn", "fail", "unknown"]


@dataclass
class Check:
    name: str
    state: State
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class StatusReport:
    target: Target
    checks: list[Check] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not any(c.state == "fail" for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.summary}" for c in self.checks if c.state == "fail"]

    def get(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "reasons": self.reasons,
            "target": {
                "kind": self.target.kind,
                "name": self.target.name,
                "region": self.target.region,
                "table": self.target.table,
                "index": self.target.index,
                "search_endpoint": self.target.search_endpoint,
                # The local stack's DynamoDB/AWS endpoint (null on AWS), as deploy --json names it.
                "aws_endpoint": self.target.aws_endpoint,
            },
            "checks": [asdict(c) for c in self.checks],
        }


def guard(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except DdbsearchError as exc:
        return Check(name, "fail", str(exc))
