"""`verify` against real emulators: drift made on purpose is found exactly, repaired once,
and nothing is written without --repair (table and index seeded directly, no pipeline)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.bulk import BulkIndexer
from ddbsearch.core.documents import action_from_item, backfill_version, document_id
from ddbsearch.core.transport import SearchTransport
from ddbsearch.errors import ExitCode
from ddbsearch.ops.verify import run_verify
from ddbsearch.ops.verify_record import load_last_verify
from ddbsearch.targets import Target

pytestmark = pytest.mark.integration

KEYS = ["userId", "transactionId"]


def _item(user: int, tx: str, text: str = "coffee") -> dict[str, Any]:
    return {
        "userId": {"N": str(user)},
        "transactionId": {"S": tx},
        "amount": {"N": "11.5"},
        "shortDescription": {"S": text},
    }


def _seed(target: Target, n: int) -> tuple[Any, SearchTransport, list[dict[str, Any]]]:
    ddb = boto3.client("dynamodb", endpoint_url=target.aws_endpoint, region_name="us-east-1")
    search = SearchTransport(target.search_endpoint, sigv4=False)
    items = [_item(i % 7, f"tx{i:04d}", f"purchase {i}") for i in range(n)]
    for start in range(0, n, 25):
        ddb.batch_write_item(
            RequestItems={
                target.table: [{"PutRequest": {"Item": it}} for it in items[start : start + 25]]
            }
        )
    old = backfill_version(time.time() - 3600)  # indexed "an hour ago"
    report = BulkIndexer(search, target.index, refresh=True).run(
        [action_from_item(it, KEYS, old) for it in items], deadline=time.monotonic() + 60
    )
    assert report.count(report.results[0].outcome) == n
    return ddb, search, items


def _put_doc(search: SearchTransport, index: str, doc_id: str, doc: Any, version: int) -> None:
    resp = search.json(
        "PUT",
        f"/{index}/_doc/{quote(doc_id, safe='')}?version={version}&version_type=external_gte"
        "&refresh=true",
        doc,
    )
    assert resp.status < 300, resp.body


def _make_drift(
    target: Target, ddb: Any, search: SearchTransport, items: list[dict[str, Any]]
) -> dict[str, set[str]]:
    ids = [document_id({k: it[k] for k in KEYS}) for it in items]
    old = backfill_version(time.time() - 3600)
    # missing: documents deleted behind the pipeline's back
    for doc_id in ids[:2]:
        resp = search.request("DELETE", f"/{target.index}/_doc/{quote(doc_id, safe='')}")
        assert resp.status < 300
    # stale: altered content at the document's own version
    _put_doc(search, target.index, ids[2], {"userId": 2, "transactionId": "tx0002"}, old)
    # older: the item changed, the index kept the previous content
    changed = dict(items[3], shortDescription={"S": "refunded"})
    ddb.put_item(TableName=target.table, Item=changed)
    # orphan: a document for an item that does not exist
    ghost = document_id({"userId": {"N": "99"}, "transactionId": {"S": "ghost"}})
    _put_doc(search, target.index, ghost, {"userId": 99, "transactionId": "ghost"}, old)
    # unindexable: an item the document model rejects (a dot in a name)
    bad = dict(_item(5, "bad"), **{"a.b": {"S": "x"}})
    ddb.put_item(TableName=target.table, Item=bad)
    search.request("POST", f"/{target.index}/_refresh")
    return {
        "missing": set(ids[:2]),
        "stale": {ids[2], ids[3]},
        "orphan": {ghost},
        "unindexable": {document_id({k: bad[k] for k in KEYS})},
    }


def _found(report: Any, diffs: list[Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for d in diffs:
        out.setdefault(d.kind, set()).add(d.doc_id)
    return out


def test_verify_finds_exactly_the_drift_and_repairs_it(ops_target: Callable[..., Target]) -> None:
    target = ops_target(keys=(("userId", "N"), ("transactionId", "S")))
    ddb, search, items = _seed(target, 120)

    clean = run_verify(target, settle_seconds=0.1)
    assert clean.result == "equal"
    assert (clean.items, clean.documents) == (120, 120)
    assert clean.index_read == "point in time"

    expected = _make_drift(target, ddb, search, items)
    before = search.json("POST", f"/{target.index}/_search", {"size": 0}).json()

    diffs: list[Any] = []
    report = run_verify(target, settle_seconds=0.1, page_size=17, on_difference=diffs.append)
    assert _found(report, diffs) == expected
    assert report.result == "drift"
    assert report.drift == 6
    unindexable = next(d for d in diffs if d.kind == "unindexable")
    assert unindexable.reason is not None
    assert "dot" in unindexable.reason
    # Without --repair nothing was written.
    after = search.json("POST", f"/{target.index}/_search", {"size": 0}).json()
    assert after["hits"]["total"] == before["hits"]["total"]
    record = load_last_verify(target)
    assert record is not None
    assert (record.result, record.drift) == ("drift", 6)

    repaired: list[Any] = []
    fixed = run_verify(target, repair=True, settle_seconds=0.1, on_difference=repaired.append)
    outcomes = {d.doc_id: d.repair for d in repaired}
    assert {outcomes[i] for i in expected["missing"] | expected["stale"]} == {"indexed"}
    (ghost,) = expected["orphan"]
    (bad,) = expected["unindexable"]
    assert outcomes[ghost] == "deleted"
    assert outcomes[bad] is not None
    assert outcomes[bad].startswith("not repairable")
    assert fixed.result == "drift"  # the rejected item cannot be repaired from the index side
    assert fixed.repaired == 5

    ddb.delete_item(TableName=target.table, Key={k: _item(5, "bad")[k] for k in KEYS})
    again = run_verify(target, settle_seconds=0.1)
    assert again.result == "equal", again.to_json()


def test_verify_cli_exit_codes_and_json_lines(ops_target: Callable[..., Target]) -> None:
    target = ops_target(keys=(("userId", "N"), ("transactionId", "S")))
    _ddb, search, items = _seed(target, 30)
    runner = CliRunner()

    ok = runner.invoke(app, ["verify", "--settle", "0.1"])
    assert ok.exit_code == 0, ok.output

    doc_id = document_id({k: items[0][k] for k in KEYS})
    search.request("DELETE", f"/{target.index}/_doc/{quote(doc_id, safe='')}?refresh=true")
    drift = runner.invoke(app, ["verify", "--settle", "0.1", "--json"])
    assert drift.exit_code == ExitCode.DRIFT, drift.output
    lines = [json.loads(line) for line in drift.stdout.splitlines()]
    assert lines[0] == {"type": "difference", "kind": "missing", "id": doc_id}
    assert lines[-1]["type"] == "summary"
    assert lines[-1]["counts"]["missing"] == 1

    repaired = runner.invoke(app, ["verify", "--settle", "0.1", "--repair"])
    assert repaired.exit_code == ExitCode.REPAIRED, repaired.output
    assert runner.invoke(app, ["verify", "--settle", "0.1"]).exit_code == 0


def test_explain_verdicts(ops_target: Callable[..., Target]) -> None:
    from ddbsearch.ops.explain import explain

    target = ops_target(keys=(("userId", "N"), ("transactionId", "S")))
    ddb, search, items = _seed(target, 10)
    expected = _make_drift(target, ddb, search, items)

    def verdict(*key: str) -> Any:
        return explain(target, list(key), settle_seconds=0)

    ok = verdict("userId=5", "transactionId=tx0005")
    assert (ok.state, ok.verdict) == ("searchable", "searchable")
    assert ok.item_present
    assert ok.item_attributes == 4
    assert ok.item_values is None
    assert ok.doc_present
    assert ok.differing_fields == []

    missing = verdict('{"userId": {"N": "0"}, "transactionId": {"S": "tx0000"}}')
    assert missing.state == "missing"
    assert "verify --repair" in missing.verdict

    stale = verdict('{"userId": 3, "transactionId": "tx0003"}')
    assert stale.state == "stale"
    assert stale.verdict == "stale: the index holds an older version — `ddbsearch verify --repair`"
    assert stale.differing_fields == ["shortDescription"]
    altered = verdict("userId=2", "transactionId=tx0002")
    assert set(altered.differing_fields) == {"amount", "shortDescription"}

    orphan = verdict("userId=99", "transactionId=ghost")
    assert orphan.state == "orphan"
    assert not orphan.item_present
    assert orphan.doc_present

    bad = verdict("userId=5", "transactionId=bad")
    assert bad.state == "unindexable"
    assert "dot" in bad.verdict
    assert bad.doc_id in expected["unindexable"]

    absent = verdict("userId=1", "transactionId=nope")
    assert absent.state == "absent"
    assert absent.consistent

    shown = explain(target, ["userId=5", "transactionId=tx0005"], show_values=True)
    assert shown.item_values is not None
    assert shown.item_values["shortDescription"] == "purchase 5"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["userId=3"], "missing key attribute transactionId"),
        (["userId=x", "transactionId=a"], "userId"),
        (["amount=3", "userId=3", "transactionId=a"], "'amount' is not a key attribute"),
        (['{"userId": 3, "transactionId": "a", "x": 1}'], "x is not key attribute"),
        (["userId"], "is not NAME=VALUE"),
    ],
)
def test_explain_rejects_bad_keys(
    ops_target: Callable[..., Target], args: list[str], message: str
) -> None:
    ops_target(keys=(("userId", "N"), ("transactionId", "S")))
    result = CliRunner().invoke(app, ["explain", *args])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert message in result.output


def test_explain_cli(ops_target: Callable[..., Target]) -> None:
    target = ops_target(keys=(("userId", "N"), ("transactionId", "S")))
    _seed(target, 3)
    runner = CliRunner()
    ok = runner.invoke(app, ["explain", "userId=1", "transactionId=tx0001", "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["verdict"] == "searchable"
    assert "values" not in data["item"]
    gone = runner.invoke(app, ["explain", "userId=1", "transactionId=tx9999", "--settle", "0"])
    assert gone.exit_code == 0, gone.output
    assert "not in the table" in gone.output


def _check(target: Target, name: str) -> Any:
    from ddbsearch.ops.status import collect_status

    return next(c for c in collect_status(target).checks if c.name == name)


def test_status_shows_the_last_verify(ops_target: Callable[..., Target]) -> None:
    target = ops_target(keys=(("userId", "N"), ("transactionId", "S")))
    _ddb, search, items = _seed(target, 5)
    never = _check(target, "verify")
    assert never.state == "unknown"
    assert "never verified" in never.summary

    run_verify(target, settle_seconds=0.1)
    agreed = _check(target, "verify")
    assert agreed.state == "ok"
    assert agreed.summary.endswith("ago: index and table agreed")

    doc_id = document_id({k: items[0][k] for k in KEYS})
    search.request("DELETE", f"/{target.index}/_doc/{quote(doc_id, safe='')}?refresh=true")
    run_verify(target, settle_seconds=0.1)
    drift = _check(target, "verify")
    assert drift.state == "warn"
    assert "drift (1 missing): run 'ddbsearch verify --repair'" in drift.summary
    assert drift.data["result"] == "drift"


def test_status_names_the_repair_for_an_empty_or_missing_index(
    ops_target: Callable[..., Target],
) -> None:
    target = ops_target(keys=(("userId", "N"), ("transactionId", "S")))
    ddb = boto3.client("dynamodb", endpoint_url=target.aws_endpoint, region_name="us-east-1")
    ddb.put_item(TableName=target.table, Item=_item(1, "a"))
    counts = _check(target, "counts")
    assert counts.state == "fail"
    assert counts.summary == (
        "the index is empty while the table holds 1 items (exact): run 'ddbsearch backfill'"
    )

    missing = ops_target(keys=(("userId", "N"), ("transactionId", "S")), index=False)
    index = _check(missing, "index")
    assert index.state == "fail"
    assert "does not exist" in index.summary
    assert "'ddbsearch backfill'" in index.summary


def test_status_tells_item_dead_letters_from_stream_batches_given_up(
    ops_target: Callable[..., Target],
) -> None:
    from dataclasses import replace

    target = ops_target(keys=(("userId", "N"), ("transactionId", "S")))
    sqs = boto3.client("sqs", endpoint_url=target.aws_endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"dlq-{target.index}")["QueueUrl"]
    item_record = {"source": "ddbsearch", "reason": "x", "documentId": "a|1", "keys": {}}
    batch_record = {"requestContext": {}, "DDBStreamBatchInfo": {"batchSize": 3}}
    for body in (item_record, batch_record):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    dlq = _check(replace(target, dlq_url=url), "dead-letter queue")
    assert dlq.state == "fail"
    assert dlq.summary == (
        "2 record(s) could not be indexed and wait in the dead-letter queue: "
        "1 item(s): fix them, then 'ddbsearch redrive'; 1 stream batch(es) the mapping gave "
        "up after its retries (the stream keeps records only 24 hours): run "
        "'ddbsearch verify --repair' (or 'ddbsearch backfill')"
    )
    # Looked at, not consumed: both are still there and visible.
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"
    ]
    assert attrs["ApproximateNumberOfMessages"] == "2"


def test_verify_and_explain_follow_the_serving_generations_configuration(
    ops_target: Callable[..., Target],
) -> None:
    """Excluded attributes are not drift, ids follow the key schema, and with a version
    attribute an index behind the item's own version is reported as older."""
    from ddbsearch.core.generations import GenerationConfig
    from ddbsearch.core.lifecycle import create_first_generation
    from ddbsearch.ops.explain import explain

    target = ops_target(keys=(("userId", "N"), ("transactionId", "S")), index=False)
    search = SearchTransport(target.search_endpoint, sigv4=False)
    config = GenerationConfig.create(key_schema=KEYS, exclude=["secret"], version_attribute="v")
    assert create_first_generation(search, target.index, config)
    ddb = boto3.client("dynamodb", endpoint_url=target.aws_endpoint, region_name="us-east-1")
    items = [{**_item(i, f"tx{i}"), "secret": {"S": "pin"}, "v": {"N": "3"}} for i in range(6)]
    for it in items:
        ddb.put_item(TableName=target.table, Item=it)
    indexer = BulkIndexer(search, target.index, refresh=True)
    indexer.run(
        [action_from_item(it, KEYS, 0, config) for it in items], deadline=time.monotonic() + 60
    )
    assert run_verify(target, settle_seconds=0.1).result == "equal"

    newer = {**items[0], "shortDescription": {"S": "edited"}, "v": {"N": "4"}}
    ddb.put_item(TableName=target.table, Item=newer)
    unversioned = {k: v for k, v in _item(9, "tx9").items()}
    ddb.put_item(TableName=target.table, Item=unversioned)
    found: list[Any] = []
    report = run_verify(target, settle_seconds=0.1, on_difference=found.append)
    kinds = {d.doc_id: d.kind for d in found}
    assert kinds == {"0|tx0": "older", "9|tx9": "unindexable"}  # ids in key-schema order
    assert report.counts["older"] == 1
    assert next(d for d in found if d.kind == "unindexable").reason == (
        "version attribute 'v' is missing"
    )

    older = explain(target, ["userId=0", "transactionId=tx0"], settle_seconds=0)
    assert older.state == "stale"
    assert older.doc_version == 3
    assert older.differing_fields == ["shortDescription", "v"]
    ok = explain(target, ["userId=1", "transactionId=tx1"], settle_seconds=0)
    assert ok.verdict == "searchable"
    assert ok.excluded == ["secret"]
    assert "exclude secret" in ok.generation
    assert "version attribute v" in ok.generation

    fixed = run_verify(target, repair=True, settle_seconds=0.1)
    assert fixed.repairs["indexed"] == 1
    doc = search.request("GET", f"/{target.index}/_doc/0%7Ctx0").json()
    assert doc["_version"] == 4  # the item's own version, as the stream would write it
    assert "secret" not in doc["_source"]


