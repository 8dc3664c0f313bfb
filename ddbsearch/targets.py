"""What a command talks to: the local stack or a deployed AWS stack.

``deploy`` records each stack it creates under the state directory; every other
command resolves its target from there, so ``ddbsearch search`` just works after
``ddbsearch deploy``. Layout of the state directory (``$DDBSEARCH_HOME``, default
``$XDG_STATE_HOME/ddbsearch`` or ``~/.local/state/ddbsearch``)::

    current.json                 {"kind": "local" | "aws", "name": "<stack>"}
    local/stack.json             the running local stack (ports, pids, target)
    stacks/<name>/target.json    the target of an AWS stack (from terraform outputs)
    stacks/<name>/...            terraform working directory, logs, state
    loads/<id>.json              the export load recorded for a target (ops/export_load.py)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ddbsearch.errors import NotDeployedError
from ddbsearch.files import read_json, write_json

TargetKind = Literal["local", "aws"]

# Reference table from the original blog post; also the default for deploy.
DEFAULT_TABLE = "UsersTransactions"
# Its keys: (name, type) of the partition key, and of the sort key or None.
KeySpec = tuple[tuple[str, str], tuple[str, str] | None]
REFERENCE_KEYS: KeySpec = (("userId", "N"), ("transactionId", "N"))
DEFAULT_STACK = "ddbsearch"


@dataclass(frozen=True)
class Target:
    """Everything a command needs to reach one pipeline."""

    kind: TargetKind
    name: str
    region: str
    table: str
    index: str
    search_endpoint: str
    # Set for the local stack (moto server); None means the real AWS endpoints.
    aws_endpoint: str | None = None
    dlq_url: str | None = None
    function_name: str | None = None
    event_source_mapping_uuid: str | None = None
    dashboards_url: str | None = None
    profile: str | None = None
    # Sign OpenSearch requests with SigV4 (always on AWS; off for the local emulator).
    sigv4: bool = True
    # What deploy learned about the pipeline; empty when it was not recorded.
    key_names: tuple[str, ...] = ()  # the table's key attributes, HASH first
    stream_arn: str | None = None
    table_adopted: bool | None = None  # AWS: the stack adopted an existing table
    log_group_name: str | None = None  # AWS: the function's CloudWatch log group
    domain_name: str | None = None  # AWS: the OpenSearch domain
    operator_arns: tuple[str, ...] = ()  # AWS: principals allowed to search
    domain_arn: str | None = None  # AWS: the OpenSearch domain's ARN
    domain_managed: bool | None = None  # AWS: False when the stack uses an existing domain
    fgac_enabled: bool | None = None  # AWS: the domain has fine-grained access control
    function_log: str | None = None  # local: what the function printed
    root: str | None = None  # local: the stack's state directory
    loader_state_machine_arn: str | None = None  # AWS: the export loader (modules/loader)
    export_bucket: str | None = None  # AWS: where exports and load results go

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["key_names"] = list(self.key_names)
        data["operator_arns"] = list(self.operator_arns)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Target:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        extra = data.get("extra")
        if isinstance(extra, dict):  # files written before the typed fields
            for key in ("stream_arn", "table_adopted", "log_group_name", "domain_name"):
                values.setdefault(key, extra.get(key))
            values.setdefault("function_log", extra.get("function_log"))
            values.setdefault("root", extra.get("root"))
            values.setdefault("operator_arns", extra.get("operator_arns") or ())
            values.setdefault("key_names", _legacy_key_names(extra))
        values["key_names"] = tuple(str(n) for n in values.get("key_names") or ())
        arns = values.get("operator_arns") or ()
        values["operator_arns"] = (arns,) if isinstance(arns, str) else tuple(arns)
        return cls(**values)

    def with_overrides(self, **changes: Any) -> Target:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def for_table(self, table: str) -> Target:
        """This stack pointed at another ``table``: the parts deployed for this
        table (queue, function, mapping, stream, index) do not belong to it."""
        if table == self.table:
            return self
        return replace(
            self,
            table=table,
            index=table.lower(),
            dlq_url=None,
            function_name=None,
            event_source_mapping_uuid=None,
            key_names=(),
            stream_arn=None,
            table_adopted=None,
            function_log=None,
            loader_state_machine_arn=None,  # its loader writes this table's index
        )


def _legacy_key_names(extra: dict[str, Any]) -> list[str]:
    """Key names from an old ``extra`` dict: ``key_names``, or ``hash_key``/``range_key``."""
    names = extra.get("key_names")
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    out: list[str] = []
    for part in ("hash_key", "range_key"):
        value = extra.get(part)  # ["userId", "N"] (local stack) or {"name": ..., "type": ...}
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            out.append(value[0])
        elif isinstance(value, dict) and isinstance(value.get("name"), str):
            out.append(value["name"])
    return out


def state_home() -> Path:
    explicit = os.environ.get("DDBSEARCH_HOME")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ddbsearch"


def local_state_file() -> Path:
    return state_home() / "local" / "stack.json"


def stack_dir(name: str) -> Path:
    return state_home() / "stacks" / name


def set_current(kind: TargetKind, name: str) -> None:
    write_json(state_home() / "current.json", {"kind": kind, "name": name})


def clear_current(kind: TargetKind, name: str) -> None:
    """Forget the current pointer if it points at the stack being destroyed."""
    current = read_json(state_home() / "current.json")
    if current == {"kind": kind, "name": name}:
        (state_home() / "current.json").unlink(missing_ok=True)


def save_aws_target(target: Target) -> None:
    write_json(stack_dir(target.name) / "target.json", target.to_json())


def forget_aws_target(name: str) -> None:
    (stack_dir(name) / "target.json").unlink(missing_ok=True)


def load_aws_target(name: str) -> Target | None:
    data = read_json(stack_dir(name) / "target.json")
    return Target.from_json(data) if data else None


def load_local_target(table: str | None = None) -> Target | None:
    """The local target of ``table`` (default: the table deployed last), if deployed."""
    from ddbsearch.local.state import local_target

    return local_target(table)


def resolve_target(
    *,
    local: bool = False,
    name: str | None = None,
    endpoint: str | None = None,
    table: str | None = None,
    index: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> Target:
    """Pick the target: explicit flags first, then the last deploy.

    ``--local`` forces the local stack; ``--name`` an AWS stack; otherwise the
    stack the last ``deploy`` made current. Remaining flags override fields;
    ``profile`` (``--profile`` / ``AWS_PROFILE``) replaces the one deploy used
    (boto3 resolves SSO, assume-role and credential_process profiles like the AWS
    CLI, and the search clients sign with those credentials, session token included).
    """
    target: Target | None
    if local:
        target = load_local_target(table) or load_local_target()
        if target is None:
            raise NotDeployedError(
                "the local stack is not running", hint="run 'ddbsearch deploy --local' first"
            )
    elif name:
        target = load_aws_target(name)
        if target is None:
            raise NotDeployedError(
                f"no deployed stack named '{name}'", hint="run 'ddbsearch deploy --name NAME'"
            )
    else:
        current = read_json(state_home() / "current.json") or {}
        if current.get("kind") == "local":
            target = load_local_target(table) or load_local_target()
        elif current.get("kind") == "aws" and isinstance(current.get("name"), str):
            target = load_aws_target(current["name"])
        else:
            target = None
        if target is None:
            if endpoint and table:
                # Fully specified on the command line: no deploy needed.
                return Target(
                    kind="aws",
                    name="adhoc",
                    region=region or os.environ.get("AWS_REGION", "us-east-1"),
                    table=table,
                    index=index or table.lower(),
                    search_endpoint=endpoint,
                    profile=profile,
                )
            raise NotDeployedError(
                "nothing is deployed yet",
                hint="run 'ddbsearch deploy --local' (no AWS account needed) or 'ddbsearch deploy'",
            )
    if table is not None:
        target = target.for_table(table)
    if target.kind == "local":
        profile = None  # the local stack uses emulator credentials, never a profile
    return target.with_overrides(
        search_endpoint=endpoint, index=index, region=region, profile=profile
    )
