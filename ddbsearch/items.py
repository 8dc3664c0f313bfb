"""Items as users type them, checked against the table before anything is written.

Two input shapes are accepted, one item per JSON object:

* plain JSON: ``{"userId": 3, "shortDescription": "Final mega test 2"}``. Numbers become
  ``N`` exactly (parsed as :class:`~decimal.Decimal`, never through a float), strings
  ``S``, booleans ``BOOL``, ``null`` ``NULL``, arrays ``L`` and objects ``M``.
* DynamoDB JSON: ``{"userId": {"N": "3"}}``. An object is read as DynamoDB JSON when
  *every* top-level value is an object with exactly one key and that key is a DynamoDB
  type tag (``S N B BOOL NULL M L SS NS BS``); such input is validated strictly.

Items are returned in the low-level wire form boto3 clients take (DynamoDB JSON with
``B``/``BS`` values as ``bytes``). Nothing here talks to AWS: the table comes from
:mod:`ddbsearch.tables`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Context, Decimal, DecimalException, InvalidOperation
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT

from ddbsearch.errors import InputError
from ddbsearch.tables import TableInfo

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

TYPE_TAGS = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})
MAX_ITEM_BYTES = 400 * 1024
DYNAMODB_MAX_NESTING = 32  # DynamoDB's nesting limit for documents
# DynamoDB numbers: 1E-130 <= |n| <= 9.9999999999999999999999999999999999999E+125.
MIN_EXPONENT = -130
MAX_EXPONENT = 125


# --------------------------------------------------------------------------- parsing


def _reject_constant(name: str) -> Any:
    raise InputError(f"{name} is not a valid number (DynamoDB numbers must be finite)")


def _loads(text: str) -> Any:
    try:
        return json.loads(
            text, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply") from None


_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _dynamodb_number(value: Decimal | str, where: str) -> str:
    """The DynamoDB number string for ``value`` (exactly as written), or InputError."""
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        # Decimal() alone would accept " 3", "1_000", "NaN" and "Infinity".
        raise InputError(f"{where}: {value!r} is not a number")
    try:
        d = Decimal(value) if isinstance(value, str) else value
    except (InvalidOperation, ValueError):  # pragma: no cover - the regex rules these out
        raise InputError(f"{where}: {value!r} is not a number") from None
    if not d.is_finite():
        raise InputError(f"{where}: {value} is not a valid number (must be finite)")
    too_big = "(at most 38 significant digits, magnitude 1E-130 to 9.99..E+125)"
    try:
        # Up to 38 significant digits (boto3's DYNAMODB_CONTEXT traps rounding) ...
        exact = Context.create_decimal(DYNAMODB_CONTEXT, d)
    except DecimalException:
        raise InputError(f"{where}: {value} does not fit a DynamoDB number {too_big}") from None
    # ... and a magnitude DynamoDB stores: that context's Emax (126) lets 1E+126 through.
    if exact and not MIN_EXPONENT <= exact.adjusted() <= MAX_EXPONENT:
        raise InputError(f"{where}: {value} does not fit a DynamoDB number {too_big}")
    # Keep what the user wrote (3 -> "3", 12.50 -> "12.50"); Decimal's str is exact.
    return value if isinstance(value, str) else str(exact)


def is_dynamodb_json(obj: Mapping[str, Any]) -> bool:
    """True when every top-level value is a one-key object keyed by a DynamoDB type tag."""
    return bool(obj) and all(
        isinstance(v, dict) and len(v) == 1 and next(iter(v)) in TYPE_TAGS for v in obj.values()
    )


def _from_plain(value: Any, where: str, depth: int = 0) -> AttributeValue:  # noqa: PLR0911 - one return per value type
    if depth > DYNAMODB_MAX_NESTING:
        raise InputError(f"{where}: nested deeper than DynamoDB's {DYNAMODB_MAX_NESTING} levels")
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, Decimal):
        return {"N": _dynamodb_number(value, where)}
    if isinstance(value, int):  # Python callers (JSON input arrives as Decimal)
        return {"N": _dynamodb_number(Decimal(value), where)}
    if isinstance(value, float):  # its shortest repr, never the binary expansion
        return {"N": _dynamodb_number(Decimal(repr(value)), where)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, list):
        return {"L": [_from_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {"M": {k: _from_plain(v, f"{where}.{k}", depth + 1) for k, v in value.items()}}
    raise InputError(f"{where}: unsupported value of type {type(value).__name__}")


def _decode_binary(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"{where}: binary values must be base64 strings")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: {value[:20]!r} is not valid base64") from None


def _typed_scalar(tag: str, inner: Any, where: str) -> AttributeValue:
    if tag == "S":
        if not isinstance(inner, str):
            raise InputError(f"{where}: S must be a string")
        return {"S": inner}
    if tag == "N":
        if not isinstance(inner, str):
            raise InputError(f'{where}: N must be a number written as a string, like {{"N": "3"}}')
        return {"N": _dynamodb_number(inner, where)}
    if tag == "B":
        return {"B": _decode_binary(inner, where)}
    if tag == "BOOL":
        if not isinstance(inner, bool):
            raise InputError(f"{where}: BOOL must be true or false")
        return {"BOOL": inner}
    if inner is not True:  # NULL
        raise InputError(f"{where}: NULL must be true")
    return {"NULL": True}


def _typed_set(tag: str, inner: Any, where: str) -> AttributeValue:
    if not isinstance(inner, list) or not inner:
        raise InputError(f"{where}: {tag} must be a non-empty list")
    if tag in ("SS", "NS") and not all(isinstance(v, str) for v in inner):
        kind = "strings" if tag == "SS" else "numbers written as strings"
        raise InputError(f"{where}: {tag} must hold {kind} only")
    out: list[Any]
    canonical: list[Any]
    if tag == "SS":
        out = canonical = list(inner)
    elif tag == "NS":
        out = [_dynamodb_number(v, where) for v in inner]
        canonical = [Decimal(v) for v in out]
    else:  # BS
        out = canonical = [_decode_binary(v, where) for v in inner]
    if len(set(canonical)) != len(canonical):
        raise InputError(f"{where}: {tag} contains duplicates (sets hold unique values)")
    return {tag: out}


def _from_typed(value: Any, where: str, depth: int = 0) -> AttributeValue:
    """Validate one DynamoDB JSON attribute value strictly; return its wire form."""
    if depth > DYNAMODB_MAX_NESTING:
        raise InputError(f"{where}: nested deeper than DynamoDB's {DYNAMODB_MAX_NESTING} levels")
    if not isinstance(value, dict) or len(value) != 1:
        raise InputError(f'{where}: expected one type tag like {{"S": "text"}}')
    tag, inner = next(iter(value.items()))
    if tag not in TYPE_TAGS:
        raise InputError(f"{where}: unknown DynamoDB type tag '{tag}'")
    if tag == "L":
        if not isinstance(inner, list):
            raise InputError(f"{where}: L must be a list")
        return {"L": [_from_typed(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(inner)]}
    if tag == "M":
        if not isinstance(inner, dict):
            raise InputError(f"{where}: M must be an object")
        return {"M": {k: _from_typed(v, f"{where}.{k}", depth + 1) for k, v in inner.items()}}
    if tag in ("SS", "NS", "BS"):
        return _typed_set(tag, inner, where)
    return _typed_scalar(tag, inner, where)


def item_from_json(obj: Any, where: str = "item") -> Item:
    """An item in wire form from a parsed JSON object (plain or DynamoDB JSON)."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {_json_kind(obj)}")
    if not obj:
        raise InputError(f"{where}: the item is empty")
    for name in obj:
        if name == "":
            raise InputError(f"{where}: attribute names cannot be empty")
    if is_dynamodb_json(obj):
        return {k: _from_typed(v, f"{where}: {k}") for k, v in obj.items()}
    return {k: _from_plain(v, f"{where}: {k}") for k, v in obj.items()}


