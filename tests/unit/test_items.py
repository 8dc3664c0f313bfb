"""Item parsing and validation: plain JSON, DynamoDB JSON, key schema, generator, batching."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ddbsearch.core.pacing import Pacer
from ddbsearch.errors import InputError
from ddbsearch.items import (
    is_dynamodb_json,
    item_from_json,
    parse_item,
    parse_lines,
    validate_item,
    validate_items,
)
from ddbsearch.ops.put import batches
from ddbsearch.tables import KeyAttribute, TableInfo
from ddbsearch.testing.data import generate_transactions

TX = TableInfo(
    name="UsersTransactions",
    keys=(KeyAttribute("userId", "N", "HASH"), KeyAttribute("transactionId", "S", "RANGE")),
)


def test_plain_json_maps_every_json_type() -> None:
    item = parse_item(
        '{"userId": 3, "shortDescription": "Final mega test 2", "ok": true, "none": null,'
        ' "tags": ["a", 1], "nested": {"x": 1.50}}'
    )
    assert item == {
        "userId": {"N": "3"},
        "shortDescription": {"S": "Final mega test 2"},
        "ok": {"BOOL": True},
        "none": {"NULL": True},
        "tags": {"L": [{"S": "a"}, {"N": "1"}]},
        "nested": {"M": {"x": {"N": "1.50"}}},
    }


def test_plain_numbers_are_exact_not_floats() -> None:
    big = "12345678901234567890123456789012345678"  # 38 digits: a float would round it
    item = parse_item(f'{{"a": {big}, "b": 0.1, "c": -1e-5}}')
    assert item["a"] == {"N": big}
    assert item["b"] == {"N": "0.1"}
    assert Decimal(item["c"]["N"]) == Decimal("-0.00001")


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'])
def test_non_finite_numbers_are_rejected(text: str) -> None:
    with pytest.raises(InputError, match="finite"):
        parse_item(text)


def test_numbers_beyond_dynamodb_precision_are_rejected() -> None:
    with pytest.raises(InputError, match="38 significant digits"):
        parse_item('{"a": 123456789012345678901234567890123456789}')
    with pytest.raises(InputError, match="DynamoDB number"):
        parse_item('{"a": 1e200}')


@pytest.mark.parametrize(
    ("number", "fits"),
    [
        ("9.9999999999999999999999999999999999999E+125", True),
        ("1E+126", False),
        ("-1E+126", False),
        ("1E-130", True),
        ("1E-131", False),
        ("0", True),
        ("-0.000", True),
    ],
)
def test_number_magnitude_limits_are_dynamodbs(number: str, fits: bool) -> None:
    raw = {"userId": {"N": "1"}, "x": {"N": number}}
    if fits:
        assert item_from_json(raw)["x"] == {"N": number}
    else:
        with pytest.raises(InputError, match="does not fit a DynamoDB number"):
            item_from_json(raw)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "malformed JSON"),
        ("[1, 2]", "expected a JSON object, got an array"),
        ('"x"', "got a string"),
        ("{}", "empty"),
        ('{"": 1}', "names cannot be empty"),
    ],
)
def test_malformed_input_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_item(text)


def test_dynamodb_json_is_detected_and_converted() -> None:
    raw = {
        "userId": {"N": "3"},
        "blob": {"B": base64.b64encode(b"\x00\x01").decode()},
        "tags": {"SS": ["a", "b"]},
        "scores": {"NS": ["1", "2.5"]},
        "m": {"M": {"inner": {"L": [{"S": "x"}, {"NULL": True}]}}},
        "flag": {"BOOL": False},
    }
    assert is_dynamodb_json(raw)
    item = item_from_json(raw)
    assert item["userId"] == {"N": "3"}
    assert item["blob"] == {"B": b"\x00\x01"}  # wire form: bytes, as boto3 clients take
    assert item["scores"] == {"NS": ["1", "2.5"]}
    assert item["m"]["M"]["inner"]["L"][1] == {"NULL": True}


def test_plain_objects_that_merely_look_typed_somewhere_stay_plain() -> None:
    # One top-level value is not a type-tagged object: the whole item is plain JSON.
    item = parse_item('{"userId": {"N": "3"}, "note": "hi"}')
    assert item["userId"] == {"M": {"N": {"S": "3"}}}
    assert item["note"] == {"S": "hi"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"N": 3}, "N must be a number written as a string"),
        ({"N": "abc"}, "is not a number"),
        ({"N": " 3"}, "is not a number"),
        ({"N": "1_000"}, "is not a number"),
        ({"N": "NaN"}, "is not a number"),
        ({"S": 5}, "S must be a string"),
        ({"BOOL": "true"}, "BOOL must be true or false"),
        ({"NULL": False}, "NULL must be true"),
        ({"B": "not base64!"}, "not valid base64"),
        ({"SS": []}, "non-empty list"),
        ({"SS": ["a", "a"]}, "duplicates"),
        ({"NS": ["1", "1.0"]}, "duplicates"),
        ({"L": {"S": "x"}}, "L must be a list"),
        ({"M": [1]}, "M must be an object"),
        ({"M": {"x": {"Q": "1"}}}, "expected one type tag|unknown DynamoDB type tag"),
    ],
)
def test_dynamodb_json_is_validated_strictly(value: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        item_from_json({"userId": {"N": "1"}, "attr": value})


def test_missing_key_attributes_are_named() -> None:
    with pytest.raises(InputError, match=r"missing key attribute transactionId \(table"):
        validate_item(parse_item('{"userId": 3, "shortDescription": "x"}'), TX)
    with pytest.raises(InputError, match="missing key attributes userId, transactionId"):
        validate_item(parse_item('{"shortDescription": "x"}'), TX)


def test_key_types_and_emptiness_are_checked() -> None:
    with pytest.raises(InputError, match="userId must be of type N, got S"):
        validate_item(parse_item('{"userId": "3", "transactionId": "t"}'), TX)
    with pytest.raises(InputError, match="transactionId cannot be empty"):
        validate_item(parse_item('{"userId": 3, "transactionId": ""}'), TX)


def test_items_over_400kb_are_rejected_before_writing() -> None:
    item = parse_item(json.dumps({"userId": 1, "transactionId": "t", "blob": "x" * 410_000}))
    with pytest.raises(InputError, match="400 KB"):
        validate_item(item, TX)


def test_lines_name_the_bad_line_and_skip_blank_lines() -> None:
    lines = ['{"userId": 1, "transactionId": "a"}', "", '{"userId": 2,', "{}"]
    with pytest.raises(InputError, match=r"^items.jsonl line 3: malformed JSON"):
        parse_lines(lines, source="items.jsonl")
    items = parse_lines([*lines[:2], lines[0]], source="items.jsonl")
    assert [line for line, _ in items] == [1, 3]


def test_validate_items_names_the_item() -> None:
    items = parse_lines(['{"userId": 1, "transactionId": "a"}', '{"userId": 2}'], source="f")
    with pytest.raises(InputError, match="f line 2: missing key attribute transactionId"):
        validate_items(items, TX, "f")


REFERENCE = TableInfo(
    name="UsersTransactions",
    keys=(KeyAttribute("userId", "N", "HASH"), KeyAttribute("transactionId", "N", "RANGE")),
)


def test_generated_transactions_fit_the_reference_table_unique_and_reproducible() -> None:
    items = list(generate_transactions(500, seed=7))
    for item in items:
        validate_item(item, REFERENCE)
    assert len({i["transactionId"]["N"] for i in items}) == 500
    assert len({i["userId"]["N"] for i in items}) > 1
    assert {"amount", "accountId", "shortDescription", "createdAt"} <= set(items[0])
    # the blog post's item has "accountId": 3: generated fields keep those types
    assert {k for k, v in items[0].items() if "N" in v} >= {"userId", "accountId", "amount"}
    again = list(generate_transactions(500, seed=7))
    assert [i["transactionId"] for i in again] == [i["transactionId"] for i in items]


def test_generated_keys_follow_the_table_types() -> None:
    items = list(generate_transactions(200, seed=3, table=TX))  # transactionId is S here
    for item in items:
        validate_item(item, TX)
    assert len({i["transactionId"]["S"] for i in items}) == 200


def test_generator_fills_keys_of_other_tables() -> None:
    other = TableInfo(
        "Other", keys=(KeyAttribute("pk", "S", "HASH"), KeyAttribute("sk", "B", "RANGE"))
    )
    items = list(generate_transactions(50, seed=1, table=other))
    for item in items:
        validate_item(item, other)
    assert len({(i["pk"]["S"], i["sk"]["B"]) for i in items}) == 50


@given(st.lists(st.integers(min_value=0, max_value=30), max_size=200))
def test_batches_never_repeat_a_key_and_keep_order(user_ids: list[int]) -> None:
    items = [{"userId": {"N": str(u)}, "transactionId": {"S": "t"}} for u in user_ids]
    groups = list(batches(items, ["userId", "transactionId"]))
    assert [i for g in groups for i in g] == items
    for group in groups:
        assert 1 <= len(group) <= 25
        assert len({g["userId"]["N"] for g in group}) == len(group)


def test_pacer_averages_the_rate_and_sleeps_off_debt() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10.0, burst=10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.wait()
        pacer.spend(20)  # a 20-unit request against a 10 units/s budget
    # The fifth request may start only once the first four (80 units) minus the
    # 10-unit burst are paid for at 10 units/s: after 7 s, and not earlier.
    assert sum(slept) == pytest.approx(7.0)
    unlimited = Pacer(None, clock=lambda: now[0], sleep=sleep)
    unlimited.spend(1e9)
    unlimited.wait()
    assert sum(slept) == pytest.approx(7.0)


def test_python_values_from_library_callers() -> None:
    item = item_from_json({"n": 3, "f": 0.1, "b": b"\x00\x01", "s": "x"})
    assert item == {"n": {"N": "3"}, "f": {"N": "0.1"}, "b": {"B": b"\x00\x01"}, "s": {"S": "x"}}
    with pytest.raises(InputError, match="must be finite"):
        item_from_json({"x": float("nan")})
    with pytest.raises(InputError, match="unsupported value of type set"):
        item_from_json({"x": {1, 2}})
