"""FGAC: ddbsearch's role bodies, and the built-in Dashboards mappings it shares with others.

Requests go through the real transport to the recording stand-in of the security
REST API (tests/cli/recording.py), which applies JSON patches like the plugin.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddbsearch.core.transport import SearchTransport
from ddbsearch.errors import InfraError
from ddbsearch.infra import security
from ddbsearch.infra.security import (
    FORBIDDEN,
    DashboardsRecord,
    Principals,
    apply_dashboards,
    apply_roles,
    dashboards_grants,
    remove_roles,
    stack_roles,
)
from tests.cli.recording import RecordingDomain, recording_domain

ACCOUNT = "arn:aws:iam::123456789012"
INDEXER = f"{ACCOUNT}:role/s-indexer"
OPS_ROLE = f"{ACCOUNT}:role/team/ops"
OPS_USER = f"{ACCOUNT}:user/alice"
READER = f"{ACCOUNT}:role/analysts/carol"
READER_USER = f"{ACCOUNT}:user/dave"
# Mapped to Dashboards by someone else: never removed by ddbsearch.
OTHERS = {"backend_roles": [f"{ACCOUNT}:role/bi"], "users": [f"{ACCOUNT}:user/zoe"]}
USER_MAP = "rolesmapping/opensearch_dashboards_user"
READ_ONLY_MAP = "rolesmapping/opensearch_dashboards_read_only"


@pytest.fixture
def domain() -> Iterator[RecordingDomain]:
    with recording_domain() as recorded:
        yield recorded


@pytest.fixture
def http(domain: RecordingDomain) -> SearchTransport:
    return SearchTransport(domain.url, sigv4=False)


def _deploy(
    http: SearchTransport,
    stack: str,
    operators: list[str],
    readers: list[str],
    record_path: Path,
) -> list[str]:
    """What deploy's apply_security does for one stack (roles, then Dashboards)."""
    roles = stack_roles(
        stack=stack,
        index=f"{stack}-index",
        indexer_role_arn=INDEXER,
        operator_arns=operators,
        reader_arns=readers,
    )
    changed = apply_roles(http, roles)
    result = apply_dashboards(
        http, stack, dashboards_grants(operators, readers), DashboardsRecord.read(record_path)
    )
    result.record.write(record_path)
    assert result.warnings == []
    return changed + result.changed


def _destroy(http: SearchTransport, stack: str, record_path: Path) -> None:
    left = apply_dashboards(http, stack, {}, DashboardsRecord.read(record_path))
    left.record.write(record_path)
    remove_roles(http, stack)


# --------------------------------------------------------------------------- bodies


def test_three_roles_on_the_stack_index_only_readers_write_nothing() -> None:
    indexer, operator, reader = stack_roles(
        stack="s",
        index="orders",
        indexer_role_arn=INDEXER,
        operator_arns=[OPS_ROLE, OPS_USER],
        reader_arns=[READER, READER_USER, OPS_ROLE],  # an operator stays an operator
    )
    assert [r.name for r in (indexer, operator, reader)] == [
        "ddbsearch-s-indexer",
        "ddbsearch-s-operator",
        "ddbsearch-s-reader",
    ]
    assert reader.role == {
        "description": "ddbsearch s: read-only operators search, status, verify, explain",
        "cluster_permissions": ["cluster_composite_ops_ro", "indices:data/read/scroll/clear"],
        "index_permissions": [
            {
                "index_patterns": ["orders", "orders-*"],
                "allowed_actions": [
                    "read",
                    "indices:admin/get",
                    "indices:admin/mappings/get",
                    "indices:admin/aliases/get",
                ],
            }
        ],
    }
    assert reader.mapping == {"backend_roles": [READER], "users": [READER_USER]}
    assert operator.mapping == {"backend_roles": [OPS_ROLE], "users": [OPS_USER]}
    for role in (indexer, operator, reader):
        # Nothing outside the stack's index and generations...
        assert [p["index_patterns"] for p in role.role["index_permissions"]] == [
            ["orders", "orders-*"]
        ]
        # ...and nothing that reaches the cluster's settings or the security configuration.
        actions = [*role.role["cluster_permissions"]] + [
            a for p in role.role["index_permissions"] for a in p["allowed_actions"]
        ]
        assert not [a for a in actions if FORBIDDEN.match(a)], role.name
    # The reader's every action is a read.
    reader_actions = reader.role["cluster_permissions"] + list(security.READER_INDEX)
    assert not [a for a in reader_actions if "write" in a or a.endswith(("create", "delete"))]


