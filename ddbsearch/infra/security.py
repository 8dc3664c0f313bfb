"""Fine-grained access control: ddbsearch's OpenSearch roles and role mappings.

With FGAC on, IAM lets a principal reach the domain and the security plugin then
decides what it may do; nobody but the master user may do anything until mapped
to a role. Terraform cannot create those roles (they live inside the domain), so
deploy applies them after the domain exists, signed as the master user (the
operator running deploy), through the security REST API; destroy removes them.

Three roles per stack, each on the stack's index and its generations only:

* ``ddbsearch-<stack>-indexer`` for the indexer's IAM role (backend role): what
  ``core/`` sends: ``_bulk`` with index/delete actions, create the index or a
  generation, put its mapping, read and swap aliases, its index template.
* ``ddbsearch-<stack>-operator`` for the operators (``operator_arns``; IAM roles as
  backend roles, IAM users as users): read, plus the writes backfill, reindex,
  redrive and ``verify --repair`` make.
* ``ddbsearch-<stack>-reader`` for read-only operators (``reader_arns``): search,
  count, status, verify and explain; no write of any kind.

Nothing in them reaches another index, the cluster's settings or the security
configuration (:data:`FORBIDDEN` lists what no role of ours may carry).

Dashboards needs more than the stack's indices: the built-in role
``opensearch_dashboards_user`` (its tenant indices ``.kibana*`` /
``.opensearch_dashboards*``, ``cluster_composite_ops``), plus, for read-only
operators, the marker role ``opensearch_dashboards_read_only`` (Dashboards in read-only
mode). Those mappings are shared with whoever else uses the domain, so they are
never replaced: deploy adds the missing principals with a JSON patch
(``add /backend_roles/-``), records what it added (:class:`DashboardsRecord`, under
the stack directory), and later removes only what it recorded, with a ``test``
before each ``remove`` so a concurrent edit fails the patch instead of removing
someone else's entry; a principal another ddbsearch stack on the domain still maps
stays. Domains created before service software R20211203 call them
``kibana_user`` / ``kibana_read_only``; the names found on the domain are used.

Action names follow the security plugin's permissions page: a ``_bulk`` needs the
cluster-level ``indices:data/write/bulk`` and, on every index its actions name,
``indices:data/write/bulk*`` plus ``indices:data/write/index`` /
``indices:data/write/delete``; composable index templates are cluster actions
``indices:admin/index_template/get|put``; scroll and clear-scroll are cluster
actions; point-in-time create/delete are index actions (in ``read``).

Every role change is a ``PUT`` of the whole role or mapping (idempotent); what
already matches is left alone, so re-running deploy sends no writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ddbsearch.errors import AuthError, InfraError
from ddbsearch.files import read_json, write_json

API = "/_plugins/_security/api"
_USER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:user/")
MEMBER_KEYS = ("backend_roles", "users")

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
# Reading: search, count, _mget, point in time (index actions in "read"), scroll and
# clear-scroll (cluster actions), the generations (GET index), mappings, aliases.
READER_CLUSTER = (
    "cluster_composite_ops_ro",
    "indices:data/read/scroll/clear",
)
READER_INDEX = (
    "read",
    "indices:admin/get",
    "indices:admin/mappings/get",
    "indices:admin/aliases/get",
)
OPERATOR_CLUSTER = (
    "cluster_composite_ops_ro",
    "indices:data/read/scroll/clear",
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
# What no role of ours may carry: wildcards and groups that reach beyond the stack's
# indices, cluster settings, snapshots, and the security configuration itself.
FORBIDDEN = re.compile(
    r"^(\*|unlimited|cluster_all|cluster_manage.*|manage.*|indices_all|indices:\*"
    r"|cluster:\*|cluster:admin/.*|restapi:.*|security:.*|.*opendistro_security.*"
    r"|.*plugins/_security.*|cluster_composite_ops)$"
)

# The built-in Dashboards roles (current name, name on domains created before
# service software R20211203).
DASHBOARDS_USER = ("opensearch_dashboards_user", "kibana_user")
DASHBOARDS_READ_ONLY = ("opensearch_dashboards_read_only", "kibana_read_only")
_BUILTINS = {names[0]: names for names in (DASHBOARDS_USER, DASHBOARDS_READ_ONLY)}
_MISSING_BUILTIN = {
    DASHBOARDS_USER[0]: (
        "the domain has no opensearch_dashboards_user (or kibana_user) role, so nobody was "
        "mapped for Dashboards; as the master user, map the operators to the role "
        "Dashboards users need there"
    ),
    DASHBOARDS_READ_ONLY[0]: (
        "the domain has no opensearch_dashboards_read_only (or kibana_read_only) role, so "
        "readers see Dashboards in read-write mode (they can edit saved objects, "
        "not the stack's index)"
    ),
}


class Http(Protocol):
    """The part of :class:`~ddbsearch.core.transport.SearchTransport` used here."""

    def json(self, method: str, path: str, payload: Any = None) -> Any: ...


@dataclass(frozen=True)
class SecurityRole:
    name: str
    role: Mapping[str, Any]  # body of PUT roles/<name>
    mapping: Mapping[str, Any]  # body of PUT rolesmapping/<name>


@dataclass(frozen=True)
class Principals:
    """IAM roles (mapped as backend roles) and IAM users (mapped as users)."""

    backend_roles: tuple[str, ...] = ()
    users: tuple[str, ...] = ()

    @classmethod
    def of(cls, arns: Iterable[str]) -> Principals:
        unique = sorted(set(arns))
        users = tuple(a for a in unique if _USER_ARN.match(a))
        return cls(tuple(a for a in unique if a not in users), users)

    def get(self, key: str) -> tuple[str, ...]:
        return self.backend_roles if key == "backend_roles" else self.users

    def as_mapping(self) -> dict[str, list[str]]:
        return {"backend_roles": list(self.backend_roles), "users": list(self.users)}

    def __bool__(self) -> bool:
        return bool(self.backend_roles or self.users)


def role_names(stack: str) -> tuple[str, str, str]:
    """The stack's roles (and mappings): indexer, operator, reader."""
    return (
        f"ddbsearch-{stack}-indexer",
        f"ddbsearch-{stack}-operator",
        f"ddbsearch-{stack}-reader",
    )


