"""Is the pipeline healthy? One report over the table, stream, index, event source
mapping, lag, dead-letter queue and handler errors.

Every check runs even when another fails, and a check that cannot reach its service
fails with the reason instead of stopping the report: ``status`` is what you run when
something is wrong. The exception is DynamoDB itself being unreachable or refusing the
credentials: then every check would fail the same way, so that error is raised.

Counts are compared but a difference only warns: DynamoDB's ItemCount is approximate
(refreshed about every six hours) and writes in flight are normal; when the count is
exact (the local stack, small tables) the label says so.

On AWS the mapping comes from Lambda (GetEventSourceMapping), lag from the
``IteratorAge`` metric (maximum over the last 5 minutes) and handler errors from the
``Errors`` metric (sum over the last hour). Locally they come from the report the
local stack's stream worker writes every second (``mappings/<table>.status.json``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from ddbsearch import clients
from ddbsearch.errors import AuthError, DdbsearchError, UnreachableError
from ddbsearch.tables import TableInfo, describe_table
from ddbsearch.targets import Target, local_state_file

State = Literal["ok", "warn", "fail", "unknown"]

DEFAULT_MAX_LAG_SECONDS = 300.0
EXACT_COUNT_LIMIT = 100_000  # locally, count exactly with Scan(Select=COUNT) up to this many
LOCAL_REPORT_MAX_AGE_SECONDS = 15.0  # the local worker rewrites its report every second
INDEXABLE_VIEWS = frozenset({"NEW_IMAGE", "NEW_AND_OLD_IMAGES"})


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
            },
            "checks": [asdict(c) for c in self.checks],
        }


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except DdbsearchError as exc:
        return Check(name, "fail", str(exc))


# --------------------------------------------------------------------------- checks


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
    if target.kind != "local" or table.item_count > EXACT_COUNT_LIMIT:
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


def _index_checks(ddb: Any, table: TableInfo | None, target: Target) -> list[Check]:
    from ddbsearch.ops.search import count_documents

    try:
        documents = count_documents(target)
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
    hint = "; in flight, or run 'ddbsearch backfill'" if exact else ""
    return [index, Check("counts", "warn", summary + hint, data)]


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
    data = {"messages": depth, "url": target.dlq_url}
    if depth:
        return Check(
            "dead-letter queue",
            "fail",
            f"{depth:,} record(s) could not be indexed and wait in the dead-letter queue",
            data,
        )
    return Check("dead-letter queue", "ok", "empty", data)


# --- AWS: Lambda and CloudWatch


def _aws_mapping(target: Target, table: TableInfo | None) -> Check:
    lam = clients.client(target, "lambda")
    with clients.aws_errors("event source mapping"):
        if target.event_source_mapping_uuid:
            esm = lam.get_event_source_mapping(UUID=target.event_source_mapping_uuid)
        elif target.function_name and table is not None and table.stream_arn:
            found = lam.list_event_source_mappings(
                FunctionName=target.function_name, EventSourceArn=table.stream_arn
            )["EventSourceMappings"]
            if not found:
                return Check(
                    "event source mapping",
                    "fail",
                    f"no mapping from the table's stream to {target.function_name}",
                )
            esm = found[0]
        else:
            return Check("event source mapping", "unknown", "no mapping recorded for this target")
    state = str(esm.get("State", "unknown"))
    result = str(esm.get("LastProcessingResult", "") or "")
    data = {"state": state, "last_processing_result": result, "uuid": esm.get("UUID")}
    summary = f"{state}, last result: {result or 'none yet'}"
    if state in ("Creating", "Enabling", "Updating"):
        return Check("event source mapping", "warn", summary, data)
    if state != "Enabled":
        reason = esm.get("StateTransitionReason")
        return Check(
            "event source mapping", "fail", summary + (f" ({reason})" if reason else ""), data
        )
    if result.startswith("PROBLEM"):
        return Check("event source mapping", "fail", summary, data)
    return Check("event source mapping", "ok", summary, data)


def _metric(
    target: Target, name: str, statistic: str, window: timedelta, now: datetime
) -> float | None:
    cw = clients.client(target, "cloudwatch")
    with clients.aws_errors(f"CloudWatch {name}"):
        points = cw.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName=name,
            Dimensions=[{"Name": "FunctionName", "Value": target.function_name}],
            StartTime=now - window,
            # One period past now: the current, partial minute counts too.
            EndTime=now + timedelta(seconds=60),
            Period=60,
            Statistics=[statistic],
        )["Datapoints"]
    values = [float(p[statistic]) for p in points if statistic in p]
    if not values:
        return None
    return max(values) if statistic == "Maximum" else sum(values)


def _aws_lag(target: Target, max_lag: float, now: datetime) -> Check:
    if not target.function_name:
        return Check("lag", "unknown", "no function recorded for this target")
    age_ms = _metric(target, "IteratorAge", "Maximum", timedelta(minutes=5), now)
    if age_ms is None:
        return Check(
            "lag", "ok", "no records in the last 5 minutes (idle)", {"iterator_age_s": None}
        )
    age = age_ms / 1000
    data = {"iterator_age_s": age, "max_lag_s": max_lag}
    summary = f"iterator age {age:,.1f} s (max over 5 min)"
    return Check("lag", "fail" if age > max_lag else "ok", summary, data)


def _aws_errors(target: Target, now: datetime) -> Check:
    if not target.function_name:
        return Check("handler errors", "unknown", "no function recorded for this target")
    errors = _metric(target, "Errors", "Sum", timedelta(hours=1), now) or 0.0
    data = {"errors_last_hour": int(errors)}
    if errors:
        return Check(
            "handler errors", "fail", f"{int(errors):,} invocation error(s) in the last hour", data
        )
    return Check("handler errors", "ok", "none in the last hour", data)


# --- local stack: the stream worker's report


def local_report_path(table: str) -> Path:
    return local_state_file().parent / "mappings" / f"{table}.status.json"


def _local_checks(target: Target, max_lag: float) -> list[Check]:
    path = local_report_path(target.table)
    try:
        report = json.loads(path.read_text())
        updated = report.get("updated_at")
        written = path.stat().st_mtime
        if isinstance(updated, (int, float)):
            written = min(written, float(updated))
        age = time.time() - written
    except (FileNotFoundError, ValueError):
        reason = f"no stream worker reports for table '{target.table}'"
        hint = " (is the local stack running? 'ddbsearch deploy --local')"
        return [
            Check("event source mapping", "fail", reason + hint),
            Check("lag", "unknown", "no report from the local stream worker"),
            Check("handler errors", "unknown", "no report from the local stream worker"),
        ]
    stats = report.get("stats") or {}
    state = str(report.get("state", "unknown"))
    data = {"state": state, "report_age_s": round(age, 1), "stats": stats}
    if state == "Failed":
        mapping = Check("event source mapping", "fail", f"Failed: {report.get('error')}", data)
    elif age > LOCAL_REPORT_MAX_AGE_SECONDS:
        mapping = Check(
            "event source mapping",
            "fail",
            f"the local stream worker has not reported for {age:,.0f} s "
            "(is the local stack running?)",
            data,
        )
    elif state != "Enabled":
        mapping = Check("event source mapping", "fail", state, data)
    else:
        last = stats.get("last_error")
        summary = f"Enabled (local worker), {stats.get('invocations', 0):,} invocations"
        mapping = Check(
            "event source mapping", "ok", summary + (f", last error: {last}" if last else ""), data
        )
    lag = _guard("lag", lambda: _local_lag(target, report, max_lag))
    errors = int(stats.get("function_errors", 0) or 0)
    # Counted since the local stack started (not a time window): warn, do not fail.
    errors_check = Check(
        "handler errors",
        "warn" if errors else "ok",
        f"{errors:,} function error(s) since the local stack started" if errors else "none",
        {"function_errors": errors},
    )
    return [mapping, lag, errors_check]


def _local_lag(target: Target, report: dict[str, Any], max_lag: float) -> Check:
    """Iterator age locally: how old the oldest record the worker has not finished is.

    The worker's report holds its per-shard checkpoints; the first record after each
    checkpoint (read from the emulated stream) gives the age, as IteratorAge does on AWS.
    """
    if report.get("iterator_age_s") is not None:  # the worker measured it itself
        age = float(report["iterator_age_s"])
    elif report.get("idle") is True:
        age = 0.0
    else:
        measured = _oldest_unprocessed_age(target, report)
        if measured is None:
            return Check("lag", "unknown", "the local stream worker reports no stream")
        age = measured
    data = {"iterator_age_s": round(age, 3), "max_lag_s": max_lag}
    if age == 0.0:
        return Check("lag", "ok", "caught up", data)
    return Check("lag", "fail" if age > max_lag else "ok", f"iterator age {age:,.1f} s", data)


def _oldest_unprocessed_age(target: Target, report: dict[str, Any]) -> float | None:
    stream_arn = report.get("stream_arn")
    if not isinstance(stream_arn, str):
        return None
    checkpoints = report.get("checkpoints") or {}
    streams = clients.client(target, "dynamodbstreams")
    oldest: float | None = None
    with clients.aws_errors("reading the local stream"):
        shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            done = checkpoints.get(shard["ShardId"]) or {}
            if done.get("ended"):
                continue
            kwargs: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard["ShardId"]}
            if isinstance(done.get("sequence"), str):
                kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
                kwargs["SequenceNumber"] = done["sequence"]
            else:
                kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            iterator = streams.get_shard_iterator(**kwargs)["ShardIterator"]
            records = streams.get_records(ShardIterator=iterator, Limit=1).get("Records", [])
            if records:
                created = records[0]["dynamodb"]["ApproximateCreationDateTime"]
                stamp = created.timestamp() if isinstance(created, datetime) else float(created)
                oldest = stamp if oldest is None else min(oldest, stamp)
    return 0.0 if oldest is None else max(0.0, time.time() - oldest)


# --------------------------------------------------------------------------- entry point


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
    if target.kind == "local":
        report.checks.extend(_local_checks(target, max_lag_seconds))
    else:
        report.checks.append(_guard("event source mapping", lambda: _aws_mapping(target, table)))
        report.checks.append(_guard("lag", lambda: _aws_lag(target, max_lag_seconds, now)))
        report.checks.append(_guard("handler errors", lambda: _aws_errors(target, now)))
    report.checks.append(_guard("dead-letter queue", lambda: _dlq_check(target)))
    return report
