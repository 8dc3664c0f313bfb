"""Fine-grained access control: ddbsearch's OpenSearch roles and role mappings.

With FGAC on, IAM lets a principal reach the domain and the security plugin then
decides what it may do; nobody but the master user may do anything until mapped
to a role. Terraform cannot create those roles (they live inside the domain), so
deploy applies them after the domain exists, signed as the master user (the
operator running deploy), through the security REST API; destroy removes them.

Two roles per stack, each on the stack's index and its generations only:

* ``ddbsearch-<stack>-indexer`` for the indexer's IAM role (backend role): what
  ``core/`` sends: ``_bulk`` with index/delete actions, create the index or a
  generation, put its mapping, read and swap aliases, its index template.
* ``ddbsearch-<stack>-operator`` for the operators (IAM roles as backend roles,
  IAM users as users): read, plus the writes backfill, redrive and verify make.

Action names follow the security plugin's permissions page: a ``_bulk`` needs the
cluster-level ``indices:data/write/bulk`` and, on every index its actions name,
``indices:data/write/bulk*`` plus ``indices:data/write/index`` /
``indices:data/write/delete``; composable index templates are cluster actions
``indices:admin/index_template/get|put``.

Every change is a ``PUT`` of the whole role or mapping (idempotent); what already
matches is left alone, so re-running deploy sends no writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ddbsearch.errors import AuthError, InfraError

API = "/_plugins/_security/api"
_USER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:user/")

INDEXER_CLUSTER = (
    "indices:data/write/bulk",
    "indices:admin/index_template/get",
    "indices:admin/index_template/put",
)
INDEXER_INDEX = (
    "indices:data/write/bulk*",
    "indices:data/write/index",
    "indices:data/write/delete",
    "indices:admin/create",
    "indices:admin/get",
    "indices:admin/exists",
    "indices:admin/mapping/put",
    "indices:admin/aliases",
    "indices:admin/aliases/get",
)
OPERATOR_CLUSTER = (
    "cluster_composite_ops_ro",
    "cluster:monitor/health",
    "indices:data/write/bulk",
    "indices:admin/index_template/get",
    "indices:admin/index_template/put",
)
OPERATOR_INDEX = (
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
)


class Http(Protocol):
    """The part of :class:`~ddbsearch.core.transport.SearchTransport` used here."""

    def json(self, method: str, path: str, payload: Any = None) -> Any: ...


@dataclass(frozen=True)
class SecurityRole:
    name: str
    role: Mapping[str, Any]  # body of PUT roles/<name>
    mapping: Mapping[str, Any]  # body of PUT rolesmapping/<name>


def role_names(stack: str) -> tuple[str, str]:
    return f"ddbsearch-{stack}-indexer", f"ddbsearch-{stack}-operator"


def stack_roles(
    *,
    stack: str,
    index: str,
    indexer_role_arn: str,
    operator_arns: Sequence[str],
    loader_role_arns: Sequence[str] = (),
) -> tuple[SecurityRole, SecurityRole]:
    """The two roles and mappings of stack ``stack`` (bodies exactly as sent).

    ``loader_role_arns``: the export loader's role, which runs the indexer's code and
    is mapped to the indexer's role.
    """
    patterns = [index, f"{index}-*"]
    indexer_name, operator_name = role_names(stack)
    users = sorted({a for a in operator_arns if _USER_ARN.match(a)})
    roles = sorted({a for a in operator_arns if a not in users})
    indexer = SecurityRole(
        indexer_name,
        {
            "description": f"ddbsearch {stack}: the indexer writes the stack's index",
            "cluster_permissions": list(INDEXER_CLUSTER),
            "index_permissions": [
                {"index_patterns": patterns, "allowed_actions": list(INDEXER_INDEX)}
            ],
        },
        {"backend_roles": [indexer_role_arn, *loader_role_arns], "users": []},
    )
    operator = SecurityRole(
        operator_name,
        {
            "description": f"ddbsearch {stack}: operators search, backfill, redrive",
            "cluster_permissions": list(OPERATOR_CLUSTER),
            "index_permissions": [
                {"index_patterns": patterns, "allowed_actions": list(OPERATOR_INDEX)}
            ],
        },
        {"backend_roles": roles, "users": users},
    )
    return indexer, operator


def _current(http: Http, path: str, name: str) -> Mapping[str, Any] | None:
    resp = http.json("GET", f"{API}/{path}/{name}")
    if resp.status == 404:
        return None
    _check(resp, f"GET {path}/{name}")
    body = resp.json()
    found = body.get(name) if isinstance(body, dict) else None
    return found if isinstance(found, dict) else None


def _same(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    if current is None:
        return False
    for key, value in wanted.items():
        have = current.get(key, [] if isinstance(value, list) else None)
        if key == "index_permissions" and isinstance(have, list):
            # The plugin adds empty dls/fls/masked_fields to each entry.
            have = [
                {k: entry.get(k) for k in ("index_patterns", "allowed_actions")}
                for entry in have
                if isinstance(entry, dict)
            ]
        if isinstance(value, list) and isinstance(have, list) and key != "index_permissions":
            if sorted(map(json.dumps, value)) != sorted(map(json.dumps, have)):
                return False
        elif have != value:
            return False
    return True


def _check(resp: Any, what: str) -> None:
    if resp.status in (401, 403):
        raise AuthError(
            f"the security plugin refused {what} ({resp.status})",
            hint="deploy must run as the domain's FGAC master user (master_user_arn)",
        )
    if resp.status >= 300:
        text = resp.body[:200].decode("utf-8", "replace") if resp.body else ""
        raise InfraError(f"{what} failed ({resp.status}): {text}")


def apply_roles(http: Http, roles: Sequence[SecurityRole]) -> list[str]:
    """Create or update each role and its mapping; returns what was written."""
    changed: list[str] = []
    for role in roles:
        for path, body in (("roles", role.role), ("rolesmapping", role.mapping)):
            if _same(_current(http, path, role.name), body):
                continue
            resp = http.json("PUT", f"{API}/{path}/{role.name}", dict(body))
            _check(resp, f"PUT {path}/{role.name}")
            changed.append(f"{path}/{role.name}")
    return changed


def remove_roles(http: Http, stack: str) -> list[str]:
    """Delete the stack's mappings, then its roles; what is already gone is fine."""
    removed: list[str] = []
    for path in ("rolesmapping", "roles"):
        for name in role_names(stack):
            resp = http.json("DELETE", f"{API}/{path}/{name}")
            if resp.status == 404:
                continue
            _check(resp, f"DELETE {path}/{name}")
            removed.append(f"{path}/{name}")
    return removed