def test_forbidden_catches_what_would_reach_beyond_the_stack() -> None:
    for action in (
        "*",
        "cluster_all",
        "indices_all",
        "cluster:admin/opendistro_security/config/update",
        "restapi:admin/rolesmapping",
        "cluster:admin/settings/update",
        "manage",
        "cluster_composite_ops",
        "cluster_manage_index_templates",
    ):
        assert FORBIDDEN.match(action), action


def test_dashboards_grants_operators_as_users_and_readers_read_only() -> None:
    grants = dashboards_grants([OPS_ROLE, OPS_USER], [READER, OPS_ROLE])
    assert grants == {
        "opensearch_dashboards_user": Principals((READER, OPS_ROLE), (OPS_USER,)),
        "opensearch_dashboards_read_only": Principals((READER,), ()),
    }


# --------------------------------------------------------------------------- Dashboards


def test_deploy_adds_to_the_shared_mappings_idempotently_and_destroy_removes_only_ours(
    domain: RecordingDomain, http: SearchTransport, tmp_path: Path
) -> None:
    domain.security[USER_MAP] = json.loads(json.dumps(OTHERS))
    record = tmp_path / "fgac-dashboards.json"
    changed = _deploy(http, "s", [OPS_ROLE, OPS_USER], [READER], record)
    assert changed == [
        "roles/ddbsearch-s-indexer",
        "rolesmapping/ddbsearch-s-indexer",
        "roles/ddbsearch-s-operator",
        "rolesmapping/ddbsearch-s-operator",
        "roles/ddbsearch-s-reader",
        "rolesmapping/ddbsearch-s-reader",
        USER_MAP,
        READ_ONLY_MAP,
    ]
    writes = [w for w in domain.writes() if "dashboards" in w[1]]
    # The shared mapping is patched (appended to), never replaced; the read-only one did
    # not exist, so it is created with ours only.
    assert writes == [
        (
            "PATCH",
            USER_MAP,
            [
                {"op": "add", "path": "/backend_roles/-", "value": READER},
                {"op": "add", "path": "/backend_roles/-", "value": OPS_ROLE},
                {"op": "add", "path": "/users/-", "value": OPS_USER},
            ],
        ),
        ("PUT", READ_ONLY_MAP, {"backend_roles": [READER], "users": []}),
    ]
    mapped = domain.security[USER_MAP]
    assert mapped["backend_roles"] == [*OTHERS["backend_roles"], READER, OPS_ROLE]
    assert domain.security[USER_MAP]["users"] == [*OTHERS["users"], OPS_USER]
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert json.loads(record.read_text()) == {
        "added": {
            "opensearch_dashboards_read_only": {"backend_roles": [READER], "users": []},
            "opensearch_dashboards_user": {
                "backend_roles": [READER, OPS_ROLE],
                "users": [OPS_USER],
            },
        }
    }

    domain.clear()
    assert _deploy(http, "s", [OPS_ROLE, OPS_USER], [READER], record) == []
    assert domain.writes() == []  # compared, nothing re-sent

    domain.clear()
    _destroy(http, "s", record)
    assert domain.security[USER_MAP] == {**OTHERS, "hosts": [], "and_backend_roles": []}
    assert domain.security[READ_ONLY_MAP]["backend_roles"] == []
    # Each removal is guarded by a test of the entry at that position, last first.
    patch = next(body for m, p, body in domain.writes() if (m, p) == ("PATCH", USER_MAP))
    assert patch == [
        {"op": "test", "path": "/backend_roles/2", "value": OPS_ROLE},
        {"op": "remove", "path": "/backend_roles/2"},
        {"op": "test", "path": "/backend_roles/1", "value": READER},
        {"op": "remove", "path": "/backend_roles/1"},
        {"op": "test", "path": "/users/1", "value": OPS_USER},
        {"op": "remove", "path": "/users/1"},
    ]
    assert set(domain.ours()) == {USER_MAP, READ_ONLY_MAP}  # ddbsearch's roles are gone
    assert not record.exists()


def test_a_principal_mapped_by_hand_before_deploy_is_not_ours_to_remove(
    domain: RecordingDomain, http: SearchTransport, tmp_path: Path
) -> None:
    domain.security[USER_MAP] = {"backend_roles": [OPS_ROLE], "users": []}
    record = tmp_path / "fgac-dashboards.json"
    _deploy(http, "s", [OPS_ROLE], [], record)
    assert not [w for w in domain.writes() if w[1] == USER_MAP]  # already there
    _destroy(http, "s", record)
    assert domain.security[USER_MAP]["backend_roles"] == [OPS_ROLE]


