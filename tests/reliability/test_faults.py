"""Targeted faults that the random suite reaches only by chance, each with its proof.

- Records the event source mapping gives up (retries exhausted during a long
  outage) are not lost silently: the on-failure record names their stream range,
  the oracle finds exactly those documents missing, and a backfill repairs them.
- The search backend failing the index check at a cold start: the batch fails
  (today as a function error), is retried, and the index converges.
- An invocation that outlives the function timeout is killed, the next one starts
  cold, and the batch is retried.
"""

from __future__ import annotations

from typing import Any

import pytest

from ddbsearch.core.documents import document_id
from ddbsearch.testing.faultproxy import Fault

pytestmark = pytest.mark.integration


def _item(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"p{n}"}, "sk": {"N": str(n)}, "v": {"N": str(n * 10)}}


def test_records_given_up_are_named_and_a_backfill_repairs_them(pipeline: Any) -> None:
    """As deployed, the mapping's on-failure destination is the dead-letter queue too:
    the queue then mixes ddbsearch's item records with the mapping's range records.
    Redrive resolves the first kind and leaves the second for backfill."""
    from ddbsearch.ops.backfill import run_backfill
    from ddbsearch.ops.redrive import redrive

    p = pipeline(
        batch_size=3,
        timeout=3.0,
        worker_settings={"maximum_retry_attempts": 1},
        failures_to_dlq=True,
    )
    for n in range(4):
        p.ddb.put_item(TableName=p.table, Item=_item(n))
    p.ddb.put_item(TableName=p.table, Item={**_item(99), "a.b": {"S": "dotted"}})
    p.drain()
    assert p.diff().ok

    p.proxy.inject(*[Fault("status", status=503)] * 10_000)  # the domain is down
    for n in range(4, 10):
        p.ddb.put_item(TableName=p.table, Item=_item(n))
    p.drain()
    p.proxy.clear()

    given_up = sum(d["DDBStreamBatchInfo"]["batchSize"] for d in p.discarded)
    assert given_up == 6
    assert {d["requestContext"]["condition"] for d in p.discarded} == {"RetryAttemptsExhausted"}
    diff = p.diff(on_purpose=True)
    lost = {document_id({"pk": _item(n)["pk"], "sk": _item(n)["sk"]}) for n in range(4, 10)}
    assert set(diff.missing) == lost, "the oracle sees exactly the given-up records"
    assert not diff.unexpected
    assert not diff.different

    # Fix the dotted item, then redrive the old dead letters: the item record is
    # resolved, the mapping's range records stay (they name no item).
    p.ddb.put_item(TableName=p.table, Item=_item(99))
    p.drain()
    report = redrive(p.target())
    assert report.batch_records == len(p.discarded)
    assert report.indexed + report.stale == 1
    assert report.still_failing == []
    left = p.dead_letters()
    assert len(left) == len(p.discarded)
    assert all("DDBStreamBatchInfo" in m for m in left)

    summary = run_backfill(p.target(), segments=1)
    assert summary.complete
    assert p.diff().ok
    p.stats["faults"]["records_given_up"] += given_up
    p.stats["tests"]["faults"] += 1


def test_backend_failing_the_index_check_at_cold_start(pipeline: Any) -> None:
    # Faults on every path (HEAD /index, the template, _bulk), not only _bulk.
    p = pipeline(batch_size=10, timeout=3.0, proxy_prefix="/")
    p.proxy.fail_next(3, status=503)
    for n in range(5):
        p.ddb.put_item(TableName=p.table, Item=_item(n))
    p.drain()
    assert p.proxy.pending == 0
    # Today a function error (the handler raises); a partial failure would do as well.
    assert p.worker.stats.function_errors + p.worker.stats.partial_failures >= 1
    assert p.discarded == []
    assert p.diff().ok
    p.stats["tests"]["faults"] += 1


def test_an_invocation_over_the_function_timeout_is_killed_and_retried(pipeline: Any) -> None:
    # The cold start's index check (no per-request deadline of its own) hangs past
    # the function timeout: the runtime kills the process, like Lambda's timeout.
    p = pipeline(batch_size=10, timeout=2.0, proxy_prefix="/")
    p.proxy.delay_next(3.0)
    for n in range(5):
        p.ddb.put_item(TableName=p.table, Item=_item(n))
    p.drain()
    assert p.worker.stats.function_errors >= 1
    assert p.function.cold_starts >= 2, "a timed-out environment is not reused"
    assert p.discarded == []
    assert p.diff().ok
    p.stats["faults"]["function_timeout"] += 1
    p.stats["tests"]["faults"] += 1
