"""The built zip, run in a clean process, indexes real stream records from moto into
osmem through a proxy that injects 503s, dropped connections and per-item 429s.

This is the handler's end-to-end proof: what the stream says ends up in the index
exactly, invalid items go to the dead-letter queue with their reason, the log
holds counts only, and nothing in the zip needs the development environment.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from ddbsearch.core.documents import document_id, to_document
from ddbsearch.core.stream import Settings
from ddbsearch.core.transport import SearchTransport
from ddbsearch.local.runtime import FunctionConfig, LocalFunction
from ddbsearch.local.worker import MappingConfig, StreamWorker
from ddbsearch.packaging import build_lambda_zip
from ddbsearch.testing.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

SENTINEL = "S3NT1NEL-item-content"


def _items() -> list[dict[str, Any]]:
    return [
        {
            "pk": {"S": "user#1"},
            "sk": {"N": "1"},
            "text": {"S": f"mega test {SENTINEL}"},
            "big": {"N": "12345678901234567890123456789012345678"},
            "tiny": {"N": "1E-130"},
            "huge": {"N": "9.9999999999999999999999999999999999999E+125"},
            "flag": {"BOOL": True},
            "nothing": {"NULL": True},
            "blob": {"B": b"\x00\xff"},
            "tags": {"SS": ["b", "a"]},
            "nums": {"NS": ["2", "1.5"]},
            "blobs": {"BS": [b"\x01", b"\x02"]},
            "mixed": {"L": [{"N": "1"}, {"S": "one"}, {"M": {"k": {"BOOL": False}}}]},
            "nested": {"M": {"a": {"M": {"b": {"L": [{"N": "1"}, {"N": "2"}]}}}}},
        },
        {"pk": {"S": "a|b"}, "sk": {"N": "2"}, "text": {"S": "separator in key"}},
        {"pk": {"S": "a"}, "sk": {"N": "2"}, "text": {"S": "plain"}, "n": {"N": "7.25"}},
        {"pk": {"S": "x" * 1000}, "sk": {"N": "3"}, "text": {"S": "long key, hashed id"}},
        {"pk": {"S": "gone"}, "sk": {"N": "4"}, "text": {"S": "deleted later"}},
        # Invalid by construction: a dotted attribute name.
        {"pk": {"S": "bad"}, "sk": {"N": "5"}, "a.b": {"S": SENTINEL}},
    ]


def test_stream_records_through_the_zip_converge_despite_faults(
    moto_endpoint: str, osmem_base: str, tmp_path: Path
) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint)
    table = f"t-{uuid.uuid4().hex[:8]}"
    index = f"i-{uuid.uuid4().hex[:8]}"
    desc = ddb.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    stream_arn = desc["TableDescription"]["LatestStreamArn"]
    dlq_url = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    for item in _items():
        ddb.put_item(TableName=table, Item=item)
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}, "sk": {"N": "2"}},
        UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": "text"},
        ExpressionAttributeValues={":t": {"S": "plain, updated"}},
    )
    ddb.delete_item(TableName=table, Key={"pk": {"S": "gone"}, "sk": {"N": "4"}})

    zip_path = build_lambda_zip(tmp_path / "indexer.zip")
    log_path = tmp_path / "function.log"
    with FaultProxy(osmem_base) as proxy:
        proxy.fail_next(1, status=503)
        proxy.drop_next(1)
        proxy.reject_items_next(1, status=429, every=2)
        function = LocalFunction(
            FunctionConfig(
                zip_path=zip_path,
                timeout_seconds=60,
                environment={
                    **Settings(
                        endpoint=proxy.url, index=index, region=None, dlq_url=dlq_url, sigv4=False
                    ).to_environment(),
                    "AWS_ENDPOINT_URL": moto_endpoint,
                },
            ),
            work_dir=tmp_path / "fn",
            log_path=log_path,
        )
        # Small batches so the faults land on different invocations.
        worker = StreamWorker(
            MappingConfig(stream_arn=stream_arn, batch_size=3),
            boto3.client("dynamodbstreams", endpoint_url=moto_endpoint),
            function,
        )
        try:
            worker.run_until_idle(timeout=60)
        finally:
            function.close()
        assert proxy.pending == 0, "every planned fault was exercised"

    search = SearchTransport(osmem_base, sigv4=False)
    search.request("POST", f"/{index}/_refresh")
    hits = search.json("POST", f"/{index}/_search", {"size": 100}).json()["hits"]["hits"]
    indexed = {h["_id"]: h["_source"] for h in hits}

    rows = ddb.scan(TableName=table)["Items"]
    expected = {
        document_id({"pk": r["pk"], "sk": r["sk"]}): to_document(r) for r in rows if "a.b" not in r
    }
    assert indexed == expected
    assert len(expected) == 4
    assert any(i.startswith("sha256:") for i in indexed)

    messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"]
    dead = [json.loads(m["Body"]) for m in messages]
    assert [d["reason"] for d in dead] == ["invalid_document: attribute name 'a.b' contains a dot"]
    assert dead[0]["keys"] == {"pk": {"S": "bad"}, "sk": {"N": "5"}}

    log_text = log_path.read_text()
    assert SENTINEL not in log_text
    lines = [json.loads(x) for x in log_text.splitlines() if x.startswith("{")]
    batches = [x for x in lines if x.get("message") == "batch processed"]
    assert sum(b["records"] for b in batches) >= 8
    assert sum(b["retries"] for b in batches) >= 3
    assert sum(b["dead_lettered"] for b in batches) == 1
