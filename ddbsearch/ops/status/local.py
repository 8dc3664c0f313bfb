"""Status checks of the local stack: the mapping, lag and handler errors come from the
report the table's stream worker writes (:class:`ddbsearch.local.state.MappingStatus`).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ddbsearch import clients
from ddbsearch.local import state
from ddbsearch.local.state import MappingStatus
from ddbsearch.ops.status.report import Check, guard
from ddbsearch.tables import TableInfo
from ddbsearch.targets import Target

LOCAL_REPORT_MAX_AGE_SECONDS = 15.0  # the local worker rewrites its report every second
# Local tables are small: count them exactly (Scan, Select=COUNT).
EXACT_COUNTS = True


def pipeline_checks(
    target: Target, table: TableInfo | None, max_lag: float, now: datetime
) -> list[Check]:
    """The mapping, lag and handler errors, from the local stream worker's report."""
    root = Path(target.root) if target.root else state.default_root()
    path = state.status_path(root, target.table)
    report = state.read_mapping_status(root, target.table)
    try:
        written = path.stat().st_mtime
    except OSError:
        report = None
    if report is not None:
        if report.updated_at is not None:
            written = min(written, float(report.updated_at))
        age = time.time() - written
    else:
        reason = f"no stream worker reports for table '{target.table}'"
        hint = " (is the local stack running? 'ddbsearch deploy --local')"
        return [
            Check("event source mapping", "fail", reason + hint),
            Check("lag", "unknown", "no report from the local stream worker"),
            Check("handler errors", "unknown", "no report from the local stream worker"),
        ]
    stats = report.stats
    mapping_state = report.state
    data = {"state": mapping_state, "report_age_s": round(age, 1), "stats": stats}
    if mapping_state == "Failed":
        mapping = Check("event source mapping", "fail", f"Failed: {report.error}", data)
    elif age > LOCAL_REPORT_MAX_AGE_SECONDS:
        mapping = Check(
            "event source mapping",
            "fail",
            f"the local stream worker has not reported for {age:,.0f} s "
            "(is the local stack running?)",
            data,
        )
    elif mapping_state != "Enabled":
        mapping = Check("event source mapping", "fail", mapping_state, data)
    else:
        last = stats.get("last_error")
        summary = f"Enabled (local worker), {stats.get('invocations', 0):,} invocations"
        mapping = Check(
            "event source mapping", "ok", summary + (f", last error: {last}" if last else ""), data
        )
    lag = guard("lag", lambda: _local_lag(target, report, max_lag))
    errors = int(stats.get("function_errors", 0) or 0)
    # Counted since the local stack started (not a time window): warn, do not fail.
    errors_check = Check(
        "handler errors",
        "warn" if errors else "ok",
        f"{errors:,} function error(s) since the local stack started" if errors else "none",
        {"function_errors": errors},
    )
    return [mapping, lag, errors_check]


def _local_lag(target: Target, report: MappingStatus, max_lag: float) -> Check:
    """Iterator age locally: how old the oldest record the worker has not finished is.

    The worker's report holds its per-shard checkpoints; the first record after each
    checkpoint (read from the emulated stream) gives the age, as IteratorAge does on AWS.
    """
    if report.iterator_age_s is not None:  # the worker measured it itself
        age = float(report.iterator_age_s)
    elif report.idle:
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


def _oldest_unprocessed_age(target: Target, report: MappingStatus) -> float | None:
    stream_arn = report.stream_arn
    if not isinstance(stream_arn, str):
        return None
    checkpoints = report.checkpoints
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