def _json_kind(obj: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", Decimal: "a number"}.get(
        type(obj), "null" if obj is None else type(obj).__name__
    )


def parse_item(text: str) -> Item:
    """One item from ``--item`` text."""
    return item_from_json(_loads(text))


def parse_lines(lines: Iterable[str], source: str = "file") -> list[tuple[int, Item]]:
    """Every item of a JSON-lines input with its line number; errors name the line.

    Blank lines are skipped. Everything is parsed before anything is returned, so a
    bad line 900 means nothing is written.
    """
    items: list[tuple[int, Item]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append((number, item_from_json(_loads(line))))
        except InputError as exc:
            raise InputError(f"{source} line {number}: {exc.message}", hint=exc.hint) from None
    if not items:
        raise InputError(f"{source}: no items (expected one JSON object per line)")
    return items


# --------------------------------------------------------------------------- validation


def _number_size(text: str) -> int:
    digits = len(text.lstrip("-").replace(".", "").lower().split("e")[0].strip("0")) or 1
    return (digits + 1) // 2 + 1


def _size(value: AttributeValue) -> int:
    """Approximate stored size of an attribute value (DynamoDB's published sizing rules)."""
    tag, inner = next(iter(value.items()))
    if tag in ("L", "M"):
        entries = inner.items() if tag == "M" else (("", v) for v in inner)
        return 3 + sum(1 + len(k.encode()) + _size(v) for k, v in entries)
    if tag in ("SS", "NS", "BS"):
        return sum(_size({tag[0]: v}) for v in inner)
    sizes = {
        "S": lambda: len(inner.encode()),
        "N": lambda: _number_size(inner),
        "B": lambda: len(inner),
    }
    return sizes.get(tag, lambda: 1)()  # BOOL, NULL: one byte


def item_size(item: Mapping[str, AttributeValue]) -> int:
    return sum(len(name.encode()) + _size(value) for name, value in item.items())


def validate_item(
    item: Mapping[str, AttributeValue], table: TableInfo, where: str = "item"
) -> None:
    """Check ``item`` fits ``table``: key attributes present, typed right, non-empty; size."""
    missing = [k.name for k in table.keys if k.name not in item]
    if missing:
        raise InputError(
            f"{where}: missing key attribute{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (table '{table.name}' is keyed on "
            f"{', '.join(f'{k.name} ({k.type})' for k in table.keys)})"
        )
    for key in table.keys:
        value = item[key.name]
        tag, inner = next(iter(value.items()))
        if tag != key.type:
            raise InputError(
                f"{where}: key attribute {key.name} must be of type {key.type}, got {tag}"
            )
        if tag in ("S", "B") and len(inner) == 0:
            raise InputError(f"{where}: key attribute {key.name} cannot be empty")
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise InputError(f"{where}: item is {size} bytes; DynamoDB's limit is 400 KB")


def validate_items(items: Sequence[tuple[int, Item]], table: TableInfo, source: str) -> None:
    """Validate every numbered item before anything is written (all or nothing)."""
    for line, item in items:
        validate_item(item, table, f"{source} line {line}")


def key_of(item: Mapping[str, AttributeValue], key_names: Sequence[str]) -> tuple[Any, ...]:
    """A hashable identity for an item's primary key (numbers compared by value)."""
    out: list[Any] = []
    for name in key_names:
        tag, inner = next(iter(item[name].items()))
        out.append(Decimal(inner) if tag == "N" else inner)
    return tuple(out)
