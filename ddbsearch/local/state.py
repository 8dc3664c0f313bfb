"""The local stack's state files, each with its one typed reader and writer.

Under the local stack's directory (``<state home>/local``)::

    stack.json                      StackRecord: the supervisor's pid, ports and endpoints,
                                    and every table deployed into it (its Target)
    mappings/<table>.json           the mapping spec deploy writes and the supervisor runs
    mappings/<table>.status.json    MappingStatus: what the table's stream worker reports
    checkpoints/<table>-<id>.json   the stream worker's shard checkpoints (worker.CheckpointStore)
    loads/<table>/<run>/            an export load's map run: load.json (maprunner.LoadSpec),
                                    progress.json (maprunner.read_progress), logs

Nobody else opens these files: the supervisor, ``deploy --local``, ``status``
and the target resolver all go through the functions here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ddbsearch import files
from ddbsearch.targets import Target, local_state_file


def default_root() -> Path:
    """The directory of the user's local stack."""
    return local_state_file().parent


def stack_file(root: Path) -> Path:
    return root / "stack.json"


def mappings_dir(root: Path) -> Path:
    return root / "mappings"


# --------------------------------------------------------------------- stack.json


@dataclass(frozen=True)
class StackRecord:
    """``stack.json``: the running stack, and the target of each table deployed into it."""

    pid: int
    region: str
    moto_url: str
    moto_port: int
    osmem_url: str
    osmem_port: int
    osmem_pid: int
    ready: bool = True
    started_at: float = 0.0
    targets: Mapping[str, Target] = field(default_factory=dict)  # by table name
    current: str | None = None  # the table deployed last: what --local picks by default

    def target(self, table: str | None = None) -> Target | None:
        """The target of ``table`` (default: the table deployed last)."""
        name = table if table is not None else self.current
        return self.targets.get(name) if name is not None else None

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def to_json(self) -> dict[str, Any]:
        data = self._fields()
        data["targets"] = {name: t.to_json() for name, t in self.targets.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackRecord:
        targets = _targets(data)
        current = data.get("current")
        if "target" in data and targets:  # an old file: its one target is current
            current = next(iter(targets))
        return cls(
            pid=int(data["pid"]),
            region=str(data["region"]),
            moto_url=str(data["moto_url"]),
            moto_port=int(data["moto_port"]),
            osmem_url=str(data["osmem_url"]),
            osmem_port=int(data["osmem_port"]),
            osmem_pid=int(data["osmem_pid"]),
            ready=bool(data.get("ready", False)),
            started_at=float(data.get("started_at") or 0.0),
            targets=targets,
            current=current if isinstance(current, str) else None,
        )


def read_stack(root: Path) -> StackRecord | None:
    """The stack record under ``root``; None when missing or unreadable."""
    data = files.read_json(stack_file(root))
    if data is None:
        return None
    try:
        return StackRecord.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None


def recorded_pid(root: Path) -> int | None:
    """The supervisor pid ``stack.json`` names (also while the stack is still starting)."""
    data = files.read_json(stack_file(root)) or {}
    pid = data.get("pid")
    return pid if isinstance(pid, int) else None


def write_stack(root: Path, record: StackRecord) -> None:
    files.write_json(stack_file(root), record.to_json())


def remove_stack(root: Path, *, pid: int | None = None) -> None:
    """Delete ``stack.json``; with ``pid``, only if it still names that supervisor."""
    if pid is None or recorded_pid(root) == pid:
        stack_file(root).unlink(missing_ok=True)


def local_target(table: str | None = None, root: Path | None = None) -> Target | None:
    """The local target of ``table`` (default: the table deployed last), if deployed."""
    data = files.read_json(stack_file(root or default_root())) or {}
    targets = _targets(data)
    name = table if table is not None else data.get("current")
    if name is None and "target" in data and targets:  # an old file: its one target
        name = next(iter(targets))
    return targets.get(name) if isinstance(name, str) else None


def _targets(data: Mapping[str, Any]) -> dict[str, Target]:
    targets = {
        str(name): Target.from_json(value)
        for name, value in (data.get("targets") or {}).items()
        if isinstance(value, dict)
    }
    legacy = data.get("target")  # files written before one target per table
    if isinstance(legacy, dict) and not targets:
        old = Target.from_json(legacy)
        targets = {old.table: old}
    return targets


def record_target(target: Target, root: Path | None = None) -> None:
    """Add ``target`` to ``stack.json`` as the current table, keeping the rest.

    :func:`ddbsearch.local.deploy.record_target` checks the supervisor first; tests
    that wire emulators without a supervisor record their targets with this.
    """
    path = stack_file(root or default_root())
    data = files.read_json(path) or {}
    targets = _targets(data)
    targets[target.table] = target
    data.pop("target", None)
    data["targets"] = {name: t.to_json() for name, t in targets.items()}
    data["current"] = target.table
    files.write_json(path, data)


# ------------------------------------------------------------------- mappings


def spec_path(root: Path, table: str) -> Path:
    return mappings_dir(root) / f"{table}.json"


def write_mapping_spec(root: Path, table: str, spec: Mapping[str, Any]) -> None:
    files.write_json(spec_path(root, table), spec)


def read_mapping_spec(root: Path, table: str) -> dict[str, Any] | None:
    """The mapping spec deploy wrote for ``table`` (its zip, function settings, environment)."""
    return files.read_json(spec_path(root, table))


def loads_dir(root: Path, table: str) -> Path:
    return root / "loads" / table


def mapping_spec_texts(root: Path) -> Iterator[tuple[str, str]]:
    """(table, raw spec text) of every mapping deployed: the supervisor compares texts."""
    directory = mappings_dir(root)
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.json")):
        if path.name.endswith(".status.json"):
            continue
        try:
            yield path.stem, path.read_text(encoding="utf-8")
        except OSError:
            continue


def status_path(root: Path, table: str) -> Path:
    return mappings_dir(root) / f"{table}.status.json"


@dataclass(frozen=True)
class MappingStatus:
    """``mappings/<table>.status.json``: the stream worker's report (rewritten every 0.2 s)."""

    state: str  # Enabled, Stopped or Failed
    generation: str | None = None  # the deploy that wrote the spec this worker runs
    error: str | None = None
    idle: bool = False
    caught_up_since: float | None = None
    updated_at: float | None = None
    stream_arn: str | None = None
    function_pid: int | None = None
    iterator_age_s: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MappingStatus:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("state", "unknown")
        values["stats"] = dict(values.get("stats") or {})
        values["checkpoints"] = dict(values.get("checkpoints") or {})
        return cls(**values)


def read_mapping_status(root: Path, table: str) -> MappingStatus | None:
    data = files.read_json(status_path(root, table))
    return MappingStatus.from_json(data) if data is not None else None


def write_mapping_status(root: Path, table: str, status: MappingStatus) -> None:
    files.write_json(status_path(root, table), status.to_json())


def remove_mapping_status(root: Path, table: str) -> None:
    status_path(root, table).unlink(missing_ok=True)


def clear_mappings(root: Path) -> None:
    """Forget every mapping and checkpoint: a new stack has new, empty emulators."""
    for sub in ("mappings", "checkpoints"):
        directory = root / sub
        for path in directory.glob("*.json") if directory.is_dir() else ():
            path.unlink(missing_ok=True)
