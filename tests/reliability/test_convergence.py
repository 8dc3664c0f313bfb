"""Convergence under faults: random histories of writes, checked against the table.

Each hypothesis example is a fresh pipeline (moto table + stream, SQS dead-letter
queue, the built zip in a clean process, the stream worker, a fault proxy in front
of osmem) driven through a few *rounds*. A round writes a random batch of puts,
updates and deletes (every DynamoDB type, nested maps and lists, adversarial keys,
some items invalid by construction) while one fault happens (backend outage,
worker restart from its checkpoint file, function process killed mid-request, a
request slower than the invocation's budget, replay from TRIM_HORIZON, a backfill
beside the writes, a redrive of the dead-letter queue), then lets the
pipeline drain; throughout, the proxy also injects random 429s, 503s, dropped
connections and per-item rejections. After every round and at the end:

- the index equals the table exactly (``ddbsearch.testing.oracle``: same ids, same
  documents, compared as canonical JSON);
- the dead-letter queue holds only records that were invalid by construction,
  each with the reason its kind implies, and every one not yet resolved by a
  redrive;
- the worker discarded nothing and no log line carries item contents.

Rounds start in a new second and touch each key once, except "burst" rounds that
change some keys several times within one second (versions have one-second
resolution, see docs/reliability.md); the kill and slow faults, whose held
request lands late, only happen in rounds without bursts (the stated limit),
where an update that creates its item is made as a put (moto streams two
records for it, DynamoDB one: see ``_write``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ddbsearch.core.documents import document_id
from ddbsearch.core.transport import SearchTransport

pytestmark = pytest.mark.integration

SENTINEL = "S3NT1NEL-convergence-9c1e"

# ----------------------------------------------------------------------------- keys

# pk (S) x sk (N): separators and escapes inside values, a 2,048-byte partition key
# (DynamoDB's maximum: the id is hashed), multi-byte text at the limit, extreme numbers.
VALID_KEYS: list[tuple[str, str]] = [
    ("plain", "1"),
    ("a|b", "2"),
    ("a", "2"),  # with ("a|b", "2") above: must not collide
    ("a\\|b", "2"),
    ("a\\", "3"),
    ("|", "-1"),
    ("\\", "0"),
    ("x" * 2048, "1"),
    ("é" * 1024, "12345678901234567890123456789012345678"),
    ("tiny", "1E-130"),
    ("huge", "9.9999999999999999999999999999999999999E+125"),
    ("neg", "-12345678901234567890123456789012345678"),
]


def key_av(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": sk}}


# ----------------------------------------------------------------------------- values
# Attribute names say their kind (s0 is always a string, n1 always a number, ...),
# so valid items never conflict with the index's mapping; conflicts are made on
# purpose below.

NUMBERS = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "3.14",
            "0.1",
            "12345678901234567890123456789012345678",
            "-12345678901234567890123456789012345678",
            "1E-130",
            "-1E-130",
            "9.9999999999999999999999999999999999999E+125",
            "-9.9999999999999999999999999999999999999E+125",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "1.5E+20",
        ]
    ),
    st.integers(-(10**15), 10**15).map(str),
    st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False).map(str),
)
TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    st.sampled_from(["|", "\\", "a.b", "_id", "é", "🙂", SENTINEL, f"x {SENTINEL} y"]),
)
BYTES = st.binary(min_size=1, max_size=8)


def _unique_numbers(values: list[str]) -> list[str]:
    seen: dict[Decimal, str] = {}
    for v in values:
        seen.setdefault(Decimal(v), v)
    return list(seen.values())


def _leaf(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return {
        "s": TEXT.map(lambda v: {"S": v}),
        "n": NUMBERS.map(lambda v: {"N": v}),
        "b": BYTES.map(lambda v: {"B": v}),
        "t": st.booleans().map(lambda v: {"BOOL": v}),
        "z": st.just({"NULL": True}),
        "ss": st.lists(TEXT, min_size=1, max_size=4, unique=True).map(lambda v: {"SS": v}),
        "ns": st.lists(NUMBERS, min_size=1, max_size=4)
        .map(_unique_numbers)
        .map(lambda v: {"NS": v}),
        "bs": st.lists(BYTES, min_size=1, max_size=3, unique=True).map(lambda v: {"BS": v}),
        "ln": st.lists(
            st.one_of(NUMBERS.map(lambda v: {"N": v}), st.just({"NULL": True})), max_size=4
        ).map(lambda v: {"L": v}),
        "ls": st.lists(TEXT.map(lambda v: {"S": v}), max_size=4).map(lambda v: {"L": v}),
        "ll": st.lists(
            st.lists(NUMBERS.map(lambda v: {"N": v}), max_size=3).map(lambda v: {"L": v}),
            max_size=3,
        ).map(lambda v: {"L": v}),
    }[kind]


LEAF_KINDS = ["s", "n", "b", "t", "z", "ss", "ns", "bs", "ln", "ls", "ll"]


@st.composite
def attributes(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    kinds = LEAF_KINDS + (["m", "lo", "lm"] if depth < 3 else ["lm"])
    chosen = draw(st.lists(st.sampled_from(kinds), min_size=0, max_size=5))
    out: dict[str, Any] = {}
    for kind in chosen:
        name = f"{kind}{draw(st.integers(0, 2))}"
        if kind == "m":
            out[name] = {"M": draw(attributes(depth + 1))}
        elif kind == "lo":
            maps = draw(st.lists(attributes(depth + 1), max_size=3))
            out[name] = {"L": [{"M": m} for m in maps]}
        elif kind == "lm":
            # Mixed-type list: always a string and a number, plus anything.
            extra = draw(st.lists(st.sampled_from(LEAF_KINDS).flatmap(_leaf), max_size=3))
            first = [draw(_leaf("s")), draw(_leaf("n"))]
            if depth < 3 and draw(st.booleans()):
                extra.append({"M": draw(attributes(depth + 1))})
            out[name] = {"L": first + extra}
        else:
            out[name] = draw(_leaf(kind))
    return out


# ----------------------------------------------------------------------------- ops

INVALID_KINDS = {
    # kind: (extra attributes, the reason the dead-letter message must carry)
    "dotted": ({"a.b": {"S": SENTINEL}}, "invalid_document: attribute name 'a.b' contains a dot"),
    "reserved": ({"_id": {"S": SENTINEL}}, "invalid_document: reserved field name '_id'"),
    "conflict": (
        {"conflict": {"S": f"not a number {SENTINEL}"}},
        "mapper_parsing_exception: field 'conflict' (mapped as double) cannot take",
    ),
}
FAULTS = ["none", "outage", "restart", "kill", "slow", "replay", "backfill", "redrive"]
# Faults after which a held request reaches the index late (see _one_change_per_key).
LATE_WRITES = ("kill", "slow")


@dataclass(frozen=True)
class Op:
    kind: str  # put | update | delete | invalid | fix
    key: int
    attrs: dict[str, Any] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    invalid: str = ""  # invalid: which kind of invalid item
    mode: str = "put"  # fix: put a valid item over the bad one, or delete it


@st.composite
def ops(draw: st.DrawFn) -> Op:
    kind = draw(st.sampled_from(["put", "put", "update", "update", "delete", "invalid", "fix"]))
    key = draw(st.integers(0, len(VALID_KEYS) - 1))
    if kind == "put":
        return Op(kind, key, draw(attributes()))
    if kind == "fix":
        return Op(kind, key, draw(attributes()), mode=draw(st.sampled_from(["put", "delete"])))
    if kind == "update":
        attrs = draw(attributes().filter(bool))
        names = [f"{k}{i}" for k in LEAF_KINDS for i in range(3)]
        remove = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
        return Op(kind, key, attrs, tuple(n for n in remove if n not in attrs))
    if kind == "invalid":
        return Op(kind, key, draw(attributes()), invalid=draw(st.sampled_from(list(INVALID_KINDS))))
    return Op(kind, key)


@dataclass(frozen=True)
class Round:
    ops: list[Op]
    fault: str


rounds = st.builds(
    Round, ops=st.lists(ops(), min_size=4, max_size=16), fault=st.sampled_from(FAULTS)
)


# ----------------------------------------------------------------------------- model


@dataclass
class Model:
    """What the test knows about the bad keys: which are invalid now, which letters are due."""

    bad_keys: list[tuple[str, str]] = field(default_factory=list)
    fixable: int = 0  # bad keys made before the current round
    state: dict[str, str] = field(default_factory=dict)  # doc id -> valid | absent | <kind>
    # (doc id, reason) of every invalid record written, and of those not redriven yet.
    all_letters: set[tuple[str, str]] = field(default_factory=set)
    due_letters: set[tuple[str, str]] = field(default_factory=set)

    def conflicts(self) -> set[str]:
        """Ids whose current item the model accepts but the index rejects."""
        return {i for i, s in self.state.items() if s == "conflict"}


def _write(p: Any, op: Op, model: Model, *, late: bool = False) -> None:
    """Make ``op`` in the table. ``late``: a round whose held request lands late.

    moto (5.2.5) streams an UpdateItem that creates its item as two INSERT
    records in one second: the keys alone (its internal put_item), then the
    item; DynamoDB streams one. Equal versions, and the keys-only record is the
    older: held in a late request it lands after the full one and wins the tie
    (the documented same-second limit the late rounds avoid by construction).
    So in those rounds such an update is made as the put of the same item, the
    one record DynamoDB would send.
    """
    stats = p.stats["operations"]
    if op.kind == "invalid":
        pk = f"bad#{len(model.bad_keys)}|{SENTINEL[:4]}"
        keys = key_av(pk, "0")
        model.bad_keys.append((pk, "0"))
        extra, reason = INVALID_KINDS[op.invalid]
        p.ddb.put_item(TableName=p.table, Item={**op.attrs, **extra, **keys})
        doc_id = document_id(keys)
        model.state[doc_id] = op.invalid
        model.all_letters.add((doc_id, reason))
        model.due_letters.add((doc_id, reason))
        stats[f"put_invalid_{op.invalid}"] += 1
        return
    if op.kind == "fix":
        # Only keys made bad in an earlier round: in the same batch the fix would
        # supersede the bad record before it is ever dead-lettered.
        if not model.fixable:
            return
        keys = key_av(*model.bad_keys[op.key % model.fixable])
    else:
        keys = key_av(*VALID_KEYS[op.key])
    doc_id = document_id(keys)
    if op.kind == "put" or (op.kind == "fix" and op.mode == "put"):
        p.ddb.put_item(TableName=p.table, Item={**op.attrs, **keys})
        model.state[doc_id] = "valid"
        stats["put"] += 1
    elif op.kind == "update" and late and model.state.get(doc_id) != "valid":
        p.ddb.put_item(TableName=p.table, Item={**op.attrs, **keys})
        model.state[doc_id] = "valid"
        stats["update_creating"] += 1
    elif op.kind == "update":
        names = {f"#a{i}": n for i, n in enumerate(op.attrs)}
        values = {f":v{i}": v for i, v in enumerate(op.attrs.values())}
        expr = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(op.attrs)))
        if op.remove:
            names.update({f"#r{i}": n for i, n in enumerate(op.remove)})
            expr += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(op.remove)))
        p.ddb.update_item(
            TableName=p.table,
            Key=keys,
            UpdateExpression=expr,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        model.state[doc_id] = "valid"
        stats["update"] += 1
    else:
        p.ddb.delete_item(TableName=p.table, Key=keys)
        model.state[doc_id] = "absent"
        stats["delete"] += 1


def _next_second(after: float) -> None:
    """Wait until the clock is in a later whole second than ``after`` (versions' resolution)."""
    target = int(after) + 1
    while time.time() < target:
        time.sleep(target - time.time() + 0.001)


def _backfill_while_writing(p: Any, writes: list[Op], model: Model) -> None:
    """``ddbsearch.ops.backfill`` (two parallel segments, small pages, through the fault
    proxy) with the round's writes made between its Scan reads and its bulk writes.
    """
    from ddbsearch.ops.backfill import run_backfill

    pending = list(writes)
    lock = threading.Lock()

    def write_next(segment: int, page: Any) -> None:
        with lock:
            if pending:
                _write(p, pending.pop(0), model)

    summary = run_backfill(p.target(), segments=2, page_size=3, after_read=write_next)
    for op in pending:
        _write(p, op, model)
    assert summary.complete
    p.stats["operations"]["backfill_rows"] += summary.scanned


def _redrive(p: Any, model: Model) -> None:
    from ddbsearch.ops.redrive import redrive

    report = redrive(p.target(), transport=SearchTransport(p.proxy.url, sigv4=False))
    p.stats["operations"]["redriven"] += report.received
    # Letters whose item is valid or gone now are resolved and leave the queue.
    model.due_letters = {
        (i, r) for i, r in model.due_letters if model.state.get(i) not in ("valid", "absent")
    }


def _outage(p: Any, seed: int, probability: float, seconds: float) -> None:
    """The search backend fails every bulk (dropped connections, 503s), then recovers."""
    from ddbsearch.testing.faultproxy import Fault

    p.proxy.clear()
    p.proxy.inject(*[Fault("drop"), Fault("status", status=503)] * 5000)
    p.stats["faults"]["backend_outage"] += 1
    p.step_for(seconds)
    p.proxy.clear()
    p.proxy.random_faults(seed, probability)


def _check(p: Any, model: Model) -> list[dict[str, Any]]:
    diff = p.diff(exclude=model.conflicts())
    assert diff.ok, diff.summary()
    letters = p.dead_letters()
    found = {(d["documentId"], d["reason"]) for d in letters}
    for doc_id, reason in found:
        assert any(doc_id == i and reason.startswith(r) for i, r in model.all_letters), (
            f"unexpected dead letter for {doc_id[:60]!r}: {reason}"
        )
    for doc_id, reason in model.due_letters:
        assert any(doc_id == i and r.startswith(reason) for i, r in found), (
            f"missing dead letter for {doc_id[:60]!r}: {reason}"
        )
    assert all(d["source"] == "ddbsearch" and d["sequenceNumber"] for d in letters)
    assert p.discarded == [], "the worker gave records up"
    return letters


def _one_change_per_key(todo: list[Op]) -> list[Op]:
    seen: set[tuple[str, int]] = set()
    out = []
    for op in todo:
        slot = ("bad", 0) if op.kind == "fix" else ("key", op.key)
        if op.kind == "invalid" or slot not in seen:
            out.append(op)
            seen.add(slot)
    return out


def _run(p: Any, plan: list[Round], seed: int, probability: float) -> None:
    model = Model()
    p.proxy.random_faults(seed, probability)
    last_write = time.time()
    p.stats["plans"].append([rnd.fault for rnd in plan])
    for n, rnd in enumerate(plan):
        todo = rnd.ops
        if rnd.fault in LATE_WRITES:  # no same-second changes to one key around a late write
            todo = _one_change_per_key(todo)
        _next_second(last_write)
        model.fixable = len(model.bad_keys)
        if rnd.fault == "backfill":
            p.stats["faults"]["backfill_during_writes"] += 1
            _backfill_while_writing(p, todo, model)
        else:
            for op in todo:
                _write(p, op, model, late=rnd.fault in LATE_WRITES)
        last_write = time.time()
        if rnd.fault == "outage":
            _outage(p, seed + n, probability, seconds=2.5)
        elif rnd.fault == "restart":
            p.step_for(0.2)
            p.restart_worker()
            p.stats["faults"]["worker_restart"] += 1
        elif rnd.fault == "kill":
            killer, _ = p.kill_function_during_next_bulk()
            p.drain()
            killer.join(timeout=30)
        elif rnd.fault == "slow":
            # Slower than the invocation's budget: the handler's request times out,
            # the batch is retried, and the held request still lands, late.
            p.hold_next_bulk(p.function.config.timeout_seconds)
            p.stats["faults"]["request_timeout"] += 1
        p.drain()
        if rnd.fault == "replay":
            p.replay()
            p.stats["faults"]["replay_from_trim_horizon"] += 1
        elif rnd.fault == "redrive":
            _redrive(p, model)
            p.stats["faults"]["redrive"] += 1
        _check(p, model)
    # Quiescence: faults off, a last replay of everything, then the final comparison.
    p.proxy.clear()
    p.settle()  # every late write has landed: none may have overwritten a newer change
    _check(p, model)
    p.replay()
    letters = _check(p, model)
    # At-least-once: retries and replays may dead-letter one record more than once.
    distinct = {(d["documentId"], d["reason"]) for d in letters}
    p.stats["dead_letters_expected"] += len(model.due_letters)
    p.stats["dead_letters_found"] += len(letters)
    p.stats["dead_letters_distinct"] += len(distinct)

    log = p.function_log() + "\n".join(p.worker_log.lines)
    assert SENTINEL not in log, "item contents reached a log line"
    assert "batch processed" in log


# Every type at once, for the explicit example below.
EVERY_TYPE: dict[str, Any] = {
    "s0": {"S": f"a|b\\c {SENTINEL}"},
    "n0": {"N": "12345678901234567890123456789012345678"},
    "n1": {"N": "1E-130"},
    "n2": {"N": "9.9999999999999999999999999999999999999E+125"},
    "b0": {"B": b"\x00\xff"},
    "t0": {"BOOL": False},
    "z0": {"NULL": True},
    "ss0": {"SS": ["b", SENTINEL]},
    "ns0": {"NS": ["2", "-1.5", "1E-130"]},
    "bs0": {"BS": [b"\x02", b"\x01"]},
    "lm0": {"L": [{"S": "x"}, {"N": "1"}, {"BOOL": True}, {"M": {"s0": {"S": "y"}}}]},
    "ll0": {"L": [{"L": [{"N": "1"}]}, {"L": [{"N": "2"}, {"NULL": True}]}]},
    "m0": {"M": {"m1": {"M": {"lo0": {"L": [{"M": {"n0": {"N": "3"}}}]}}}}},
}
# One round per fault kind, so every run exercises each of them at least once.
TOUR = [
    Round(
        [
            Op("put", n % len(VALID_KEYS), EVERY_TYPE),
            Op("update", (n + 3) % len(VALID_KEYS), {"s1": {"S": "u"}}, ("n0",)),
            Op("invalid", 0, {"s0": {"S": "x"}}, invalid=list(INVALID_KINDS)[n % 3]),
            Op("fix", n, {"n1": {"N": "5"}}, mode="put" if n % 2 else "delete"),
            Op("delete", (n + 5) % len(VALID_KEYS)),
            Op("put", 7, {"n0": {"N": str(n)}}),  # the 2,048-byte partition key
        ],
        fault,
    )
    for n, fault in enumerate(FAULTS)
]


@settings(
    derandomize=True,
    max_examples=8,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    plan=st.lists(rounds, min_size=2, max_size=4),
    seed=st.integers(0, 2**16),
    probability=st.sampled_from([0.1, 0.25, 0.4]),
)
@example(plan=TOUR, seed=1, probability=0.25)
# An update that creates its item, fourth in a slow round: made as an update,
# moto's keys-only record of it would ride in the held bulk and land last (_write).
@example(
    plan=[
        Round(
            [Op("put", 0), Op("put", 1), Op("put", 2), Op("update", 8, {"s0": {"S": "u"}})],
            "slow",
        )
    ],
    seed=0,
    probability=0.0,
)
def test_index_converges_to_the_table_under_faults(
    pipeline: Any, plan: list[Round], seed: int, probability: float
) -> None:
    p: Any = pipeline(batch_size=4, timeout=3.0, mapping={"conflict": {"type": "double"}})
    try:
        _run(p, plan, seed, probability)
    finally:
        p.stats["tests"]["convergence_examples"] += 1
        p.close()


def test_binary_sort_keys_at_the_size_limit_converge(pipeline: Any) -> None:
    """B keys reach the handler base64-encoded (stream events) and the oracle as bytes
    (Scan): both must give one id. Sort keys at DynamoDB's 1,024-byte limit, bytes that
    spell the id separators, a partition key with both."""
    p = pipeline(sort_key="B", batch_size=3)
    p.proxy.random_faults(seed=11, probability=0.3)
    sort_keys = [b"\x00", b"|", b"\\|", b"\xff" * 1024, bytes(range(256)) * 4]
    for n, sk in enumerate(sort_keys):
        for pk in ("a|b", "a\\", "x" * 1024):
            keys = {"pk": {"S": pk}, "sk": {"B": sk}}
            p.ddb.put_item(TableName=p.table, Item={**keys, "n": {"N": str(n)}, **EVERY_TYPE})
    p.ddb.delete_item(TableName=p.table, Key={"pk": {"S": "a|b"}, "sk": {"B": b"|"}})
    p.drain()
    p.replay()
    p.proxy.clear()
    diff = p.diff()
    assert diff.ok, diff.summary()
    assert diff.compared == len(sort_keys) * 3 - 1
    assert sum(i.startswith("sha256:") for i in p.index_documents()) >= len(sort_keys)
    p.stats["operations"]["put"] += len(sort_keys) * 3
    p.stats["operations"]["delete"] += 1
    p.stats["tests"]["binary_keys"] += 1
