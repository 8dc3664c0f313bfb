"""The item -> document model: every DynamoDB type, ids, versions, rejection rules."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ddbsearch.core.documents import (
    MAX_DEPTH,
    MAX_ID_BYTES,
    Action,
    InvalidDocument,
    action_from_item,
    action_from_record,
    backfill_version,
    document_id,
    stream_version,
    to_document,
)
from ddbsearch.errors import ConfigurationError


def test_every_scalar_type() -> None:
    doc = to_document(
        {
            "s": {"S": "hello"},
            "n": {"N": "42"},
            "d": {"N": "12.5"},
            "b": {"B": "AAEC"},
            "t": {"BOOL": True},
            "z": {"NULL": True},
        }
    )
    assert doc == {"s": "hello", "n": 42, "d": 12.5, "b": "AAEC", "t": True, "z": None}
    assert type(doc["n"]) is int


def test_binary_from_boto3_bytes_becomes_base64() -> None:
    assert to_document({"b": {"B": b"\x00\x01\x02"}}) == {"b": "AAEC"}
    assert to_document({"bs": {"BS": [b"\x02", b"\x01"]}}) == {
        "bs": [base64.b64encode(b"\x01").decode(), base64.b64encode(b"\x02").decode()]
    }


def test_sets_become_sorted_arrays() -> None:
    # Sets have no order; sorting makes the stream image and the Scan row agree.
    doc = to_document(
        {
            "ss": {"SS": ["pear", "apple"]},
            "ns": {"NS": ["10", "2", "-1.5"]},
            "bs": {"BS": ["Ag==", "AQ=="]},
        }
    )
    assert doc == {"ss": ["apple", "pear"], "ns": [-1.5, 2, 10], "bs": ["AQ==", "Ag=="]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9223372036854775807", 9223372036854775807),  # int64 max stays exact
        ("-9223372036854775808", -9223372036854775808),
        # Beyond int64: a double, but never exactly ±2^63 (the long sub-field would read
        # it as Long.MAX/MIN): one step further from zero.
        ("9223372036854775808", 9.223372036854777856e18),
        ("-9223372036854775809", -9.223372036854777856e18),
        ("9223372036854775807.5", 9.223372036854777856e18),
        ("9223372036854777857", 9.223372036854777856e18),
        ("1E+125", 1e125),
        ("9.9999999999999999999999999999999999999E+125", 1e126),
        ("1E-130", 1e-130),
        ("-1E-130", -1e-130),
        ("12345678901234567890123456789012345678", 1.2345678901234568e37),  # 38 digits
        ("3.0", 3),
        ("1E+2", 100),
        ("0.1", 0.1),
    ],
)
def test_number_policy(text: str, expected: Any) -> None:
    value = to_document({"n": {"N": text}})["n"]
    assert value == expected
    assert type(value) is type(expected)


def test_nested_maps_and_lists() -> None:
    doc = to_document(
        {
            "m": {"M": {"a": {"L": [{"N": "1"}, {"N": "2.5"}]}, "b": {"M": {"c": {"S": "x"}}}}},
            "l": {"L": [{"M": {"k": {"S": "v"}}}, {"M": {"k": {"S": "w"}}}]},
        }
    )
    assert doc == {"m": {"a": [1, 2.5], "b": {"c": "x"}}, "l": [{"k": "v"}, {"k": "w"}]}


def test_list_mixing_types_becomes_strings() -> None:
    doc = to_document(
        {
            "mixed": {
                "L": [
                    {"N": "1"},
                    {"S": "a"},
                    {"BOOL": False},
                    {"NULL": True},
                    {"M": {"k": {"N": "2"}}},
                    {"L": [{"S": "x"}]},
                ]
            }
        }
    )
    assert doc == {"mixed": ["1", "a", "false", None, '{"k":2}', '["x"]']}


def test_nested_arrays_of_one_kind_stay_typed() -> None:
    # OpenSearch flattens arrays of arrays; one leaf kind is fine as it is.
    assert to_document({"l": {"L": [{"L": [{"N": "1"}]}, {"N": "2"}]}}) == {"l": [[1], 2]}


@pytest.mark.parametrize("name", ["_id", "_source", "_index", "_routing", "_version", "_seq_no"])
def test_reserved_top_level_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidDocument, match=f"reserved field name '{name}'"):
        to_document({name: {"S": "x"}})


def test_reserved_names_are_fine_below_the_top_level() -> None:
    assert to_document({"m": {"M": {"_id": {"S": "x"}}}}) == {"m": {"_id": "x"}}


def test_dotted_and_empty_names_are_rejected() -> None:
    with pytest.raises(InvalidDocument, match=r"'a\.b' contains a dot"):
        to_document({"a.b": {"S": "x"}})
    with pytest.raises(InvalidDocument, match=r"'m\.x\.y' contains a dot"):
        to_document({"m": {"M": {"x.y": {"S": "x"}}}})
    with pytest.raises(InvalidDocument, match="empty attribute name under m"):
        to_document({"m": {"M": {"": {"S": "x"}}}})


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "leaf"}
    for _ in range(levels):
        value = {"M": {"x": value}}
    return value


def test_depth_dynamodb_allows_is_accepted() -> None:
    # DynamoDB allows 32 levels of nesting; the document keeps every one of them.
    doc = to_document({"deep": _nested(32)})
    inner: Any = doc["deep"]
    for _ in range(32):
        assert list(inner) == ["x"]
        inner = inner["x"]
    assert inner == "leaf"


def test_deeper_than_the_index_allows_is_rejected() -> None:
    with pytest.raises(InvalidDocument, match=f"nests deeper than {MAX_DEPTH} levels"):
        to_document({"deep": _nested(MAX_DEPTH)})


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(InvalidDocument, match="unknown DynamoDB type"):
        to_document({"x": {"Q": "1"}})


# ----------------------------------------------------------------------------- ids


def test_id_is_the_same_from_keys_in_any_order() -> None:
    a = document_id({"userId": {"N": "3"}, "transactionId": {"N": "51"}})
    b = document_id({"transactionId": {"N": "51"}, "userId": {"N": "3"}})
    assert a == b == "51|3"


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        (["3", "3.0", "3E0", "0.3E1"], "3"),
        (["149179528360", "1.4917952836E+11"], "149179528360"),
        (["100", "1E+2"], "100"),
        (["-12.50", "-1.25E1"], "-12.5"),
        (["0", "-0", "0.000"], "0"),
        (["1E-5"], "0.00001"),
    ],
)
def test_id_writes_numbers_in_canonical_positional_form(variants: list[str], expected: str) -> None:
    assert {document_id({"k": {"N": v}}) for v in variants} == {expected}


def test_id_does_not_collide_across_separators() -> None:
    assert document_id({"h": {"S": "a"}, "r": {"S": "bc"}}) != document_id(
        {"h": {"S": "ab"}, "r": {"S": "c"}}
    )
    assert document_id({"h": {"S": "a|"}, "r": {"S": "b"}}) != document_id(
        {"h": {"S": "a"}, "r": {"S": "|b"}}
    )
    assert document_id({"h": {"S": "a\\"}, "r": {"S": "b"}}) != document_id(
        {"h": {"S": "a"}, "r": {"S": "\\b"}}
    )


_key_text = st.text(alphabet=st.sampled_from(["a", "|", "\\", "b", "é"]), max_size=6)


@given(_key_text, _key_text, _key_text, _key_text)
def test_id_is_injective_on_string_keys(h1: str, r1: str, h2: str, r2: str) -> None:
    id1 = document_id({"h": {"S": h1}, "r": {"S": r1}})
    id2 = document_id({"h": {"S": h2}, "r": {"S": r2}})
    assert (id1 == id2) == ((h1, r1) == (h2, r2))


def test_long_keys_are_hashed_deterministically() -> None:
    keys = {"h": {"S": "x" * 2048}, "r": {"S": "y" * 1024}}
    doc_id = document_id(keys)
    assert doc_id.startswith("sha256:")
    assert len(doc_id.encode()) <= MAX_ID_BYTES
    assert document_id(dict(reversed(list(keys.items())))) == doc_id
    assert document_id({"h": {"S": "x" * 2048}, "r": {"S": "y" * 1023 + "z"}}) != doc_id


def test_id_at_the_limit_is_kept_verbatim() -> None:
    value = "é" * 256  # 512 bytes in UTF-8
    assert document_id({"k": {"S": value}}) == value
    assert document_id({"k": {"S": value + "a"}}).startswith("sha256:")


def test_binary_keys() -> None:
    assert document_id({"k": {"B": b"\x01\x02"}}) == document_id({"k": {"B": "AQI="}})


# ----------------------------------------------------------------------------- versions


def test_later_second_always_wins() -> None:
    assert stream_version(1795780001) > stream_version(1795780000)


def test_backfill_loses_to_stream_writes_at_or_after_the_read() -> None:
    read_at = 1795780000.9
    v = backfill_version(read_at)
    # A change made at the same second as the read, or a few seconds before it
    # (clock skew margin), or any time after, beats the row read by backfill.
    for t in (1795780000, 1795779996, 1795780001, 1795790000):
        assert stream_version(t) > v
    # Changes well before the read are already contained in the row read.
    assert stream_version(1795779990) < v


def test_versions_fit_a_signed_long() -> None:
    year_2200 = 7258118400
    assert stream_version(year_2200) < 2**63 - 1


# ----------------------------------------------------------------------------- actions


def test_actions_from_stream_records(load_event: Any) -> None:
    records = load_event("insert_modify_remove")["Records"]
    actions = [action_from_record(r) for r in records]
    assert [a.op for a in actions] == ["index", "index", "index", "delete"]
    assert actions[0].doc_id == actions[2].doc_id == "51|3"
    assert actions[2].document == {
        "userId": 3,
        "transactionId": 51,
        "accountId": 3,
        "amount": 13,
        "shortDescription": "Final mega test 2",
    }
    assert actions[3] == Action(
        "delete",
        "7|4",
        stream_version(1795780003),
        None,
        {"userId": {"N": "4"}, "transactionId": {"N": "7"}},
        "4421584500000000017450439094",
    )


def test_backfill_and_stream_agree_on_id_and_document(load_event: Any) -> None:
    record = load_event("insert_modify_remove")["Records"][0]
    from_stream = action_from_record(record)
    from_scan = action_from_item(
        record["dynamodb"]["NewImage"], ["userId", "transactionId"], backfill_version(0)
    )
    assert from_scan.doc_id == from_stream.doc_id
    assert from_scan.document == from_stream.document


@pytest.mark.parametrize("view", ["KEYS_ONLY", "OLD_IMAGE"])
def test_streams_without_new_images_are_a_configuration_error(view: str, load_event: Any) -> None:
    record = load_event("insert_modify_remove")["Records"][0]
    record["dynamodb"]["StreamViewType"] = view
    if view == "KEYS_ONLY":
        del record["dynamodb"]["NewImage"]
    with pytest.raises(ConfigurationError, match=f"view type is {view}"):
        action_from_record(record)


def test_backfill_row_without_its_key_is_invalid() -> None:
    with pytest.raises(InvalidDocument, match="lacks key attribute 'transactionId'"):
        action_from_item({"userId": {"N": "1"}}, ["userId", "transactionId"], 2)


def test_decimal_input_round_trip() -> None:
    # boto3's TypeSerializer writes Decimal as N text; the model reads it back exactly.
    assert to_document({"n": {"N": str(Decimal("123.456"))}}) == {"n": 123.456}


def test_ids_are_exact_for_all_38_digits_of_dynamodb_numbers() -> None:
    # Keys that differ only at the 38th significant digit are two items in DynamoDB.
    a = "1234567890123456789012345678901234567" + "8"
    b = "1234567890123456789012345678901234567" + "9"
    assert document_id({"k": {"N": a}}) == a
    assert document_id({"k": {"N": b}}) == b
    assert document_id({"k": {"N": "-" + a}}) != document_id({"k": {"N": "-" + b}})
    small = "0.00000000000000000000000000000000000000000000000000001234567890123456789012345678"
    assert document_id({"k": {"N": small}}) == small
    assert document_id({"k": {"N": "9.9999999999999999999999999999999999999E+125"}}) == (
        "99999999999999999999999999999999999999" + "0" * 88
    )
    # Canonical form still merges spellings of one number, as DynamoDB does.
    assert document_id({"k": {"N": a + ".000"}}) == document_id({"k": {"N": a[:-1] + "8E0"}})
