"""What a stack is made of (:class:`StackSettings`) and its ``terraform.tfvars.json``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ddbsearch.errors import InputError
from ddbsearch.infra.resources import root_variables
from ddbsearch.targets import DEFAULT_STACK

# The stack name names the OpenSearch domain, whose names are 3-28 characters.
STACK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{2,27}$")
_VAR_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Set by deploy itself; --var must not fight with it.
_RESERVED_VARS = frozenset({"lambda_zip_path", "name", "region"})
ZIP_NAME = "indexer.zip"
KEY_TYPES = ("S", "N", "B")


def validate_stack_name(name: str) -> str:
    if not STACK_NAME_RE.match(name):
        raise InputError(
            f"invalid stack name '{name}'",
            hint="3-28 characters: a lowercase letter, then lowercase letters, digits or '-'",
        )
    return name


def parse_key(spec: str, *, option: str) -> tuple[str, str]:
    """``NAME:TYPE`` (TYPE one of S, N, B) -> (name, type)."""
    name, sep, key_type = spec.rpartition(":")
    key_type = key_type.upper()
    if not sep or not name or key_type not in KEY_TYPES:
        raise InputError(
            f"{option} '{spec}' is not NAME:TYPE", hint="TYPE is S, N or B, e.g. userId:N"
        )
    return name, key_type


def parse_var(spec: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value); VALUE is read as JSON when it is JSON, else as text."""
    key, sep, raw = spec.partition("=")
    key = key.strip()
    if not sep or not _VAR_KEY_RE.match(key):
        raise InputError(
            f"--var '{spec}' is not KEY=VALUE",
            hint='e.g. --var batch_size=500 --var \'tags={"team":"search"}\'',
        )
    if key in _RESERVED_VARS:
        raise InputError(
            f"--var {key} is set by ddbsearch itself", hint=f"use --{key.replace('_', '-')}"
        )
    known = root_variables()
    if key not in known:
        raise InputError(
            f"--var {key}: the Terraform module has no such variable",
            hint="see the variables in terraform/variables.tf",
        )
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def parse_vars(specs: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        key, value = parse_var(spec)
        if key in out:
            raise InputError(f"--var {key} given twice")
        out[key] = value
    return out


@dataclass(frozen=True)
class StackSettings:
    """Everything ``deploy`` passes to Terraform for one stack."""

    name: str = DEFAULT_STACK
    region: str | None = None
    profile: str | None = None
    table: str | None = None  # None: the reference table UsersTransactions
    adopt_table: bool = False  # True: the table exists and is only read
    # Key schema of a table to create: (hash key, range key or None); None keeps
    # the module's reference keys (userId N, transactionId N).
    keys: tuple[tuple[str, str], tuple[str, str] | None] | None = None
    index: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    operator_arns: tuple[str, ...] = ()
    reader_arns: tuple[str, ...] = ()  # read-only operators (search, status, verify, explain)
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    state_bucket: str | None = None
    domain_arn: str | None = None  # an existing OpenSearch domain (never changed nor deleted)

    def __post_init__(self) -> None:
        validate_stack_name(self.name)
        self.tfvars(region=self.region or "")  # fail on conflicting --var before any work

    def tfvars(self, *, region: str) -> dict[str, Any]:
        """Content of ``terraform.tfvars.json``: only what differs from the module defaults."""
        values: dict[str, Any] = {
            "name": self.name,
            "region": region,
            "lambda_zip_path": ZIP_NAME,
        }
        if self.table is not None:
            values["existing_table_name" if self.adopt_table else "table_name"] = self.table
        if not self.adopt_table and self.keys is not None:
            hash_key, range_key = self.keys
            values["hash_key"] = {"name": hash_key[0], "type": hash_key[1]}
            values["range_key"] = (
                None if range_key is None else {"name": range_key[0], "type": range_key[1]}
            )
        if self.index is not None:
            values["index_name"] = self.index
        if self.instance_type is not None:
            values["instance_type"] = self.instance_type
        if self.instance_count is not None:
            values["instance_count"] = self.instance_count
        if self.operator_arns:
            values["operator_arns"] = list(self.operator_arns)
        if self.reader_arns:
            values["reader_arns"] = list(self.reader_arns)
        if self.domain_arn is not None:
            values["existing_domain_arn"] = self.domain_arn
        for key, value in self.extra_vars.items():
            if key in values:
                raise InputError(f"--var {key} repeats an option given on the command line")
            values[key] = value
        return values
