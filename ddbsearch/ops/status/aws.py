"""Status checks of an AWS pipeline: the mapping from Lambda (GetEventSourceMapping),
lag from the ``IteratorAge`` metric (maximum over the last 5 minutes) and handler
errors from the ``Errors`` metric (sum over the last hour).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ddbsearch import clients
from ddbsearch.ops.status.report import Check, guard
from ddbsearch.tables import TableInfo
from ddbsearch.targets import Target

# Counts on AWS come from DynamoDB's ItemCount (approximate).
EXACT_COUNTS = False


def pipeline_checks(
    target: Target, table: TableInfo | None, max_lag: float, now: datetime
) -> list[Check]:
    """The event source mapping, the lag and the handler errors."""
    return [
        guard("event source mapping", lambda: _aws_mapping(target, table)),
        guard("lag", lambda: _aws_lag(target, max_lag, now)),
        guard("handler errors", lambda: _aws_errors(target, now)),
    ]


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