def test_verify_honours_excluded_attributes_and_repairs_documents_that_carry_them(
    ops_target: Callable[..., Target],
) -> None:
    """A generation that excludes attributes: documents without them are not stale; a
    document that carries one (written by an older configuration, or by hand) is stale,
    and --repair rewrites it without the attribute."""
    from ddbsearch.core.generations import GenerationConfig
    from ddbsearch.core.lifecycle import create_first_generation
    from ddbsearch.ops.explain import explain

    target = ops_target(keys=(("userId", "N"), ("transactionId", "S")), index=False)
    search = SearchTransport(target.search_endpoint, sigv4=False)
    config = GenerationConfig.create(key_schema=KEYS, exclude=["secret", "profile.ssn"])
    assert create_first_generation(search, target.index, config)
    ddb = boto3.client("dynamodb", endpoint_url=target.aws_endpoint, region_name="us-east-1")
    profile = {"M": {"city": {"S": "Oslo"}, "ssn": {"S": "010203-12345"}}}
    items = [
        {**_item(i, f"tx{i}"), "secret": {"S": "pin"}, "profile": profile} for i in range(5)
    ] + [_item(5, "tx5")]  # one item without any excluded attribute
    for it in items:
        ddb.put_item(TableName=target.table, Item=it)
    old = backfill_version(time.time() - 3600)
    actions = [action_from_item(it, KEYS, old, config) for it in items]
    assert all("secret" not in (a.document or {}) for a in actions)
    BulkIndexer(search, target.index, refresh=True).run(actions, deadline=time.monotonic() + 60)
    # The documents lack the excluded attributes the items have: that is not drift.
    assert run_verify(target, settle_seconds=0.1).result == "equal"

    # Documents that carry excluded attributes, at their own versions: an older
    # configuration's top-level attribute, and a nested path written by hand.
    with_secret = {"userId": 1, "transactionId": "tx1", "amount": 11.5}
    with_secret |= {"shortDescription": "coffee", "profile": {"city": "Oslo"}, "secret": "pin"}
    _put_doc(search, target.index, "1|tx1", with_secret, old)
    with_ssn = {"userId": 2, "transactionId": "tx2", "amount": 11.5, "shortDescription": "coffee"}
    with_ssn["profile"] = {"city": "Oslo", "ssn": "010203-12345"}
    _put_doc(search, target.index, "2|tx2", with_ssn, old)

    found: list[Any] = []
    report = run_verify(target, settle_seconds=0.1, on_difference=found.append)
    assert {d.doc_id: d.kind for d in found} == {"1|tx1": "stale", "2|tx2": "stale"}
    assert report.result == "drift"
    stale = explain(target, ["userId=1", "transactionId=tx1"], settle_seconds=0)
    assert stale.state == "stale"
    assert stale.differing_fields == ["secret"]
    assert stale.excluded == ["secret", "profile.ssn"]
    nested = explain(target, ["userId=2", "transactionId=tx2"], settle_seconds=0)
    assert nested.differing_fields == ["profile.ssn"]

    fixed = run_verify(target, repair=True, settle_seconds=0.1)
    assert fixed.result == "repaired"
    assert fixed.repairs["indexed"] == 2
    for doc_id in ("1|tx1", "2|tx2"):
        source = search.request("GET", f"/{target.index}/_doc/{quote(doc_id, safe='')}").json()[
            "_source"
        ]
        assert "secret" not in source
        assert source["profile"] == {"city": "Oslo"}
    assert run_verify(target, settle_seconds=0.1).result == "equal"