def _role(
    description: str, cluster: Sequence[str], index: Sequence[str], patterns: list[str]
) -> dict[str, Any]:
    return {
        "description": description,
        "cluster_permissions": list(cluster),
        "index_permissions": [{"index_patterns": patterns, "allowed_actions": list(index)}],
    }


def stack_roles(
    *,
    stack: str,
    index: str,
    indexer_role_arn: str,
    operator_arns: Sequence[str],
    reader_arns: Sequence[str] = (),
    loader_role_arns: Sequence[str] = (),
) -> tuple[SecurityRole, SecurityRole, SecurityRole]:
    """The three roles and mappings of stack ``stack`` (bodies exactly as sent).

    ``loader_role_arns``: the export loader's role, which runs the indexer's code and
    is mapped to the indexer's role. A principal in both ``operator_arns`` and
    ``reader_arns`` is an operator (the reader role adds nothing to it).
    """
    patterns = [index, f"{index}-*"]
    indexer_name, operator_name, reader_name = role_names(stack)
    indexer = SecurityRole(
        indexer_name,
        _role(
            f"ddbsearch {stack}: the indexer writes the stack's index",
            INDEXER_CLUSTER,
            INDEXER_INDEX,
            patterns,
        ),
        {"backend_roles": [indexer_role_arn, *loader_role_arns], "users": []},
    )
    operator = SecurityRole(
        operator_name,
        _role(
            f"ddbsearch {stack}: operators search, backfill, reindex, repair, redrive",
            OPERATOR_CLUSTER,
            OPERATOR_INDEX,
            patterns,
        ),
        Principals.of(operator_arns).as_mapping(),
    )
    reader = SecurityRole(
        reader_name,
        _role(
            f"ddbsearch {stack}: read-only operators search, status, verify, explain",
            READER_CLUSTER,
            READER_INDEX,
            patterns,
        ),
        Principals.of(set(reader_arns) - set(operator_arns)).as_mapping(),
    )
    return indexer, operator, reader


def dashboards_grants(
    operator_arns: Sequence[str], reader_arns: Sequence[str] = ()
) -> dict[str, Principals]:
    """Who deploy adds to which built-in Dashboards role mapping (by current role name).

    Operators and readers need ``opensearch_dashboards_user``; readers (who are not
    operators) also get ``opensearch_dashboards_read_only``, which puts Dashboards in
    read-only mode for them.
    """
    readers = set(reader_arns) - set(operator_arns)
    return {
        DASHBOARDS_USER[0]: Principals.of([*operator_arns, *readers]),
        DASHBOARDS_READ_ONLY[0]: Principals.of(readers),
    }


# --------------------------------------------------------------------------- requests


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


# --------------------------------------------------------------------------- Dashboards


