"""The document model under a generation's configuration: exact integers, include and
exclude on every DynamoDB type and nesting, ids in key-schema order, the version
attribute and TTL records (tests/events/ttl_and_versions.json)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ddbsearch.core.documents import (
    InvalidDocument,
    MissingVersion,
    action_from_item,
    action_from_record,
    document_id,
    is_ttl_removal,
    record_version,
    stream_version,
    to_document,
)
from ddbsearch.core.generations import GenerationConfig

# ----------------------------------------------------------------- exact integers


@pytest.mark.parametrize(
    "value",
    [2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), -(2**53) - 1, 0, 1, -1],
)
def test_integers_of_64_bits_stay_exact_in_the_document(value: int) -> None:
    doc = to_document({"n": {"N": str(value)}, "ns": {"NS": [str(value), "1.5"]}})
    assert doc["n"] == value
    assert type(doc["n"]) is int
    # ... and in the JSON that reaches OpenSearch (the long sub-field parses it exactly).
    assert json.loads(json.dumps(doc))["n"] == value
    assert str(value) in json.dumps(doc)


def test_beyond_64_bits_and_decimals_are_doubles_the_long_sub_field_skips() -> None:
    doc = to_document({"a": {"N": str(2**63)}, "b": {"N": str(-(2**63) - 1)}, "c": {"N": "2.5"}})
    assert all(type(doc[k]) is float for k in "abc")


def test_an_attribute_mixing_integers_and_decimals_keeps_each_exact_where_it_can() -> None:
    docs = [to_document({"amount": {"N": t}}) for t in ("9007199254740993", "12.75", "7")]
    assert [d["amount"] for d in docs] == [9007199254740993, 12.75, 7]
    assert [type(d["amount"]) for d in docs] == [int, float, int]


# ----------------------------------------------------------------- include / exclude

EVERY_TYPE: dict[str, Any] = {
    "pk": {"S": "k"},
    "sk": {"N": "1"},
    "s": {"S": "text"},
    "n": {"N": "12"},
    "b": {"B": "AAE="},
    "t": {"BOOL": True},
    "z": {"NULL": True},
    "ss": {"SS": ["y", "x"]},
    "ns": {"NS": ["2", "1"]},
    "bs": {"BS": ["Ag==", "AQ=="]},
    "l": {"L": [{"S": "a"}, {"S": "b"}]},
    "m": {
        "M": {
            "keep": {"S": "kept"},
            "drop": {"S": "dropped"},
            "deep": {"M": {"x": {"N": "1"}, "secret": {"S": "no"}}},
        }
    },
    "rows": {
        "L": [
            {"M": {"price": {"N": "3"}, "note": {"S": "n1"}}},
            {"M": {"price": {"N": "4"}, "note": {"S": "n2"}}},
            {"S": "a scalar in the list"},
        ]
    },
}


def _cfg(**kw: Any) -> GenerationConfig:
    return GenerationConfig.create(key_schema=("pk", "sk"), **kw)


@pytest.mark.parametrize("name", [n for n in EVERY_TYPE if n not in ("pk", "sk")])
def test_exclude_removes_an_attribute_of_every_type(name: str) -> None:
    doc = to_document(EVERY_TYPE, _cfg(exclude=[name]))
    assert name not in doc
    assert set(doc) == set(EVERY_TYPE) - {name}


@pytest.mark.parametrize("name", [n for n in EVERY_TYPE if n not in ("pk", "sk")])
def test_include_keeps_an_attribute_of_every_type_and_the_keys(name: str) -> None:
    doc = to_document(EVERY_TYPE, _cfg(include=[name]))
    assert set(doc) == {"pk", "sk", name}
    assert doc[name] == to_document(EVERY_TYPE)[name]


def test_nested_paths_through_maps_and_lists_of_maps() -> None:
    doc = to_document(EVERY_TYPE, _cfg(include=["m.keep", "m.deep", "rows.price"]))
    assert doc == {
        "pk": "k",
        "sk": 1,
        "m": {"keep": "kept", "deep": {"x": 1, "secret": "no"}},
        "rows": [{"price": 3}, {"price": 4}],
    }
    doc = to_document(EVERY_TYPE, _cfg(exclude=["m.drop", "m.deep.secret", "rows.note"]))
    assert doc["m"] == {"keep": "kept", "deep": {"x": 1}}
    # A list mixing maps and strings becomes strings (the usual rule), after the selection.
    assert doc["rows"] == ['{"price":3}', '{"price":4}', "a scalar in the list"]


def test_exclude_wins_over_include_and_paths_into_scalars_name_nothing() -> None:
    doc = to_document(EVERY_TYPE, _cfg(include=["m", "s.x"], exclude=["m.deep"]))
    assert doc == {"pk": "k", "sk": 1, "m": {"keep": "kept", "drop": "dropped"}}
    assert to_document(EVERY_TYPE, _cfg(exclude=["s.x"]))["s"] == "text"


def test_keys_are_kept_whatever_include_says_even_without_a_key_schema() -> None:
    config = GenerationConfig.create(include=["s"])
    doc = to_document(EVERY_TYPE, config, key_names=["pk", "sk"])
    assert doc == {"pk": "k", "sk": 1, "s": "text"}


def test_an_excluded_attribute_is_not_checked_either() -> None:
    item = {"pk": {"S": "k"}, "sk": {"N": "1"}, "_id": {"S": "x"}, "ok": {"S": "y"}}
    with pytest.raises(InvalidDocument, match="reserved field name"):
        to_document(item)
    assert to_document(item, _cfg(exclude=["_id"])) == {"pk": "k", "sk": 1, "ok": "y"}


def test_stream_backfill_agree_under_a_configuration(load_event: Any) -> None:
    config = (
        _cfg(exclude=["shortDescription"])
        if False
        else GenerationConfig.create(
            key_schema=("userId", "transactionId"), exclude=["shortDescription"]
        )
    )
    record = load_event("insert_modify_remove")["Records"][2]
    streamed = action_from_record(record, config, "idx-000002")
    row = action_from_item(record["dynamodb"]["NewImage"], ["userId", "transactionId"], 2, config)
    assert streamed.doc_id == row.doc_id == "3|51"
    assert streamed.document == row.document
    assert "shortDescription" not in (streamed.document or {})
    assert streamed.index == "idx-000002"


# ----------------------------------------------------------------- ids


def test_ids_follow_the_key_schema_when_the_generation_gives_it() -> None:
    keys = {"userId": {"N": "3"}, "transactionId": {"N": "51"}}
    assert document_id(keys) == "51|3"  # key-name order: every index made before generations
    assert document_id(keys, GenerationConfig()) == "51|3"
    config = GenerationConfig.create(key_schema=("userId", "transactionId"))
    assert config.id_scheme == "key-schema"
    assert document_id(keys, config) == "3|51"
    escaped = {"userId": {"S": "a|b"}, "transactionId": {"S": "c\\"}}
    assert document_id(escaped, config) == "a\\|b|c\\\\"


def test_an_id_from_keys_that_do_not_match_the_schema_is_refused() -> None:
    config = GenerationConfig.create(key_schema=("pk", "sk"))
    with pytest.raises(InvalidDocument, match="do not match the key schema"):
        document_id({"pk": {"S": "a"}}, config)


# ----------------------------------------------------------------- versions

VERSIONED = GenerationConfig.create(key_schema=("userId", "transactionId"), version_attribute="rev")


def test_the_version_attribute_is_the_version_on_every_path(load_event: Any) -> None:
    insert, modify, ttl_remove, user_remove = load_event("ttl_and_versions")["Records"]
    assert action_from_record(insert, VERSIONED).version == 1
    assert action_from_record(modify, VERSIONED).version == 8
    # A delete carries the deleted image's number plus one: a replay of that image loses.
    assert action_from_record(user_remove, VERSIONED).version == 4
    assert action_from_record(ttl_remove, VERSIONED).version == 2
    row = action_from_item(
        modify["dynamodb"]["NewImage"], ["userId", "transactionId"], 10**12, VERSIONED
    )
    assert row.version == 8
    # Without the option: stream time, as before.
    assert record_version(modify) == stream_version(1795780101)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["dynamodb"]["NewImage"].pop("rev"), "'rev' is missing"),
        (lambda r: r["dynamodb"]["NewImage"].update(rev={"S": "7"}), "is not a number"),
        (lambda r: r["dynamodb"]["NewImage"].update(rev={"N": "1.5"}), "not an integer"),
        (lambda r: r["dynamodb"]["NewImage"].update(rev={"N": "-1"}), "not an integer"),
        (lambda r: r["dynamodb"]["NewImage"].update(rev={"N": str(2**63)}), "not an integer"),
    ],
)
def test_a_record_without_a_usable_version_is_refused(
    load_event: Any, change: Any, message: str
) -> None:
    record = load_event("ttl_and_versions")["Records"][1]
    change(record)
    with pytest.raises(MissingVersion, match=message) as caught:
        action_from_record(record, VERSIONED)
    assert caught.value.error_type == "missing_version_attribute"


def test_a_delete_without_the_old_image_is_refused_not_guessed(load_event: Any) -> None:
    record = load_event("ttl_and_versions")["Records"][3]
    record["dynamodb"].pop("OldImage")
    record["dynamodb"]["StreamViewType"] = "NEW_IMAGE"
    with pytest.raises(MissingVersion, match="NEW_AND_OLD_IMAGES"):
        action_from_record(record, VERSIONED)
    assert action_from_record(record).op == "delete"  # stream-time versions need no image


def test_a_backfill_row_without_the_attribute_is_refused() -> None:
    with pytest.raises(MissingVersion):
        action_from_item(
            {"userId": {"N": "1"}, "transactionId": {"N": "2"}},
            ["userId", "transactionId"],
            5,
            VERSIONED,
        )


# ----------------------------------------------------------------- TTL


def test_ttl_removals_are_recognised_by_the_service_identity(load_event: Any) -> None:
    insert, _modify, ttl_remove, user_remove = load_event("ttl_and_versions")["Records"]
    assert is_ttl_removal(ttl_remove)
    assert not is_ttl_removal(user_remove)
    assert not is_ttl_removal(insert)
    forged = {**user_remove, "userIdentity": {"type": "Service", "principalId": "someone"}}
    assert not is_ttl_removal(forged)
