"""Generations and exact integers against osmem-server: what the mapping promises,
the domain does.

- Numbers map to ``double`` with an exact ``long`` sub-field: integers of 64 bits
  filter exactly on ``<field>.long`` (where ``double`` merges 2^53 and 2^53+1),
  decimals and integers beyond 64 bits are skipped by it, and an attribute mixing
  integers and decimals indexes without a mapping conflict.
- A reindex's moves, driven by the lifecycle functions, with the handler writing:
  a fresh stack gets generation 1 behind the alias; the next generation is built
  with its own configuration while the stream writes both in one ``_bulk``; the
  atomic swap; retire and drop. A legacy concrete index migrates the same way.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest

from ddbsearch.core import lifecycle
from ddbsearch.core.generations import GenerationConfig
from ddbsearch.core.stream import Indexer, Settings
from ddbsearch.core.template import ensure_index
from ddbsearch.core.transport import SearchTransport

pytestmark = pytest.mark.integration

# Partition key, then sort key; key-name order would put the sort key first.
KEYS = ("pk", "at")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def expire(self) -> None:
        self.now += lifecycle.LIVE_SET_TTL_SECONDS + 1


def _record(n: int, event: str, image: dict[str, Any] | None, at: int) -> dict[str, Any]:
    keys = {"pk": {"S": f"user#{n}"}, "at": {"N": str(n)}}
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": at,
        "Keys": keys,
        "SequenceNumber": str(10**20 + at * 100 + n),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if image is not None:
        ddb["NewImage"] = {**keys, **image}
    return {
        "eventID": f"{at}-{n}",
        "eventName": event,
        "eventSource": "aws:dynamodb",
        "dynamodb": ddb,
    }


def _search(t: SearchTransport, index: str, query: dict[str, Any]) -> list[str]:
    t.request("POST", f"/{index}/_refresh")
    resp = t.json("POST", f"/{index}/_search", {"query": query, "size": 100})
    assert resp.status == 200, resp.body
    return sorted(h["_id"] for h in resp.json()["hits"]["hits"])


def _indexer(base: str, index: str, clock: _Clock, log: io.StringIO) -> Indexer:
    settings = Settings(base, index, "us-east-1", None, sigv4=False)
    return Indexer(settings, log=log, clock=clock)


AMOUNTS = {
    1: str(2**53),
    2: str(2**53 + 1),
    3: str(2**63 - 1),
    4: str(-(2**63)),
    5: "12.75",
    6: str(2**63),  # beyond 64 bits: a double, skipped by the long sub-field
    7: "7",
    8: str(-(2**63) - 1),  # beyond 64 bits the other way
    9: "9223372036854775807.5",  # a decimal whose nearest double is 2^63
}


def test_integers_of_64_bits_filter_exactly_on_the_long_sub_field(osmem_base: str) -> None:
    t = SearchTransport(osmem_base, sigv4=False)
    index = f"exact{uuid.uuid4().hex[:8]}"
    log = io.StringIO()
    indexer = _indexer(osmem_base, index, _Clock(), log)
    event = {
        "Records": [
            _record(n, "INSERT", {"amount": {"N": v}, "both": {"NS": [v, "0.5"]}}, 1795780000)
            for n, v in AMOUNTS.items()
        ]
    }
    assert indexer.handle(event, None) == {"batchItemFailures": []}
    assert json.loads(log.getvalue())["indexed"] == len(AMOUNTS)

    def ids(query: dict[str, Any]) -> list[str]:
        return [i.split("|")[0] for i in _search(t, index, query)]

    # double cannot tell 2^53 from 2^53+1; the long sub-field can.
    assert ids({"term": {"amount": 2**53 + 1}}) == ["1", "2"]
    assert ids({"term": {"amount.long": 2**53 + 1}}) == ["2"]
    assert ids({"term": {"amount.long": 2**53}}) == ["1"]
    assert ids({"term": {"amount.long": 2**63 - 1}}) == ["3"]
    assert ids({"term": {"amount.long": -(2**63)}}) == ["4"]
    assert ids({"term": {"amount.long": 7}}) == ["7"]
    # osmem compares ranges (and sorts) of long fields as doubles, so the range is
    # checked at a coarser grain here; OpenSearch's long ranges and sorts are exact.
    assert ids({"range": {"amount.long": {"gt": 2**62}}}) == ["3"]
    assert ids({"range": {"amount.long": {"lt": 0}}}) == ["4"]
    # Decimals and integers beyond 64 bits are not in the sub-field (not coerced).
    assert ids({"term": {"amount.long": 12}}) == []
    assert ids({"exists": {"field": "amount.long"}}) == ["1", "2", "3", "4", "7"]
    assert ids({"term": {"both.long": 2**53 + 1}}) == ["2"]  # sets: per value
    # The mapping is the same whichever kind came first: no long-versus-double conflict.
    mapping = t.request("GET", f"/{index}/_mapping").json()
    (only,) = mapping.values()
    amount = only["mappings"]["properties"]["amount"]
    assert amount["type"] == "double"
    assert amount["fields"]["long"]["type"] == "long"


def test_a_reindex_round_with_the_stream_writing_every_live_generation(osmem_base: str) -> None:
    t = SearchTransport(osmem_base, sigv4=False)
    index = f"gen{uuid.uuid4().hex[:8]}"
    clock, log = _Clock(), io.StringIO()
    indexer = _indexer(osmem_base, index, clock, log)

    # A fresh stack: generation 1 behind the alias, on the first batch.
    first = [
        _record(n, "INSERT", {"note": {"S": f"first {n}"}, "when": {"S": "2026-12-04"}}, 1795780000)
        for n in range(3)
    ]
    assert indexer.handle({"Records": first}, None) == {"batchItemFailures": []}
    (gen1,) = lifecycle.live_generations(t, index)
    assert (gen1.name, gen1.serving) == (f"{index}-000001", True)

    # Reindex starts: generation 2, its own configuration, marked building.
    config = GenerationConfig.create(key_schema=KEYS, exclude=["note"], mapping={"when": "date"})
    gen2 = lifecycle.create_next_generation(t, index, config)
    assert gen2.name == f"{index}-000002"
    clock.expire()  # handlers see it within the live-set TTL
    changes = [
        _record(1, "MODIFY", {"note": {"S": "changed"}, "when": {"S": "2026-12-05"}}, 1795780100),
        _record(2, "REMOVE", None, 1795780100),
        _record(9, "INSERT", {"note": {"S": "new"}, "when": {"S": "2026-12-06"}}, 1795780100),
    ]
    requests_before = json.loads(log.getvalue().splitlines()[-1])["requests"]
    assert indexer.handle({"Records": changes}, None) == {"batchItemFailures": []}
    line = json.loads(log.getvalue().splitlines()[-1])
    assert line["generations"] == [gen1.name, gen2.name]
    assert line["requests"] == requests_before == 1, "one _bulk per batch, dual-writing or not"

    # Each generation got the changes, with its own ids and documents.
    assert _search(t, gen1.name, {"match_all": {}}) == ["0|user#0", "1|user#1", "9|user#9"]
    assert _search(t, gen2.name, {"match_all": {}}) == ["user#1|1", "user#9|9"]
    doc = t.request("GET", f"/{gen2.name}/_doc/user%239%7C9").json()["_source"]
    assert "note" not in doc
    mapping = t.request("GET", f"/{gen2.name}/_mapping").json()[gen2.name]["mappings"]
    assert mapping["properties"]["when"]["type"] == "date"
    assert GenerationConfig.from_meta(mapping["_meta"]) == config
    # Searches through the alias still read generation 1 only.
    assert _search(t, index, {"match_all": {}}) == ["0|user#0", "1|user#1", "9|user#9"]

    # The swap: one atomic call; then the stream writes generation 2 only.
    lifecycle.swap(t, index, gen2.name)
    assert [g.name for g in lifecycle.live_generations(t, index)] == [gen2.name]
    clock.expire()
    later = [
        _record(5, "INSERT", {"note": {"S": "after"}, "when": {"S": "2026-12-07"}}, 1795780200)
    ]
    assert indexer.handle({"Records": later}, None) == {"batchItemFailures": []}
    assert "generations" not in json.loads(log.getvalue().splitlines()[-1])
    assert _search(t, index, {"match_all": {}}) == ["user#1|1", "user#5|5", "user#9|9"]
    assert "5|user#5" not in _search(t, gen1.name, {"match_all": {}})

    lifecycle.retire(t, index, gen1.name)
    lifecycle.drop(t, index, gen1.name)
    assert [g.name for g in lifecycle.list_generations(t, index)] == [gen2.name]
    t.request("DELETE", f"/{gen2.name}")


def test_a_legacy_index_keeps_working_and_migrates_at_the_first_swap(osmem_base: str) -> None:
    t = SearchTransport(osmem_base, sigv4=False)
    index = f"legacy{uuid.uuid4().hex[:8]}"
    assert t.json("PUT", f"/{index}", {}).status == 200  # made before generations existed
    assert not ensure_index(t, index)  # kept as it is
    clock, log = _Clock(), io.StringIO()
    indexer = _indexer(osmem_base, index, clock, log)
    event = {"Records": [_record(1, "INSERT", {"note": {"S": "old"}}, 1795780000)]}
    assert indexer.handle(event, None) == {"batchItemFailures": []}
    assert _search(t, index, {"match_all": {}}) == ["1|user#1"]

    gen1 = lifecycle.create_next_generation(t, index, GenerationConfig.create(key_schema=KEYS))
    assert gen1.name == f"{index}-000001"
    clock.expire()
    assert indexer.handle(event, None) == {"batchItemFailures": []}
    assert _search(t, gen1.name, {"match_all": {}}) == ["user#1|1"]
    lifecycle.swap(t, index, gen1.name)  # the legacy index goes in the same call
    assert [g.name for g in lifecycle.list_generations(t, index)] == [gen1.name]
    assert _search(t, index, {"match_all": {}}) == ["user#1|1"]
    t.request("DELETE", f"/{gen1.name}")
