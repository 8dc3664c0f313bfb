"""Generations: the configuration model and its mapping overlay, the lifecycle
functions behind aliases, and the handler writing every live generation in one
``_bulk`` (against the scripted domain of test_handler)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from ddbsearch.core import lifecycle
from ddbsearch.core.generations import GenerationConfig, index_body, parse_mapping
from ddbsearch.core.lifecycle import LIVE_SET_TTL_SECONDS, building_alias
from ddbsearch.core.stream import Indexer, Settings
from ddbsearch.core.template import EXACT_INTEGER_SUBFIELD, NUMBER_MAPPING
from ddbsearch.errors import ConfigurationError
from tests.unit.test_handler import Context, FakeDLQ, FakeSearch, seqs

KEYS = ("userId", "transactionId")

# ----------------------------------------------------------------- configuration


def test_configuration_round_trips_through_meta() -> None:
    config = GenerationConfig.create(
        key_schema=KEYS,
        include=["amount", "shortDescription", "createdAt"],
        exclude=["shortDescription.secret"],
        mapping={"createdAt": "date"},
        version_attribute="rev",
        ttl_deletes="keep",
    )
    meta = index_body(config)["mappings"]["_meta"]
    assert meta["managed_by"] == "ddbsearch"
    assert GenerationConfig.from_meta(json.loads(json.dumps(meta))) == config
    assert GenerationConfig.from_meta({}) is None  # legacy index: no configuration
    assert GenerationConfig.from_meta(None) is None


def test_a_configuration_from_a_newer_ddbsearch_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="format 99"):
        GenerationConfig.from_meta({"ddbsearch": {"format": 99}})


def test_short_and_full_mapping_forms_are_the_same_overlay() -> None:
    short = {
        "createdAt": "date",
        "location": "geo_point",
        "sku": "keyword",
        "notes": {"type": "text", "analyzer": "english"},
        "address.city": "keyword",
    }
    full = {
        "properties": {
            "createdAt": {"type": "date"},
            "location": {"type": "geo_point"},
            "sku": {"type": "keyword"},
            "notes": {"type": "text", "analyzer": "english"},
            "address": {"properties": {"city": {"type": "keyword"}}},
        }
    }
    assert parse_mapping(short) == parse_mapping(full) == parse_mapping({"mappings": full})
    assert parse_mapping(short) == full["properties"]


def test_the_overlay_is_merged_over_the_template() -> None:
    config = GenerationConfig.create(key_schema=KEYS, mapping={"orderId": "long"})
    body = index_body(config, aliases=["orders"])
    assert body["aliases"] == {"orders": {}}
    assert body["mappings"]["properties"] == {"orderId": {"type": "long"}}
    # The template stays: dynamic templates (numbers with their exact long sub-field), settings.
    templates = {
        next(iter(t)): next(iter(t.values())) for t in body["mappings"]["dynamic_templates"]
    }
    assert templates["integers"]["mapping"] == NUMBER_MAPPING == templates["decimals"]["mapping"]
    assert NUMBER_MAPPING["fields"][EXACT_INTEGER_SUBFIELD] == {
        "type": "long",
        "coerce": False,
        "ignore_malformed": True,
    }
    assert body["settings"]["index.mapping.depth.limit"] == 34


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mapping": {"createdAt": "datetime"}}, "unknown field type 'datetime'"),
        ({"mapping": {"n": {"type": "text", "fields": {"raw": {"type": "kw"}}}}}, "type 'kw'"),
        ({"mapping": {"n": {"analyzer": "english"}}}, "has no type"),
        ({"mapping": {"n": 5}}, "must be a type name or an object"),
        ({"mapping": {"a..b": "keyword"}}, "is not a dotted attribute path"),
        ({"mapping": {"_id": "keyword"}}, "cannot exist: '_id' is an OpenSearch metadata field"),
        ({"mapping": {"sku": "keyword", "sku.part": "keyword"}}, "'sku' is mapped as"),
        ({"mapping": {"sku": {"type": "keyword", "properties": {}}}}, "cannot have properties"),
        ({"mapping": {"mappings": {"dynamic": "strict", "properties": {}}}}, "overridden"),
        ({"mapping": {"notes": "text"}, "exclude": ["notes"]}, "not indexed"),
        ({"mapping": {"notes": "text"}, "include": ["amount"]}, "not indexed"),
        ({"exclude": ["userId"]}, "key attribute 'userId' cannot be excluded"),
        ({"mapping": {"userId": {"type": "long", "index": False}}}, "key attribute 'userId'"),
        ({"mapping": {"userId": "object"}}, "key attribute 'userId'"),
        ({"ttl_deletes": "archive"}, "TTL policy must be 'delete' or 'keep'"),
        ({"version_attribute": "meta.rev"}, "must be a top-level attribute"),
        ({"include": [""]}, "is not a dotted attribute path"),
    ],
)  # fmt: skip
def test_each_invalid_configuration_is_one_line(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        GenerationConfig.create(key_schema=KEYS, **kwargs)
    assert "\n" not in str(caught.value)


def test_valid_overlays_on_included_nested_paths_and_keys() -> None:
    config = GenerationConfig.create(
        key_schema=KEYS,
        include=["address"],
        mapping={"address.city": "keyword", "userId": "keyword", "transactionId": "long"},
    )
    assert config.mapping["address"] == {"properties": {"city": {"type": "keyword"}}}


# ----------------------------------------------------------------- lifecycle


def test_a_fresh_stack_gets_generation_one_behind_the_alias() -> None:
    search = FakeSearch()
    search.indices.clear()
    config = GenerationConfig.create(key_schema=KEYS)
    assert lifecycle.live_generations(search, "idx") == []  # type: ignore[arg-type]
    assert lifecycle.create_first_generation(search, "idx", config)  # type: ignore[arg-type]
    assert not lifecycle.create_first_generation(search, "idx", config)  # type: ignore[arg-type]
    (gen,) = lifecycle.live_generations(search, "idx")  # type: ignore[arg-type]
    assert (gen.name, gen.serving, gen.building, gen.config) == ("idx-000001", True, False, config)
    assert search.indices["idx-000001"]["aliases"] == {"idx"}


def test_create_next_mark_swap_retire_drop() -> None:
    search: Any = FakeSearch()
    search.indices.clear()
    lifecycle.create_first_generation(search, "idx")
    new_config = GenerationConfig.create(key_schema=KEYS, mapping={"createdAt": "date"})
    new = lifecycle.create_next_generation(search, "idx", new_config)
    assert (new.name, new.building, new.serving) == ("idx-000002", True, False)
    live = lifecycle.live_generations(search, "idx")
    assert [(g.name, g.serving, g.building) for g in live] == [
        ("idx-000001", True, False),
        ("idx-000002", False, True),
    ]
    with pytest.raises(ConfigurationError, match="already being built"):
        lifecycle.create_next_generation(search, "idx", new_config)

    calls = len(search.calls)
    lifecycle.swap(search, "idx", "idx-000002")
    swaps = [c for c in search.calls[calls:] if c.startswith("POST /_aliases")]
    assert len(swaps) == 1, "one atomic _aliases call"
    assert [g.name for g in lifecycle.live_generations(search, "idx")] == ["idx-000002"]
    assert search.indices["idx-000002"]["aliases"] == {"idx"}

    with pytest.raises(ConfigurationError, match="still serving"):
        lifecycle.drop(search, "idx", "idx-000002")
    lifecycle.retire(search, "idx", "idx-000001")  # already out of the aliases: nothing to do
    lifecycle.drop(search, "idx", "idx-000001")
    assert set(search.indices) == {"idx-000002"}
    with pytest.raises(ConfigurationError, match="not a generation of"):
        lifecycle.drop(search, "idx", "other")
    assert lifecycle.RETIRE_GRACE_SECONDS > LIVE_SET_TTL_SECONDS


def test_a_legacy_index_is_live_until_the_first_swap_removes_it_atomically() -> None:
    search: Any = FakeSearch()  # a concrete index named "idx", no configuration
    (legacy,) = lifecycle.live_generations(search, "idx")
    assert (legacy.name, legacy.legacy, legacy.config, legacy.serving) == ("idx", True, None, True)
    new = lifecycle.create_next_generation(search, "idx", GenerationConfig.create(key_schema=KEYS))
    assert new.name == "idx-000001"
    lifecycle.swap(search, "idx", new.name)
    assert set(search.indices) == {"idx-000001"}
    assert search.indices["idx-000001"]["aliases"] == {"idx"}


def test_an_alias_pointing_outside_the_stack_is_refused() -> None:
    search: Any = FakeSearch()
    search.indices = {"someone-elses": {"aliases": {"idx"}, "meta": None}}
    with pytest.raises(ConfigurationError, match="not one of its generations"):
        lifecycle.live_generations(search, "idx")


# ----------------------------------------------------------------- the handler, dual-writing


def _dual(search: FakeSearch, new_config: GenerationConfig) -> None:
    """idx: legacy serving generation; idx-000001 building with ``new_config``."""
    from ddbsearch.core.generations import meta_of

    search.indices["idx-000001"] = {
        "aliases": {building_alias("idx")},
        "meta": meta_of(new_config),
    }


def _indexer(
    search: FakeSearch, dlq: FakeDLQ | None = None, clock: Any = None
) -> tuple[Indexer, io.StringIO]:
    log = io.StringIO()
    settings = Settings(endpoint="http://search", index="idx", region="us-east-1", dlq_url=None)
    indexer = Indexer(
        settings, transport=search, dlq=dlq, log=log, **({"clock": clock} if clock else {})
    )  # type: ignore[arg-type]
    indexer.bulk._sleep = lambda _s: None
    return indexer, log


def test_every_change_goes_to_every_live_generation_in_one_bulk(load_event: Any) -> None:
    search = FakeSearch()
    new = GenerationConfig.create(key_schema=KEYS, exclude=["shortDescription"])
    _dual(search, new)
    indexer, log = _indexer(search)
    event = load_event("insert_modify_remove")
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    assert len(search.bulks) == 1, "still one request per batch"
    assert [(o["op"], o["_index"], o["_id"]) for o in search.bulks[0]] == [
        ("index", "idx", "51|3"),  # legacy: key-name order, the whole item
        ("index", "idx-000001", "3|51"),  # new: key-schema order, its own selection
        ("delete", "idx", "7|4"),
        ("delete", "idx-000001", "4|7"),
    ]
    legacy_doc = search.docs_by_index["idx"]["51|3"][1]
    new_doc = search.docs_by_index["idx-000001"]["3|51"][1]
    assert "shortDescription" in legacy_doc
    assert "shortDescription" not in new_doc
    assert legacy_doc["amount"] == new_doc["amount"] == 13
    line = json.loads(log.getvalue())
    assert line["generations"] == ["idx", "idx-000001"]
    assert line["per_generation"] == {
        "idx": {"indexed": 1, "deleted": 1},
        "idx-000001": {"indexed": 1, "deleted": 1},
    }
    assert line["indexed"] == 2
    assert line["requests"] == 1


def test_a_record_is_done_only_when_done_in_every_live_generation(load_event: Any) -> None:
    search = FakeSearch(
        [
            lambda ops: [
                (503, "x") if o["_index"] == "idx-000001" and o["op"] == "index" else (200, None)
                for o in ops
            ]
        ]
        * 1000
    )
    _dual(search, GenerationConfig.create(key_schema=KEYS))
    indexer, log = _indexer(search)
    event = load_event("insert_modify_remove")
    # 51|3 is indexed in the serving generation but not in the building one: not done.
    assert indexer.handle(event, Context(remaining_ms=1500)) == {
        "batchItemFailures": [{"itemIdentifier": seqs(event)[0]}]
    }
    per = json.loads(log.getvalue())["per_generation"]
    assert per["idx"] == {"indexed": 1, "deleted": 1}
    assert per["idx-000001"] == {"transient": 1, "deleted": 1}


def test_a_rejection_in_one_generation_is_dead_lettered_with_its_generation(
    load_event: Any,
) -> None:
    search = FakeSearch(
        [
            lambda ops: [
                (400, "mapper_parsing_exception")
                if o["_index"] == "idx-000001" and o["op"] == "index"
                else (200, None)
                for o in ops
            ]
        ]
    )
    _dual(search, GenerationConfig.create(key_schema=KEYS, mapping={"shortDescription": "date"}))
    dlq = FakeDLQ()
    indexer, _ = _indexer(search, dlq)
    event = load_event("insert_modify_remove")
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    (msg,) = dlq.messages
    assert msg["documentId"] == "3|51"
    assert list(msg["generations"]) == ["idx-000001"]
    assert msg["generations"]["idx-000001"].startswith("mapper_parsing_exception")
    # The serving generation has the item; the building one has any older copy deleted.
    assert "51|3" in search.docs_by_index["idx"]
    assert search.bulks[1] == [
        {
            "op": "delete",
            "_index": "idx-000001",
            "_id": "3|51",
            "version": msg["version"],
            "version_type": "external_gte",
        }
    ]


def test_ttl_deletes_follow_each_generations_policy(load_event: Any) -> None:
    search = FakeSearch()
    _dual(search, GenerationConfig.create(key_schema=KEYS, ttl_deletes="keep"))
    indexer, log = _indexer(search)
    event = load_event("ttl_and_versions")
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    ops = [(o["op"], o["_index"], o["_id"]) for o in search.bulks[0]]
    # Key 3|60 was deleted by TTL: the default policy deletes it, the archive keeps it.
    assert ("delete", "idx", "60|3") in ops
    assert not any(o[1] == "idx-000001" and o[2] == "3|60" for o in ops)
    # A user's delete is a delete everywhere.
    assert ("delete", "idx-000001", "5|62") in ops
    assert json.loads(log.getvalue())["ttl_kept"] == 1


def test_a_record_without_the_version_attribute_is_a_counted_dead_letter(load_event: Any) -> None:
    search = FakeSearch()
    search.indices.clear()
    from ddbsearch.core.generations import meta_of

    config = GenerationConfig.create(key_schema=KEYS, version_attribute="rev")
    search.indices["idx-000001"] = {"aliases": {"idx"}, "meta": meta_of(config)}
    event = load_event("ttl_and_versions")
    event["Records"][1]["dynamodb"]["NewImage"].pop("rev")
    dlq = FakeDLQ()
    indexer, log = _indexer(search, dlq)
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    (msg,) = dlq.messages
    assert msg["reason"] == "missing_version_attribute: version attribute 'rev' is missing"
    assert msg["version"] is None
    ops = {(o["_id"], o["version"]) for o in search.bulks[0]}
    assert not any(i == "4|61" for i, _ in ops)  # nothing guessed
    assert ("3|60", 2) in ops  # the TTL delete: old image's rev 1, plus one
    line = json.loads(log.getvalue())
    assert line["error_types"] == {"missing_version_attribute": 1}
    assert line["dead_lettered"] == 1


def test_the_live_set_is_cached_and_read_again_after_its_ttl(load_event: Any) -> None:
    search = FakeSearch()
    now = [1000.0]
    indexer, _ = _indexer(search, clock=lambda: now[0])
    event = load_event("insert_modify_remove")
    indexer.handle(event, Context())
    _dual(search, GenerationConfig.create(key_schema=KEYS))
    indexer.handle(event, Context())
    assert {o["_index"] for o in search.bulks[-1]} == {"idx"}, "cached"
    now[0] += LIVE_SET_TTL_SECONDS + 1
    indexer.handle(event, Context())
    assert {o["_index"] for o in search.bulks[-1]} == {"idx", "idx-000001"}
    reads = [c for c in search.calls if c.startswith("GET ")]
    assert len(reads) == 2


def test_an_index_not_found_answer_reads_the_aliases_again(load_event: Any) -> None:
    search = FakeSearch([lambda ops: [(404, "index_not_found_exception")] * len(ops)])
    indexer, _ = _indexer(search)
    event = load_event("insert_modify_remove")
    assert indexer.handle(event, Context()) == {"batchItemFailures": []}
    assert len([c for c in search.calls if c.startswith("GET ")]) == 2