@dataclass
class DashboardsRecord:
    """What deploy added to built-in Dashboards role mappings (and may remove again).

    Kept in ``<stack dir>/fgac-dashboards.json``; only this module reads or writes it.
    Keys are the built-in roles' current names.
    """

    added: dict[str, Principals] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> DashboardsRecord:
        data = read_json(path) if path.is_file() else None
        added: dict[str, Principals] = {}
        for role, members in ((data or {}).get("added") or {}).items():
            if role in _BUILTINS and isinstance(members, dict):
                added[role] = Principals(
                    tuple(str(a) for a in members.get("backend_roles") or ()),
                    tuple(str(a) for a in members.get("users") or ()),
                )
        return cls(added)

    def write(self, path: Path) -> None:
        kept = {role: p.as_mapping() for role, p in sorted(self.added.items()) if p}
        if kept:
            write_json(path, {"added": kept})
        else:
            path.unlink(missing_ok=True)


@dataclass
class DashboardsResult:
    changed: list[str] = field(default_factory=list)  # "rolesmapping/<builtin>" patched
    warnings: list[str] = field(default_factory=list)
    record: DashboardsRecord = field(default_factory=DashboardsRecord)


def _builtin_name(http: Http, role: str) -> str | None:
    """The name this domain gives the built-in ``role`` (None: it has neither)."""
    for name in _BUILTINS[role]:
        if _current(http, "roles", name) is not None:
            return name
    return None


def _mapped_by_other_stacks(http: Http, stack: str) -> set[str]:
    """Principals that another ddbsearch stack's operator or reader mapping names."""
    resp = http.json("GET", f"{API}/rolesmapping")
    _check(resp, "GET rolesmapping")
    body = resp.json()
    ours = set(role_names(stack))
    found: set[str] = set()
    for name, mapping in body.items() if isinstance(body, dict) else ():
        if name in ours or not re.fullmatch(r"ddbsearch-.+-(operator|reader)", name):
            continue
        if isinstance(mapping, dict):
            for key in MEMBER_KEYS:
                found.update(str(a) for a in mapping.get(key) or ())
    return found


def apply_dashboards(
    http: Http,
    stack: str,
    wanted: Mapping[str, Principals],
    record: DashboardsRecord,
) -> DashboardsResult:
    """Bring the built-in Dashboards mappings to ``wanted``, touching only our entries.

    Adds what ``wanted`` lacks there; removes what ``record`` says deploy added and is
    no longer wanted (``wanted={}`` removes all of it: destroy), unless another
    ddbsearch stack on the domain still maps that principal. Returns the new record.
    """
    result = DashboardsResult()
    elsewhere: set[str] | None = None
    for role in _BUILTINS:
        want = wanted.get(role, Principals())
        ours = record.added.get(role, Principals())
        if not want and not ours:
            continue
        name = _builtin_name(http, role)
        if name is None:
            if want:
                result.warnings.append(_MISSING_BUILTIN[role])
            continue
        current = _current(http, "rolesmapping", name)
        ops: list[dict[str, Any]] = []
        kept: dict[str, list[str]] = {}
        for key in MEMBER_KEYS:
            have = [str(a) for a in (current or {}).get(key) or ()]
            add = [a for a in want.get(key) if a not in have]
            stale = [a for a in ours.get(key) if a not in want.get(key) and a in have]
            if stale and elsewhere is None:
                elsewhere = _mapped_by_other_stacks(http, stack)
            drop = [a for a in stale if a not in (elsewhere or set())]
            for position in sorted((have.index(a) for a in drop), reverse=True):
                # The test makes the patch fail, rather than remove another entry,
                # if the list changed since it was read.
                ops.append({"op": "test", "path": f"/{key}/{position}", "value": have[position]})
                ops.append({"op": "remove", "path": f"/{key}/{position}"})
            ops.extend({"op": "add", "path": f"/{key}/-", "value": a} for a in add)
            kept[key] = [a for a in ours.get(key) if a in want.get(key)] + add
        result.record.added[role] = Principals(
            tuple(sorted(set(kept["backend_roles"]))), tuple(sorted(set(kept["users"])))
        )
        if not ops:
            continue
        if current is None:
            # No mapping yet: nothing of anyone else's to keep.
            resp = http.json("PUT", f"{API}/rolesmapping/{name}", want.as_mapping())
            _check(resp, f"PUT rolesmapping/{name}")
        else:
            resp = http.json("PATCH", f"{API}/rolesmapping/{name}", ops)
            if resp.status in (400, 409):
                raise InfraError(
                    f"the role mapping {name} changed while deploy was updating it",
                    hint="run the command again",
                )
            _check(resp, f"PATCH rolesmapping/{name}")
        result.changed.append(f"rolesmapping/{name}")
    return result
