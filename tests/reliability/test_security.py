"""No item contents in logs, at the pipeline level.

A sentinel value sits in every kind of attribute (string, set, list, nested map,
binary) of valid and invalid items; the pipeline then runs through random
faults, a killed invocation, an outage long enough that the worker gives records
up (on-failure destination) and dead-letter traffic. The sentinel must appear in
no line the function logged, no line the worker logged, no on-failure record and
no dead-letter message.

Elsewhere (not repeated here): tests/unit/test_transport.py proves that signed
requests carry ``Authorization`` (SigV4, service ``es``) and ``X-Amz-Security-Token``;
the Terraform tests hold the IAM and domain-policy assertions (docs/reliability.md).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ddbsearch.testing.faultproxy import Fault

pytestmark = pytest.mark.integration

SENTINEL = "S3NT1NEL-security-77ab"
FORMS = (SENTINEL, base64.b64encode(SENTINEL.encode()).decode())


def _item(n: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"user#{n}"},
        "sk": {"N": str(n)},
        "text": {"S": f"hello {SENTINEL}"},
        "tags": {"SS": [SENTINEL, "b"]},
        "mixed": {"L": [{"S": SENTINEL}, {"N": "1"}, {"M": {"x": {"S": SENTINEL}}}]},
        "nested": {"M": {"deeper": {"M": {"s": {"S": SENTINEL}}}}},
        "blob": {"B": SENTINEL.encode()},
        "blobs": {"BS": [SENTINEL.encode(), b"\x00"]},
    }


def _invalid(n: int) -> dict[str, Any]:
    bad = [
        {"a.b": {"S": SENTINEL}},
        {"_id": {"S": SENTINEL}},
        {"m": {"M": {"x.y": {"S": SENTINEL}}}},
    ]
    return {"pk": {"S": f"bad#{n}"}, "sk": {"N": str(n)}, **bad[n % len(bad)]}


def _assert_clean(text: str, where: str) -> None:
    for form in FORMS:
        assert form not in text, f"item contents in {where}"


def test_item_contents_reach_no_log_line_under_faults(pipeline: Any) -> None:
    p = pipeline(batch_size=5, timeout=3.0, worker_settings={"maximum_retry_attempts": 1})
    p.proxy.random_faults(seed=7, probability=0.5)
    for n in range(12):
        p.ddb.put_item(TableName=p.table, Item=_item(n))
        if n % 4 == 0:
            p.ddb.put_item(TableName=p.table, Item=_invalid(n))
    killer, _ = p.kill_function_during_next_bulk()
    p.drain()
    killer.join(timeout=30)

    # A long outage with one retry allowed: records are given up to the on-failure
    # destination (by position, never by content).
    p.proxy.clear()
    p.proxy.inject(*[Fault("status", status=503)] * 10_000)
    for n in range(12, 16):
        p.ddb.put_item(TableName=p.table, Item=_item(n))
    p.drain()
    p.proxy.clear()

    assert p.discarded, "the outage made the worker give records up"
    letters = p.dead_letters()
    assert letters, "invalid items were dead-lettered"
    function_log = p.function_log()
    assert "batch processed" in function_log
    _assert_clean(function_log, "the function's log")
    _assert_clean("\n".join(p.worker_log.lines), "the worker's log")
    _assert_clean(json.dumps(p.discarded), "an on-failure record")
    _assert_clean(json.dumps(letters), "a dead-letter message")
    p.stats["faults"]["records_given_up"] += sum(
        d["DDBStreamBatchInfo"]["batchSize"] for d in p.discarded
    )
    p.stats["tests"]["security"] += 1
