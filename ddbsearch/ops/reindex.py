"""Reindex: build the next generation of the index and swap the read alias to it.

The steps, each recorded in a state file so that running ``reindex`` again
continues an interrupted one (docs/document-model.md describes generations):

1. **create**: ``<index>-NNNNNN`` with the new configuration (the serving one's,
   with the options given applied over it), behind the building alias ``<index>-building``:
   from then on the stream handler writes every change into it too;
2. **settle**: wait until every handler has seen the new live set (its cache plus
   one function timeout): a change indexed by a handler that did not know the new
   generation yet was made before the fill reads its item, so the fill carries it;
3. **fill**: the backfill's own path (parallel consistent Scan, the document
   model, ``_bulk`` at backfill versions, per-segment checkpoints) targeting the new
   generation with its configuration; a stream write always beats a backfill row.
   Or, for large tables (the same choice as ``backfill``: by size on AWS, asked
   for locally), an export load restricted to the new generation
   (:mod:`ddbsearch.ops.export_load`): the export is taken after the settle wait,
   its rows are indexed at a version just below the export time, so the dual
   write's changes win; the load runs on AWS (or in the local map runner) and
   outlives this process: the state file notes it, ``reindex`` again attaches to
   it and ``reindex --abort`` cancels it;
4. **verify**: the ids the table's items give under the new configuration against
   the ids in the generation; differences are re-checked item by item until the
   stream has had time to deliver them;
5. **swap**: one ``_aliases`` call moves the read alias (and removes a legacy
   concrete index named like the alias, which kept serving until that instant);
6. **retire**: after the same grace the old generations are out of every
   handler's live set; they are deleted (or kept with ``keep_old``).

A generation that cannot be built (OpenSearch refuses rows under the new mapping,
rows lack the version attribute, ids are missing after the re-checks) stops the
run before the swap with one line naming the reason and the first offending ids;
the serving generation is untouched and the building one is left as it is, still
written by the stream, for inspection: ``reindex`` again retries the fill (after
fixing the rows), ``reindex --abort`` drops it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar
from urllib.parse import quote

from ddbsearch import clients, files
from ddbsearch.core.documents import InvalidDocument, MissingVersion, action_from_item
from ddbsearch.core.generations import GenerationConfig
from ddbsearch.core.lifecycle import (
    RETIRE_GRACE_SECONDS,
    Generation,
    GenerationError,
    create_next_generation,
    drop,
    list_generations,
    retire,
    swap,
)
from ddbsearch.core.transport import SearchTransport, TransportError
from ddbsearch.errors import (
    Aborted,
    DdbsearchError,
    InputError,
    NotFoundError,
    PartialFailure,
    UnreachableError,
)
from ddbsearch.ops import export_load
from ddbsearch.ops.backfill import BackfillSummary, run_backfill, run_lock
from ddbsearch.ops.export_load import LoadProgress, LoadRecord
from ddbsearch.tables import TableInfo, describe_table
from ddbsearch.targets import Target, state_home

STATE_FORMAT = 1
# How long verification re-checks differences (the stream's usual latency is seconds).
VERIFY_WAIT_SECONDS = 60.0
PAGE = 1000  # ids per verification request
FIRST_KEYS = 3

Phase = Literal["settling", "filling", "verifying", "swapped"]
P = ParamSpec("P")
R = TypeVar("R")


class BuildFailed(PartialFailure):
    """The new generation cannot serve: nothing was swapped."""


# --------------------------------------------------------------------------- configuration


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping overlay in a JSON file (short or full form), parsed but not yet validated."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read mapping file {str(path)!r}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"mapping file {str(path)!r} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"mapping file {str(path)!r} must hold a JSON object")
    return data


def plan_config(
    current: GenerationConfig | None,
    key_schema: Sequence[str],
    *,
    mapping: Mapping[str, Any] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    version_attribute: str | None = None,
    ttl_deletes: str | None = None,
    reset: bool = False,
) -> GenerationConfig:
    """The configuration of the next generation: ``current`` with the options given over it.

    An option left None keeps the current value (``reset``: ddbsearch's defaults);
    ``version_attribute=""`` removes it. Ids follow the table's key schema. Raises
    ConfigurationError (exit 2) for anything invalid, before anything is created.
    """
    base = GenerationConfig() if reset or current is None else current
    return GenerationConfig.create(
        key_schema=key_schema,
        include=base.include if include is None else include,
        exclude=base.exclude if exclude is None else exclude,
        mapping=base.mapping if mapping is None else mapping,
        version_attribute=base.version_attribute
        if version_attribute is None
        else version_attribute,
        ttl_deletes=base.ttl_deletes if ttl_deletes is None else ttl_deletes,
    )


@dataclass(frozen=True)
class SchemaOptions:
    """The document-model options ``deploy`` and ``reindex`` take (None: not given)."""

    mapping: Mapping[str, Any] | None = None
    include: Sequence[str] | None = None
    exclude: Sequence[str] | None = None
    version_attribute: str | None = None
    ttl_deletes: str | None = None

    @property
    def given(self) -> bool:
        return any(
            v is not None
            for v in (
                self.mapping, self.include, self.exclude, self.version_attribute, self.ttl_deletes
            )
        )  # fmt: skip

    def config(self, key_schema: Sequence[str]) -> GenerationConfig:
        """The first generation's configuration; ConfigurationError (exit 2) when invalid."""
        return plan_config(
            None,
            key_schema,
            mapping=self.mapping,
            include=self.include,
            exclude=self.exclude,
            version_attribute=self.version_attribute,
            ttl_deletes=self.ttl_deletes,
        )


def first_generation_config(
    transport: SearchTransport, index: str, schema: SchemaOptions | None, key_schema: Sequence[str]
) -> GenerationConfig | None:
    """The configuration deploy creates the first generation with (None: keep the index's).

    Refused when the index exists already with another configuration: that is
    what ``reindex`` changes, without downtime.
    """
    from ddbsearch.errors import ConfigurationError

    gens = list_generations(transport, index)
    if schema is None or not schema.given:
        # A fresh index: ids in key-schema order (partition key, then sort key), as
        # OpenSearch Ingestion writes them. An existing one keeps its configuration.
        return None if gens else GenerationConfig.create(key_schema=key_schema)
    config = schema.config(key_schema)
    serving = next((g for g in gens if g.serving), None)
    if gens and (serving is None or serving.config != config):
        raise ConfigurationError(
            f"index {index!r} exists with another configuration",
            hint="change it with 'ddbsearch reindex' (no downtime), not with deploy",
        )
    return config


def describe_config(config: GenerationConfig | None) -> str:
    """One line for people: the id scheme and what differs from the defaults."""
    if config is None:
        return "legacy index (ids in key-name order, stream-time versions, all attributes)"
    parts = [f"ids in {config.id_scheme} order"]
    if config.include:
        parts.append("include " + ",".join(config.include))
    if config.exclude:
        parts.append("exclude " + ",".join(config.exclude))
    if config.mapping:
        parts.append(f"{len(config.mapping)} mapped attribute(s)")
    if config.version_attribute:
        parts.append(f"version attribute {config.version_attribute}")
    if config.ttl_deletes != "delete":
        parts.append(f"TTL deletes {config.ttl_deletes}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- state


def _identity(target: Target) -> str:
    identity = [
        target.kind, target.name, target.region, target.aws_endpoint,
        target.table, target.search_endpoint, target.index,
    ]  # fmt: skip
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    safe = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in f"{target.table}-{target.index}"
    )
    return f"{safe}-{digest}"


def state_path(target: Target) -> Path:
    return state_home() / "reindex" / f"{_identity(target)}.json"


def fill_checkpoint_path(target: Target, generation: str) -> Path:
    return state_home() / "reindex" / f"{_identity(target)}.{generation}.fill.json"


@dataclass
class ReindexState:
    """What an interrupted reindex needs to continue (the one reader and writer of its file)."""

    index: str
    generation: str
    previous: list[str]  # the generations (or legacy index) serving when it started
    phase: Phase
    settle_until: float
    keep_old: bool = False
    started_at: float = field(default_factory=time.time)
    swapped_at: float | None = None
    fill: str | None = None  # "scan" | "export" (None: not chosen yet)
    export_arn: str | None = None  # the export the operator named (None: take a new one)
    load_run: str | None = None  # the export load filling it: run dir or execution ARN

    @classmethod
    def load(cls, path: Path) -> ReindexState | None:
        data = files.read_json(path)
        if data is None or data.get("format") != STATE_FORMAT:
            return None
        try:
            return cls(
                index=str(data["index"]),
                generation=str(data["generation"]),
                previous=[str(n) for n in data["previous"]],
                phase=data["phase"],
                settle_until=float(data["settle_until"]),
                keep_old=bool(data.get("keep_old", False)),
                started_at=float(data.get("started_at", time.time())),
                swapped_at=None if data.get("swapped_at") is None else float(data["swapped_at"]),
                fill=_optional_str(data.get("fill")),
                export_arn=_optional_str(data.get("export_arn")),
                load_run=_optional_str(data.get("load_run")),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, path: Path) -> None:
        files.write_json(
            path,
            {
                "format": STATE_FORMAT,
                "index": self.index,
                "generation": self.generation,
                "previous": self.previous,
                "phase": self.phase,
                "settle_until": self.settle_until,
                "keep_old": self.keep_old,
                "started_at": self.started_at,
                "swapped_at": self.swapped_at,
                "fill": self.fill,
                "export_arn": self.export_arn,
                "load_run": self.load_run,
            },
        )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- results


@dataclass
class VerifyResult:
    table_items: int = 0  # items whose documents the generation should hold
    unindexable: int = 0  # items the document model refuses (in every generation)
    documents: int = 0
    missing: list[str] = field(default_factory=list)  # ids the generation lacks
    extra: list[str] = field(default_factory=list)  # ids no item has

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra

    def to_json(self) -> dict[str, Any]:
        return {
            "table_items": self.table_items,
            "unindexable": self.unindexable,
            "documents": self.documents,
            "missing": len(self.missing),
            "extra": len(self.extra),
            "ok": self.ok,
        }


@dataclass
class ReindexSummary:
    index: str
    generation: str = ""
    previous: list[str] = field(default_factory=list)
    config: GenerationConfig | None = None
    resumed: bool = False
    fill: BackfillSummary | None = None
    load: LoadProgress | None = None  # the fill, when it was an export load
    verify: VerifyResult | None = None
    swapped: bool = False
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    aborted: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "generation": self.generation,
            "previous": self.previous,
            "configuration": self.config.to_meta() if self.config else None,
            "resumed": self.resumed,
            "fill": self.fill.to_json() if self.fill else None,
            "load": self.load.to_json() if self.load else None,
            "verify": self.verify.to_json() if self.verify else None,
            "swapped": self.swapped,
            "dropped": self.dropped,
            "kept": self.kept,
            "aborted": self.aborted,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ReindexEvents:
    """How the library reports progress (the CLI renders it; no printing here)."""

    step: Callable[[str], None] = lambda message: None
    fill_start: Callable[[int, int], None] = lambda total, already: None  # items, done already
    progress: Callable[[int], None] = lambda n: None  # items filled


# --------------------------------------------------------------------------- helpers


def _transport(target: Target) -> SearchTransport:
    return clients.search_transport(target)


def _generations(transport: SearchTransport, target: Target) -> list[Generation]:
    try:
        return list_generations(transport, target.index)
    except TransportError:
        raise UnreachableError(
            f"cannot reach the search endpoint {target.search_endpoint}",
            hint="is the local stack running ('ddbsearch deploy --local') / is the network up?",
        ) from None


def _wait_until(when: float, stop: threading.Event, events: ReindexEvents, what: str) -> None:
    left = when - time.time()
    if left <= 0:
        return
    events.step(f"{what}: waiting {left:.0f} s")
    while (left := when - time.time()) > 0:
        if stop.wait(min(left, 0.5)):
            raise Aborted(
                f"reindex interrupted while {what}",
                hint="run 'ddbsearch reindex' again to continue, or 'reindex --abort'",
            )


def _refresh(transport: SearchTransport, name: str) -> None:
    resp = transport.request("POST", f"/{quote(name)}/_refresh")
    if resp.status >= 300:
        raise GenerationError(f"could not refresh {name!r} ({resp.status})", resp.status)


def _scan(ddb: Any, table: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        with clients.aws_errors(f"scanning table '{table}'"):
            page = ddb.scan(**kwargs)
        yield from page.get("Items", [])
        if not page.get("LastEvaluatedKey"):
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _search(transport: SearchTransport, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    resp = transport.json("POST", f"/{quote(name)}/_search", body)
    if resp.status >= 300:
        raise GenerationError(f"could not read the ids of {name!r} ({resp.status})", resp.status)
    answer = resp.json()
    return answer if isinstance(answer, dict) else {}


def present_ids(transport: SearchTransport, name: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the generation holds (``ids`` queries of PAGE ids each)."""
    found: set[str] = set()
    for start in range(0, len(ids), PAGE):
        chunk = list(ids[start : start + PAGE])
        body = {"size": len(chunk), "_source": False, "query": {"ids": {"values": chunk}}}
        hits = _search(transport, name, body).get("hits", {}).get("hits", [])
        found.update(str(h["_id"]) for h in hits)
    return found


def count_documents(transport: SearchTransport, name: str) -> int:
    resp = transport.request("GET", f"/{quote(name)}/_count")
    if resp.status >= 300:
        raise GenerationError(f"could not count {name!r} ({resp.status})", resp.status)
    return int(resp.json().get("count", 0))


def generation_ids(transport: SearchTransport, name: str) -> set[str]:
    """Every document id in one generation (search_after over ``_id``).

    Only needed when the generation holds more documents than the table has
    items; plain searches on the generation's own path, nothing cluster-wide
    (no scroll or point in time: the operator's grants cover the stack's indices).
    """
    ids: set[str] = set()
    body: dict[str, Any] = {
        "size": PAGE, "_source": False, "sort": [{"_id": "asc"}], "query": {"match_all": {}},
    }  # fmt: skip
    while True:
        hits = _search(transport, name, body).get("hits", {}).get("hits", [])
        ids.update(str(h["_id"]) for h in hits)
        if len(hits) < PAGE:
            return ids
        body["search_after"] = hits[-1]["sort"]


def _has_doc(transport: SearchTransport, name: str, doc_id: str) -> dict[str, Any] | None:
    resp = transport.request("GET", f"/{quote(name)}/_doc/{quote(doc_id, safe='')}")
    if resp.status == 200:
        body = resp.json()
        if body.get("found"):
            source = body.get("_source")
            return source if isinstance(source, dict) else {}
    return None


def verify_generation(
    target: Target,
    generation: str,
    config: GenerationConfig | None,
    *,
    wait: float = VERIFY_WAIT_SECONDS,
    stop: threading.Event | None = None,
) -> VerifyResult:
    """Compare the ids the table's items give under ``config`` with the generation's ids.

    The table may change meanwhile: every difference is re-checked against the
    item (consistent GetItem) and the document until it resolves or ``wait`` ends.
    """
    stop = stop or threading.Event()
    ddb = clients.client(target, "dynamodb")
    table = describe_table(ddb, target.table)
    transport = _transport(target)
    keys_of: dict[str, dict[str, Any]] = {}
    result = VerifyResult()
    for item in _scan(ddb, table.name):
        try:
            action = action_from_item(item, table.key_names, 0, config, generation)
        except MissingVersion:
            # The fill reports these; an item the generation cannot version is missing from it.
            keys = {k: item[k] for k in table.key_names if k in item}
            keys_of[f"(no version) {_keys_text(keys)}"] = keys
            continue
        except InvalidDocument:
            result.unindexable += 1
            continue
        keys_of[action.doc_id] = dict(action.keys)
    _refresh(transport, generation)
    present = present_ids(transport, generation, sorted(keys_of))
    result.table_items = len(keys_of)
    result.documents = count_documents(transport, generation)
    missing = sorted(set(keys_of) - present)
    extra: list[str] = []
    if result.documents > len(present):
        extra = sorted(generation_ids(transport, generation) - set(keys_of))
    deadline = time.monotonic() + wait
    while missing or extra:
        still_missing, still_extra = [], []
        for doc_id in missing:
            keys = keys_of[doc_id]
            if _table_has(ddb, table, keys) and _has_doc(transport, generation, doc_id) is None:
                still_missing.append(doc_id)
        for doc_id in extra:
            source = _has_doc(transport, generation, doc_id)
            if source is None:
                continue
            if not _table_has_source(ddb, table, source):
                still_extra.append(doc_id)
        missing, extra = still_missing, still_extra
        if not (missing or extra) or time.monotonic() >= deadline or stop.wait(1.0):
            break
        _refresh(transport, generation)
    result.missing, result.extra = missing, extra
    return result


def _keys_text(keys: Mapping[str, Any]) -> str:
    parts = []
    for name, value in keys.items():
        ((_tag, inner),) = value.items() if isinstance(value, Mapping) else (("?", value),)
        parts.append(f"{name}={inner}")
    return ",".join(parts)


def _table_has(ddb: Any, table: TableInfo, keys: Mapping[str, Any]) -> bool:
    if len(keys) != len(table.key_names):
        return True  # keys unknown (no version attribute): it is in the table
    with clients.aws_errors(f"reading table '{table.name}'"):
        got = ddb.get_item(TableName=table.name, Key=dict(keys), ConsistentRead=True)
    return "Item" in got


def _table_has_source(ddb: Any, table: TableInfo, source: Mapping[str, Any]) -> bool:
    """Is the item a document (by its key values) came from still in the table?"""
    keys: dict[str, Any] = {}
    for key in table.keys:
        value = source.get(key.name)
        if value is None or isinstance(value, (dict, list, bool)):
            return False
        if key.type == "B":
            keys[key.name] = {"B": base64.b64decode(str(value))}
        else:
            keys[key.name] = {key.type: str(value)}
    try:
        return _table_has(ddb, table, keys)
    except DdbsearchError:
        return False


# --------------------------------------------------------------------------- run


def _stopping(reason: str) -> bool:
    """A failure that keeps the generation from serving (see run_reindex)."""
    return not _model_refusal(reason) or "version attribute" in reason


def _failure_line(generation: str, fill: BackfillSummary, refused: int) -> str:
    reason = next(r for r, _ in fill.failures.most_common() if _stopping(r))
    ids = ", ".join([repr(i) for i, why in fill.failed_samples if _stopping(why)][:FIRST_KEYS])
    return (
        f"generation {generation!r} cannot be built: {refused:,} row(s) refused "
        f"({reason.removeprefix('PERMANENT: ')}); first ids: {ids or '(not recorded)'}"
    )


def _holding_the_lock(
    again: str,
) -> Callable[[Callable[Concatenate[Target, P], R]], Callable[Concatenate[Target, P], R]]:
    """Run the decorated verb holding the target's reindex lock (BusyError, exit 15,
    while another reindex or abort of the same target runs; ``again``: the hint's end)."""

    def wrap(verb: Callable[Concatenate[Target, P], R]) -> Callable[Concatenate[Target, P], R]:
        @functools.wraps(verb)
        def locked(target: Target, /, *args: P.args, **kwargs: P.kwargs) -> R:
            what = f"reindex of index '{target.index}'"
            with run_lock(state_path(target), what=what, again=again):
                return verb(target, *args, **kwargs)

        return locked

    return wrap


@_holding_the_lock("run it again")
def run_reindex(  # noqa: PLR0912, PLR0915 - one linear procedure, resumable at each step
    target: Target,
    *,
    mapping: Mapping[str, Any] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    version_attribute: str | None = None,
    ttl_deletes: str | None = None,
    reset: bool = False,
    keep_old: bool = False,
    segments: int | None = None,
    max_rcu: float | None = None,
    rcu_fraction: float | None = None,
    page_size: int | None = None,
    from_export: bool | None = None,
    export_arn: str | None = None,
    max_concurrency: int | None = None,
    load_poll: float | None = None,
    settle_seconds: float = RETIRE_GRACE_SECONDS,
    retire_seconds: float = RETIRE_GRACE_SECONDS,
    verify_wait: float = VERIFY_WAIT_SECONDS,
    events: ReindexEvents | None = None,
    stop: threading.Event | None = None,
) -> ReindexSummary:
    """Build the next generation, verify it, swap the read alias to it (see the module doc).

    The fill is a Scan or an export load: ``from_export`` True/False asks for one
    (``export_arn``: load this export, taken after the generation was created); by
    default AWS targets choose by the table's size and say so through
    ``events.step``, the local stack scans. Continues an interrupted reindex of the
    same target when one is in progress (configuration options must then be left
    out; the fill method chosen first is kept unless one is asked). Raises ConfigurationError
    (exit 2) for an invalid configuration before anything is created,
    BuildFailed (exit 10) when the generation cannot serve, Aborted on ``stop``
    or Ctrl-C (run again to continue), BusyError (exit 15) while another reindex or
    abort of the same target runs.
    """
    events = events or ReindexEvents()
    stop = stop or threading.Event()
    started = time.monotonic()
    transport = _transport(target)
    ddb = clients.client(target, "dynamodb")
    table = describe_table(ddb, target.table)
    gens = _generations(transport, target)
    if not gens:
        raise NotFoundError(
            f"index '{target.index}' does not exist on {target.search_endpoint}",
            hint="deploy creates it; check --index",
        )
    path = state_path(target)
    state = ReindexState.load(path)
    by_name = {g.name: g for g in gens}
    building = [g for g in gens if g.building]
    summary = ReindexSummary(index=target.index)
    changes = any(
        v is not None for v in (mapping, include, exclude, version_attribute, ttl_deletes)
    )
    asked = from_export is not None or export_arn is not None

    def choose() -> export_load.FillChoice:
        return export_load.choose_fill(
            target,
            from_export=from_export,
            export_arn=export_arn,
            size_bytes=lambda: table.size_bytes,
        )

    if state is not None and state.phase != "swapped" and state.generation not in by_name:
        state = None  # its generation is gone (aborted elsewhere, dropped by hand)
    if building or (state is not None and state.phase == "swapped"):
        if changes or reset:
            name = building[0].name if building else state.generation  # type: ignore[union-attr]
            raise InputError(
                f"a reindex of {target.index!r} is in progress (generation {name!r})",
                hint="run 'ddbsearch reindex' without options to continue it, or "
                "'ddbsearch reindex --abort' first",
            )
        if state is None or (building and state.generation != building[0].name):
            # Building, but no record of it here (another machine, a lost state dir):
            # adopt it; the fill starts again, which is always safe.
            gen = building[0]
            state = ReindexState(
                index=target.index,
                generation=gen.name,
                previous=[g.name for g in gens if g.serving],
                phase="filling",
                settle_until=time.time() + settle_seconds,
                keep_old=keep_old,
            )
            state.save(path)
        summary.resumed = True
        state.keep_old = state.keep_old or keep_old
        if asked and state.phase in ("settling", "filling"):
            _switch_fill(target, state, choose(), export_arn)
            state.save(path)
        events.step(f"continuing the reindex into {state.generation} ({state.phase})")
    else:
        choice = choose()  # refused (exit 2) before anything is created
        if choice.export:
            export_load.require_loader(target)
        serving = [g for g in gens if g.serving]
        current = serving[0].config if serving else None
        planned = plan_config(
            current,
            table.key_names,
            mapping=mapping,
            include=include,
            exclude=exclude,
            version_attribute=version_attribute,
            ttl_deletes=ttl_deletes,
            reset=reset,
        )
        gen = create_next_generation(transport, target.index, planned)
        events.step(f"created {gen.name} ({describe_config(planned)}); the stream writes it too")
        state = ReindexState(
            index=target.index,
            generation=gen.name,
            previous=[g.name for g in serving],
            phase="settling",
            settle_until=time.time() + settle_seconds,
            keep_old=keep_old,
            fill=choice.method,
            export_arn=export_arn,
        )
        state.save(path)
        if choice.reason:
            events.step(choice.reason)
        by_name[gen.name] = gen

    summary.generation, summary.previous = state.generation, list(state.previous)
    gen_now = by_name.get(state.generation)
    config: GenerationConfig | None = gen_now.config if gen_now is not None else None
    if gen_now is None and state.phase == "swapped":
        config = next(
            (g.config for g in _generations(transport, target) if g.name == state.generation),
            None,
        )
    summary.config = config

    try:
        if state.phase in ("settling", "filling"):
            _wait_until(
                state.settle_until, stop, events, "letting the stream handlers see the generation"
            )
            state.phase = "filling"
            if state.fill is None:  # adopted from another machine, or an older state file
                choice = choose()
                state.fill = choice.method
                if choice.reason:
                    events.step(choice.reason)
            state.save(path)
        if state.phase == "filling" and state.fill == "export":
            summary.load = _export_fill(
                target,
                state,
                path=path,
                table=table,
                events=events,
                stop=stop,
                max_concurrency=max_concurrency,
                poll=load_poll,
            )
            state.phase = "verifying"
            state.save(path)
        elif state.phase == "filling":
            events.step(f"filling {state.generation} from table {table.name}")
            fill = run_backfill(
                target,
                segments=segments,
                max_rcu=max_rcu,
                rcu_fraction=rcu_fraction,
                resume=True,
                page_size=page_size,
                on_start=lambda s, already: events.fill_start(s.estimated_items, already),
                on_progress=events.progress,
                stop=stop,
                generation=state.generation,
                config=config,
                checkpoint_file=fill_checkpoint_path(target, state.generation),
            )
            summary.fill = fill
            refused = sum(n for reason, n in fill.failures.items() if _stopping(reason))
            if refused:
                raise BuildFailed(
                    _failure_line(state.generation, fill, refused),
                    hint="the serving generation is unchanged; fix the rows or the mapping, "
                    "then 'ddbsearch reindex' retries, or 'ddbsearch reindex --abort'",
                )
            state.phase = "verifying"
            state.save(path)

        if state.phase == "verifying":
            events.step(f"verifying {state.generation} against table {table.name}")
            result = verify_generation(
                target, state.generation, config, wait=verify_wait, stop=stop
            )
            summary.verify = result
            if not result.ok:
                first = (result.missing or result.extra)[:FIRST_KEYS]
                what = (
                    f"{len(result.missing):,} item(s) missing"
                    if result.missing
                    else f"{len(result.extra):,} document(s) no item has"
                )
                raise BuildFailed(
                    f"generation {state.generation!r} does not match the table: {what}; "
                    f"first ids: {', '.join(repr(i) for i in first)}",
                    hint="the serving generation is unchanged; see the dead-letter queue, "
                    "then 'ddbsearch reindex' retries, or 'ddbsearch reindex --abort'",
                )
            _refresh(transport, state.generation)
            swap(transport, target.index, state.generation)
            summary.swapped = True
            state.phase, state.swapped_at = "swapped", time.time()
            state.save(path)
            events.step(f"{target.index} now reads {state.generation}")

        # phase "swapped": the old generations are out of the aliases; drop them
        # once no handler can still be writing them.
        old = [n for n in state.previous if n not in (target.index, state.generation)]
        if state.keep_old:
            summary.kept = old
        elif old:
            _wait_until(
                (state.swapped_at or time.time()) + retire_seconds,
                stop,
                events,
                "letting the stream handlers stop writing " + ", ".join(old),
            )
            for name in old:
                retire(transport, target.index, name)  # a no-op after the swap, unless re-added
                drop(transport, target.index, name)
                summary.dropped.append(name)
            events.step("dropped " + ", ".join(old))
    except KeyboardInterrupt:
        raise Aborted(
            "reindex interrupted",
            hint="run 'ddbsearch reindex' again to continue, or 'reindex --abort'",
        ) from None
    except Aborted as exc:
        raise Aborted(
            exc.message.replace("backfill", "reindex fill"),
            hint="run 'ddbsearch reindex' again to continue, or 'reindex --abort'",
        ) from None
    finally:
        summary.seconds = time.monotonic() - started
    path.unlink(missing_ok=True)
    fill_checkpoint_path(target, state.generation).unlink(missing_ok=True)
    return summary


def _switch_fill(
    target: Target, state: ReindexState, choice: export_load.FillChoice, export_arn: str | None
) -> None:
    """A fill method asked for when continuing: kept unless an export load is running."""
    if choice.export:
        export_load.require_loader(target)
    if choice.method != state.fill and state.fill == "export":
        current = _our_load(target, state)
        if current is not None and current[1].running:
            raise InputError(
                f"the fill of {state.generation!r} is an export load that is still running",
                hint="run 'ddbsearch reindex' to follow it, or 'ddbsearch reindex --abort'",
            )
    state.fill = choice.method
    if export_arn is not None:
        state.export_arn = export_arn


def _our_load(target: Target, state: ReindexState) -> tuple[LoadRecord, LoadProgress] | None:
    """The recorded export load, when it was started for this reindex's generation."""
    record = export_load.read_record(target)
    if (
        record is None
        or list(record.generations) != [state.generation]
        or record.started_at < state.started_at
    ):
        return None
    current = export_load.progress(target, record)
    return None if current is None else (record, current)


def _export_fill(
    target: Target,
    state: ReindexState,
    *,
    path: Path,
    table: TableInfo,
    events: ReindexEvents,
    stop: threading.Event,
    max_concurrency: int | None,
    poll: float | None,
) -> LoadProgress:
    """Fill the building generation from an export: start the load (or attach to the one
    this reindex started, or resume it), follow it to its end; raise unless it succeeded.

    The load writes the building generation only; it outlives this process (Ctrl-C,
    ``stop``): running ``reindex`` again attaches to it.
    """
    gen = state.generation
    ours = _our_load(target, state)
    if ours is not None and ours[1].state == "SUCCEEDED" and not ours[1].files_failed:
        events.step(f"the export load into {gen} has finished")
        return ours[1]
    if state.export_arn is None and (
        ours is None or not (ours[1].running or ours[1].state == "INTERRUPTED")
    ):
        events.step(f"exporting table {table.name} to fill {gen} (no read capacity used)")
    started = export_load.start_or_attach(
        target,
        export_arn=state.export_arn,
        max_concurrency=max_concurrency,
        generations=(gen,),
        not_before=state.settle_until,
    )
    record = started.record
    state.load_run = record.run_dir or record.execution_arn
    state.save(path)
    if started.resumed:
        events.step(f"resumed the interrupted export load into {gen} (finished files are kept)")
    elif started.attached:
        events.step(f"attached to the export load into {gen}, still running")
    elif record.kind == "aws":
        events.step(f"filling {gen} from export {record.export_arn} on AWS (Step Functions)")
    else:
        events.step(f"filling {gen} from {record.files} export file(s) in the local map runner")
    events.step(
        "the load goes on if this command stops: 'ddbsearch reindex' attaches again, "
        "'ddbsearch reindex --abort' cancels it"
    )
    current = export_load.progress(target, record)
    done = current.items_done if current is not None else 0
    total = record.items or table.item_count
    events.fill_start(total, done)

    def advance(p: LoadProgress) -> None:
        nonlocal done
        if p.items_done > done:
            events.progress(p.items_done - done)
            done = p.items_done

    try:
        final = export_load.follow(
            target, record, on_progress=advance, poll=poll, until=stop.is_set
        )
    except KeyboardInterrupt:
        final = None
    if final is None or final.running:
        raise Aborted(
            f"reindex interrupted; the export load into {gen} goes on without this command"
        )
    if final.state == "SUCCEEDED" and not final.files_failed:
        return final
    if final.state == "INTERRUPTED":
        raise Aborted(f"the export load into {gen} was interrupted (its runner stopped)")
    failed = ", ".join(sorted(final.failures)[:FIRST_KEYS])
    why = f"{final.files_failed} export file(s) failed" + (f" ({failed})" if failed else "")
    raise BuildFailed(
        f"generation {gen!r} cannot be built: the export load ended {final.state.lower()}: "
        + (why if final.files_failed else (final.error or "no detail")),
        hint="the serving generation is unchanged; 'ddbsearch reindex' loads again "
        "(or fill with --scan), 'ddbsearch reindex --abort' drops it",
    )


_REJECTION = re.compile(r"^(PERMANENT: )?[a-z][a-z0-9_]*: ")


def _model_refusal(reason: str) -> bool:
    """A row the document model refuses in every generation (reserved names, depth, ...).

    OpenSearch's rejections read ``<error type>: ...`` (core/bulk.py builds them);
    the model's own reasons never start that way.
    """
    return _REJECTION.match(reason) is None


@_holding_the_lock("run 'ddbsearch reindex --abort' again")
def abort_reindex(
    target: Target,
    *,
    retire_seconds: float = RETIRE_GRACE_SECONDS,
    events: ReindexEvents | None = None,
    stop: threading.Event | None = None,
) -> ReindexSummary:
    """Drop the building generation; the serving one stays exactly as it is.

    Refused once the alias was swapped (run ``reindex`` to finish). The building
    generation leaves the building alias at once (the stream stops writing it
    within its cache time) and is deleted after ``retire_seconds``. Raises BusyError
    (exit 15) while a reindex of the same target runs (stop it first).
    """
    events = events or ReindexEvents()
    stop = stop or threading.Event()
    started = time.monotonic()
    transport = _transport(target)
    path = state_path(target)
    state = ReindexState.load(path)
    summary = ReindexSummary(index=target.index, aborted=True)
    if state is not None and state.phase == "swapped":
        raise InputError(
            f"the reindex of {target.index!r} already swapped to {state.generation!r}",
            hint="run 'ddbsearch reindex' to finish it",
        )
    gens = _generations(transport, target)
    building = [g for g in gens if g.building]
    if state is not None and state.generation not in {g.name for g in building}:
        gone = next((g for g in gens if g.name == state.generation and not g.live), None)
        if gone is not None:
            building.append(gone)  # retired by an earlier --abort that did not finish
    if not building:
        path.unlink(missing_ok=True)
        summary.seconds = time.monotonic() - started
        return summary
    summary.load = _cancel_load(target, {g.name for g in building}, events)
    for gen in building:
        retire(transport, target.index, gen.name)
    summary.generation = building[0].name
    events.step(f"{', '.join(g.name for g in building)} no longer written by the stream")
    if state is None:
        state = ReindexState(target.index, building[0].name, [], "settling", time.time())
    state.settle_until = time.time() + retire_seconds
    state.save(path)
    try:
        _wait_until(state.settle_until, stop, events, "letting the stream handlers stop")
    except KeyboardInterrupt:
        raise Aborted("abort interrupted", hint="run 'ddbsearch reindex --abort' again") from None
    for gen in building:
        drop(transport, target.index, gen.name)
        summary.dropped.append(gen.name)
        fill_checkpoint_path(target, gen.name).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    summary.seconds = time.monotonic() - started
    return summary


def _cancel_load(target: Target, names: set[str], events: ReindexEvents) -> LoadProgress | None:
    """Stop the export load filling one of these generations, if one is running."""
    record = export_load.read_record(target)
    if record is None or not names & set(record.generations):
        return None
    current = export_load.progress(target, record)
    if current is None or not (current.running or current.state == "INTERRUPTED"):
        return None
    final = export_load.cancel(target)
    events.step(f"cancelled the export load into {', '.join(record.generations)}")
    return final


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class LifecycleInfo:
    """What status says about the index's generations."""

    serving: str | None
    config: GenerationConfig | None
    building: str | None
    legacy: bool

    @property
    def id_scheme(self) -> str:
        return self.config.id_scheme if self.config else "key-name"

    def describe(self) -> str:
        if self.serving is None:
            return "no index yet (the first batch or deploy creates generation 1)"
        text = f"serving {self.serving}: {describe_config(self.config)}"
        if self.building:
            text += f"; reindex in progress into {self.building}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "serving": self.serving,
            "legacy": self.legacy,
            "id_scheme": self.id_scheme,
            "configuration": self.config.to_meta() if self.config else None,
            "building": self.building,
            "reindex_in_progress": self.building is not None,
        }


def lifecycle_info(target: Target) -> LifecycleInfo:
    gens = _generations(_transport(target), target)
    serving = next((g for g in gens if g.serving), None)
    building = next((g for g in gens if g.building), None)
    return LifecycleInfo(
        serving=serving.name if serving else None,
        config=serving.config if serving else None,
        building=building.name if building else None,
        legacy=bool(serving and serving.legacy),
    )


__all__ = [
    "BuildFailed",
    "LifecycleInfo",
    "ReindexEvents",
    "ReindexState",
    "ReindexSummary",
    "SchemaOptions",
    "VerifyResult",
    "abort_reindex",
    "describe_config",
    "lifecycle_info",
    "plan_config",
    "read_mapping",
    "run_reindex",
    "verify_generation",
]
