"""Is the pipeline healthy? One report over the table, stream, index, event source
mapping, lag, dead-letter queue and handler errors.

Every check runs even when another fails, and a check that cannot reach its service
fails with the reason instead of stopping the report: ``status`` is what you run when
something is wrong. The exception is DynamoDB itself being unreachable or refusing the
credentials: then every check would fail the same way, so that error is raised.

Counts are compared but a difference only warns: DynamoDB's ItemCount is approximate
(refreshed about every six hours) and writes in flight are normal; when the count is
exact (the local stack, small tables) the label says so.

The table, index, counts and dead-letter queue are checked the same way everywhere
(here); the mapping, lag and handler errors depend on where the pipeline runs:
:mod:`ddbsearch.ops.status.aws` (Lambda, CloudWatch) and
:mod:`ddbsearch.ops.status.local` (the local stream worker's report).
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import ModuleType
from typing import Any

from ddbsearch import clients
from ddbsearch.errors import AuthError, DdbsearchError, NotFoundError, UnreachableError
from ddbsearch.ops import deadletters
from ddbsearch.ops.status import aws, local
from ddbsearch.ops.status.report import Check, State, StatusReport, guard
from ddbsearch.tables import TableInfo, describe_table
from ddbsearch.targets import Target

__all__ = ["Check", "State", "StatusReport", "collect_status"]

DEFAULT_MAX_LAG_SECONDS = 300.0
EXACT_COUNT_LIMIT = 100_000  # locally, count exactly with Scan(Select=COUNT) up to this many
INDEXABLE_VIEWS = frozenset({"NEW_IMAGE", "NEW_AND_OLD_IMAGES"})
DLQ_PEEK_LIMIT = 100  # messages status looks at to tell item records from stream batches

# Where the mapping, lag and handler errors come from, by target kind.
_BACKENDS: dict[str, ModuleType] = {"aws": aws, "local": local}


def _backend(target: Target) -> ModuleType:
    return _BACKENDS[target.kind]


def _table_checks(ddb: Any, target: Target) -> tuple[list[Check], TableInfo | None]:
    try:
        table = describe_table(ddb, target.table)
    except (UnreachableError, AuthError):
        # Nothing else can work either (same network, same credentials): say so
        # once, with its own exit code, instead of timing out on every check.
        raise
    except DdbsearchError as exc:
        reason = str(exc)
        return [
            Check("table", "fail", reason),
            Check("stream", "unknown", "table unavailable"),
        ], None
    table_check = Check(
        "table",
        "ok" if table.status == "ACTIVE" else "warn",
        f"{table.name} is {table.status}",
        {"status": table.status, "billing_mode": table.billing_mode},
    )
    data = {"enabled": table.stream_enabled, "view_type": table.stream_view_type}
    if not table.stream_enabled:
        stream = Check(
            "stream", "fail", "the table's stream is disabled: changes are not indexed", data
        )
    elif table.stream_view_type not in INDEXABLE_VIEWS:
        stream = Check(
            "stream",
            "fail",
            f"stream view type {table.stream_view_type} carries no new images "
            "(needs NEW_AND_OLD_IMAGES or NEW_IMAGE)",
            data,
        )
    else:
        stream = Check("stream", "ok", f"enabled, {table.stream_view_type}", data)
    return [table_check, stream], table


def _count_items(ddb: Any, table: TableInfo, target: Target) -> tuple[int, bool]:
    """(count, exact): Scan(Select=COUNT) for small local tables, else ItemCount."""
    if not _backend(target).EXACT_COUNTS or table.item_count > EXACT_COUNT_LIMIT:
        return table.item_count, False
    total = 0
    kwargs: dict[str, Any] = {"TableName": table.name, "Select": "COUNT"}
    with clients.aws_errors(f"counting table '{table.name}'"):
        while True:
            page = ddb.scan(**kwargs)
            total += int(page["Count"])
            if "LastEvaluatedKey" not in page:
                return total, True
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _index_checks(  # noqa: PLR0911 - one return per state of index and counts
    ddb: Any, table: TableInfo | None, target: Target
) -> list[Check]:
    from ddbsearch.ops.search import count_documents

    try:
        documents = count_documents(target)
    except NotFoundError:
        return [
            Check(
                "index",
                "fail",
                f"index '{target.index}' does not exist: nothing is searchable "
                "(run 'ddbsearch deploy' again to create it, then 'ddbsearch backfill')",
            ),
            Check("counts", "unknown", "index unavailable"),
        ]
    except DdbsearchError as exc:
        return [Check("index", "fail", str(exc)), Check("counts", "unknown", "index unavailable")]
    index = Check(
        "index", "ok", f"{target.index}: {documents:,} documents", {"documents": documents}
    )
    if table is None:
        return [index, Check("counts", "unknown", "table unavailable")]
    try:
        items, exact = _count_items(ddb, table, target)
    except DdbsearchError as exc:
        return [index, Check("counts", "unknown", str(exc))]
    label = "exact" if exact else "approximate, DynamoDB refreshes it about every 6 hours"
    data = {"items": items, "items_exact": exact, "documents": documents}
    summary = f"{items:,} items ({label}), {documents:,} documents"
    if items == documents:
        return [index, Check("counts", "ok", summary, data)]
    if documents == 0 and items > 0:
        return [
            index,
            Check(
                "counts",
                "fail",
                f"the index is empty while the table holds {items:,} items ({label}): "
                "run 'ddbsearch backfill'",
                data,
            ),
        ]
    hint = "; in flight, or run 'ddbsearch verify'" if exact else ""
    return [index, Check("counts", "warn", summary + hint, data)]


def _generations_check(target: Target) -> Check:
    """Which generation serves, with which id scheme and configuration; a reindex running?"""
    from ddbsearch.ops.reindex import lifecycle_info

    info = lifecycle_info(target)
    return Check("generations", "ok", info.describe(), info.to_json())


def _verify_check(target: Target, now: datetime) -> Check:
    """The result and age of the last ``ddbsearch verify`` of this table and index."""
    from ddbsearch.ops.verify_record import load_last_verify

    record = load_last_verify(target)
    if record is None:
        return Check("verify", "unknown", "never verified: 'ddbsearch verify' compares every item")
    age = _age(record.age_seconds(now.timestamp()))
    data = {
        "result": record.result,
        "age_s": round(record.age_seconds(now.timestamp()), 1),
        "drift": record.drift,
        "counts": record.counts,
        "repaired": record.repaired,
    }
    if record.result == "equal":
        return Check("verify", "ok", f"{age} ago: index and table agreed", data)
    counts = ", ".join(f"{n:,} {kind}" for kind, n in sorted(record.counts.items()))
    if record.result == "repaired":
        return Check("verify", "ok", f"{age} ago: {counts}, all repaired", data)
    return Check(
        "verify",
        "warn",
        f"{age} ago: drift ({counts}): run 'ddbsearch verify --repair'",
        data,
    )


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _dlq_check(target: Target) -> Check:
    if not target.dlq_url:
        return Check(
            "dead-letter queue", "unknown", "no dead-letter queue recorded for this target"
        )
    sqs = clients.client(target, "sqs")
    with clients.aws_errors("dead-letter queue"):
        attrs = sqs.get_queue_attributes(
            QueueUrl=target.dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    visible = int(attrs.get("ApproximateNumberOfMessages", 0))
    hidden = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
    depth = visible + hidden
    data: dict[str, Any] = {"messages": depth, "url": target.dlq_url}
    if not depth:
        return Check("dead-letter queue", "ok", "empty", data)
    # Which kind they are decides the repair: look (without consuming) at the first ones.
    letters = deadletters.peek(target, limit=DLQ_PEEK_LIMIT)
    data.update(items=len(letters.items), batch_records=letters.batch_records)
    of = f"; of the first {letters.scanned:,}" if letters.truncated else ""
    parts = []
    if letters.items:
        parts.append(f"{len(letters.items):,} item(s): fix them, then 'ddbsearch redrive'")
    if letters.batch_records:
        parts.append(
            f"{letters.batch_records:,} stream batch(es) the mapping gave up after its retries "
            "(the stream keeps records only 24 hours): run 'ddbsearch verify --repair' "
            "(or 'ddbsearch backfill')"
        )
    detail = (of + ": " + "; ".join(parts)) if parts else ""
    return Check(
        "dead-letter queue",
        "fail",
        f"{depth:,} record(s) could not be indexed and wait in the dead-letter queue{detail}",
        data,
    )


def collect_status(
    target: Target,
    *,
    max_lag_seconds: float = DEFAULT_MAX_LAG_SECONDS,
    now: datetime | None = None,
) -> StatusReport:
    """Run every check against ``target``; a failing component becomes a reason.

    Only when DynamoDB itself cannot be reached or refuses the credentials does this
    raise (UnreachableError, AuthError): then no check could tell anything.
    """
    now = now or datetime.now(timezone.utc)
    report = StatusReport(target)
    ddb = clients.client(target, "dynamodb")
    table_checks, table = _table_checks(ddb, target)
    report.checks.extend(table_checks)
    report.checks.extend(_index_checks(ddb, table, target))
    report.checks.append(guard("generations", lambda: _generations_check(target)))
    report.checks.extend(_backend(target).pipeline_checks(target, table, max_lag_seconds, now))
    report.checks.append(guard("dead-letter queue", lambda: _dlq_check(target)))
    report.checks.append(guard("verify", lambda: _verify_check(target, now)))
    load = guard("export load", lambda: _export_load_check(target))
    if load.state != "unknown":  # shown only when a load was recorded
        report.checks.append(load)
    return report


def _export_load_check(target: Target) -> Check:
    """The recorded export load: running or finished (ok), interrupted or failed (warn)."""
    from ddbsearch.ops import export_load

    current = export_load.progress(target)
    if current is None:
        return Check("export load", "unknown", "no export load recorded")
    done = f"{current.files_done}/{current.files_total} files, {current.items_done:,} items"
    if current.running:
        eta = current.eta_seconds
        summary = f"running: {done}, {current.items_per_second:,.0f} items/s" + (
            f", ETA {eta / 60:,.0f} min" if eta is not None else ""
        )
        state: State = "ok"
    elif current.state == "SUCCEEDED" and not current.files_failed:
        summary, state = f"finished: {done}", "ok"
    else:
        failed = f", {current.files_failed} file(s) failed" if current.files_failed else ""
        summary, state = f"{current.state.lower()}: {done}{failed}", "warn"
    return Check("export load", state, summary, current.to_json())