def test_a_dropped_operator_leaves_the_mapping_on_the_next_deploy(
    domain: RecordingDomain, http: SearchTransport, tmp_path: Path
) -> None:
    record = tmp_path / "fgac-dashboards.json"
    _deploy(http, "s", [OPS_ROLE, OPS_USER], [], record)
    domain.clear()
    _deploy(http, "s", [OPS_ROLE], [], record)
    assert [(m, p) for m, p, _ in domain.writes()] == [
        ("PUT", "rolesmapping/ddbsearch-s-operator"),
        ("PATCH", USER_MAP),
    ]
    assert domain.security[USER_MAP]["users"] == []
    assert domain.security[USER_MAP]["backend_roles"] == [OPS_ROLE]
    assert DashboardsRecord.read(record).added["opensearch_dashboards_user"] == Principals(
        (OPS_ROLE,), ()
    )


def test_another_stack_on_the_domain_keeps_a_shared_operator_mapped(
    domain: RecordingDomain, http: SearchTransport, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    _deploy(http, "a", [OPS_ROLE], [], first)
    _deploy(http, "b", [OPS_ROLE], [], second)  # found it mapped: not b's to remove
    _destroy(http, "a", first)
    assert domain.security[USER_MAP]["backend_roles"] == [OPS_ROLE]  # b still needs it
    assert "rolesmapping/ddbsearch-b-operator" in domain.security
    assert "rolesmapping/ddbsearch-a-operator" not in domain.security


def test_a_concurrent_edit_fails_the_patch_instead_of_removing_another_entry(
    domain: RecordingDomain, http: SearchTransport, tmp_path: Path
) -> None:
    record = tmp_path / "fgac-dashboards.json"
    _deploy(http, "s", [OPS_ROLE], [], record)

    class EditsAfterReading:
        """Someone inserts a mapping entry between ddbsearch's GET and its PATCH."""

        def json(self, method: str, path: str, payload: Any = None) -> Any:
            resp = http.json(method, path, payload)
            if method == "GET" and path.endswith(USER_MAP):
                domain.security[USER_MAP]["backend_roles"].insert(0, f"{ACCOUNT}:role/new")
            return resp

    with pytest.raises(InfraError, match="changed while deploy was updating it"):
        apply_dashboards(EditsAfterReading(), "s", {}, DashboardsRecord.read(record))
    assert domain.security[USER_MAP]["backend_roles"] == [f"{ACCOUNT}:role/new", OPS_ROLE]


def test_domains_with_the_old_role_names_get_kibana_user(
    domain: RecordingDomain, http: SearchTransport, tmp_path: Path
) -> None:
    domain.security.clear()
    domain.security["roles/kibana_user"] = {}
    domain.security["roles/kibana_read_only"] = {}
    record = tmp_path / "fgac-dashboards.json"
    changed = _deploy(http, "s", [OPS_ROLE], [READER], record)
    assert changed[-2:] == ["rolesmapping/kibana_user", "rolesmapping/kibana_read_only"]
    assert domain.security["rolesmapping/kibana_user"]["backend_roles"] == [READER, OPS_ROLE]
    _destroy(http, "s", record)
    assert domain.security["rolesmapping/kibana_user"]["backend_roles"] == []


def test_a_domain_without_dashboards_roles_is_a_warning_not_a_failure(
    domain: RecordingDomain, http: SearchTransport
) -> None:
    domain.security.clear()
    result = apply_dashboards(http, "s", dashboards_grants([OPS_ROLE]), DashboardsRecord())
    assert result.changed == []
    assert result.warnings == [
        "the domain has no opensearch_dashboards_user (or kibana_user) role, so nobody was "
        "mapped for Dashboards; as the master user, map the operators to the role "
        "Dashboards users need there"
    ]
    # Without the read-only marker role, readers still get Dashboards, and are told how.
    domain.security["roles/opensearch_dashboards_user"] = {}
    result = apply_dashboards(http, "s", dashboards_grants([], [READER]), DashboardsRecord())
    assert result.changed == ["rolesmapping/opensearch_dashboards_user"]
    assert result.warnings[0].startswith(
        "the domain has no opensearch_dashboards_read_only (or kibana_read_only) role"
    )


def test_the_record_ignores_what_it_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "fgac-dashboards.json"
    path.write_text(
        json.dumps(
            {
                "added": {
                    "all_access": {"backend_roles": [OPS_ROLE]},  # never ours to touch
                    "opensearch_dashboards_user": {"backend_roles": [OPS_ROLE], "users": None},
                }
            }
        )
    )
    assert DashboardsRecord.read(path).added == {
        "opensearch_dashboards_user": Principals((OPS_ROLE,), ())
    }
    DashboardsRecord({"opensearch_dashboards_user": Principals()}).write(path)
    assert not path.exists()  # nothing recorded: no file
