"""The one item -> document model, shared by the stream handler and the backfill.

Both paths build an :class:`Action` here, so a row indexed by ``backfill`` and the
same row arriving through the stream get the same ``_id``, the same document and
comparable versions. See docs/document-model.md for the rules in prose.

Stdlib only: this module ships inside the Lambda zip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from ddbsearch.core.errors import ConfigurationError, DdbsearchError

if TYPE_CHECKING:
    # Only the type: generations.py builds index bodies from the template, which
    # imports this module.
    from ddbsearch.core.generations import GenerationConfig

AttributeValue = Mapping[str, Any]  # DynamoDB JSON: {"S": "x"}, {"N": "3"}, {"M": {...}}, ...

# OpenSearch rejects an _id longer than 512 bytes.
MAX_ID_BYTES = 512
_HASHED_ID_PREFIX = "sha256:"
_ID_SEPARATOR = "|"

# OpenSearch counts object nesting (arrays do not count). DynamoDB allows 32
# levels; the index template raises OpenSearch's default (20) to this value, so
# every item DynamoDB can store fits, and the check below only fires on an index
# configured lower (MAX_DEPTH is also what the template sets).
MAX_DEPTH = 34

# Metadata fields of OpenSearch: a document may not carry them in its source.
RESERVED_FIELDS = frozenset(
    {
        "_id",
        "_index",
        "_source",
        "_routing",
        "_type",
        "_version",
        "_seq_no",
        "_primary_term",
        "_field_names",
        "_ignored",
        "_size",
        "_meta",
        "_doc_count",
        "_tier",
        "_data_stream_timestamp",
        "_nested_path",
        "_uid",
        "_parent",
        "_all",
    }
)

# Wide enough that normalize() never rounds a DynamoDB number (38 significant digits).
_EXACT = Context(prec=100)

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_TWO_63 = 2.0**63

# Backfill versions sit this many seconds below the read time, so that a clock
# running ahead of DynamoDB's by up to this much still lets every stream write
# made after the read win (see backfill_version).
CLOCK_SKEW_MARGIN_SECONDS = 5


class InvalidDocument(DdbsearchError):
    """The item cannot become an OpenSearch document; ``reason`` says why (no item contents)."""

    error_type = "invalid_document"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingVersion(InvalidDocument):
    """The generation takes versions from an attribute the record does not carry (usable)."""

    error_type = "missing_version_attribute"


@dataclass(frozen=True, slots=True)
class Action:
    """One write to the index: index a document or delete one, at a version."""

    op: Literal["index", "delete"]
    doc_id: str
    version: int
    document: dict[str, Any] | None
    keys: Mapping[str, AttributeValue]
    sequence_number: str | None = None
    # The concrete index (a generation) to write; None: the indexer's own index.
    index: str | None = None


# --------------------------------------------------------------------------- values


def _number(text: str) -> int | float:
    """DynamoDB N -> int when it is an integer that fits a signed 64-bit long, else float.

    Every DynamoDB number (38 significant digits, 1E-130 .. 9.99E+125) is within
    a double's range, so nothing overflows; digits beyond a double's ~17 are
    rounded to the nearest double (documented precision policy).
    """
    digits = text[1:] if text[:1] == "-" else text
    if len(digits) <= 18 and digits.isascii() and digits.isdigit():
        return int(text)  # the common case, exact and fast: 18 digits always fit int64
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidDocument(f"malformed number {text!r}") from None
    if not value.is_finite():
        raise InvalidDocument("number is not finite")
    if value == value.to_integral_value():
        as_int = int(value)
        if _INT64_MIN <= as_int <= _INT64_MAX:
            return as_int
    as_float = float(value)
    if math.isinf(as_float):  # cannot happen for DynamoDB's range; guards hand-made input
        raise InvalidDocument("number is out of range")
    if abs(as_float) == _TWO_63:
        # The exact long sub-field reads the double ±2^63 as Long.MAX/MIN without
        # complaint, so a value just beyond 64 bits would match those integers:
        # one step further from zero, it is out of the long range and skipped.
        as_float = math.nextafter(as_float, math.copysign(math.inf, as_float))
    return as_float


def _binary(value: Any) -> str:
    # Lambda events carry B as base64 text already; boto3 returns bytes.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "value"):  # boto3.dynamodb.types.Binary
        return base64.b64encode(bytes(value.value)).decode("ascii")
    return str(value)


def _binary_sort_key(value: Any) -> bytes:
    if isinstance(value, str):
        return base64.b64decode(value)
    if hasattr(value, "value"):
        return bytes(value.value)
    return bytes(value)


def _kinds(values: Sequence[Any], into: set[str]) -> set[str]:
    """The JSON kinds of a list's leaves as OpenSearch sees them (it flattens arrays)."""
    for v in values:
        if v is None:
            continue
        if isinstance(v, list):
            _kinds(v, into)
        elif isinstance(v, bool):
            into.add("boolean")
        elif isinstance(v, (int, float)):
            into.add("number")
        elif isinstance(v, str):
            into.add("string")
        else:
            into.add("object")
    return into


def _as_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check_name(name: str, path: str, depth: int) -> None:
    if name == "":
        raise InvalidDocument(f"empty attribute name under {path or 'the item'}")
    if "." in name:
        raise InvalidDocument(f"attribute name {_path(path, name)!r} contains a dot")
    if depth == 1 and name in RESERVED_FIELDS:
        raise InvalidDocument(f"reserved field name {name!r}")


def _path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _convert(av: AttributeValue, path: str, depth: int) -> Any:  # noqa: PLR0911, PLR0912
    # depth = number of objects the value sits in (top-level attributes: 1).
    if len(av) != 1:
        raise InvalidDocument(f"attribute {path!r} is not a single-typed DynamoDB value")
    ((tag, value),) = av.items()
    if tag == "S":
        return value
    if tag == "N":
        return _number(value)
    if tag == "BOOL":
        return bool(value)
    if tag == "NULL":
        return None
    if tag == "B":
        return _binary(value)
    if tag == "M":
        if depth + 1 > MAX_DEPTH:
            raise InvalidDocument(f"attribute {path!r} nests deeper than {MAX_DEPTH} levels")
        return _convert_map(value, path, depth + 1)
    if tag == "L":
        items = [_convert(v, path, depth) for v in value]
        if len(_kinds(items, set())) > 1:
            # OpenSearch fields have one type; a list mixing kinds becomes a list
            # of strings (numbers in canonical form, maps and lists as JSON).
            return [_as_text(v) for v in items]
        return items
    if tag == "SS":
        return sorted(value)
    if tag == "NS":
        return [_number(v) for v in sorted(value, key=Decimal)]
    if tag == "BS":
        return [_binary(v) for v in sorted(value, key=_binary_sort_key)]
    raise InvalidDocument(f"attribute {path!r} has unknown DynamoDB type {tag!r}")


def _convert_map(attrs: Mapping[str, AttributeValue], parent: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, av in attrs.items():
        _check_name(name, parent, depth)
        out[name] = _convert(av, _path(parent, name), depth)
    return out


def to_document(
    image: Mapping[str, AttributeValue],
    config: GenerationConfig | None = None,
    key_names: Iterable[str] = (),
) -> dict[str, Any]:
    """A DynamoDB item (DynamoDB JSON) -> the OpenSearch document ddbsearch indexes.

    With a generation's ``config``, its include/exclude paths select the
    attributes first (key attributes, ``key_names`` and the config's key schema,
    are always kept), so an excluded attribute is neither indexed nor checked.

    Raises InvalidDocument for items OpenSearch would reject or misread: reserved
    metadata names, names with dots, empty names, nesting beyond MAX_DEPTH.
    """
    if config is not None and (config.include or config.exclude):
        image = select(image, config, key_names)
    return _convert_map(image, "", 1)


# --------------------------------------------------------------------------- selection
#
# Paths are dotted attribute names (names cannot contain dots: see _check_name).
# A path through a list applies to every map in it. Include keeps the listed
# paths (whole subtrees) and the maps leading to them; exclude removes subtrees
# and wins over include.

_Trie = dict[str, "_Trie | bool"]


def _trie(paths: Iterable[str]) -> _Trie:
    root: _Trie = {}
    for path in paths:
        node: _Trie = root
        parts = path.split(".")
        for n, part in enumerate(parts):
            child = node.get(part)
            if child is True:
                break  # a shorter path covers this one already
            if n == len(parts) - 1:
                node[part] = True
            else:
                if child is None:
                    child = node[part] = {}
                assert isinstance(child, dict)
                node = child
    return root


def select(
    image: Mapping[str, AttributeValue], config: GenerationConfig, key_names: Iterable[str] = ()
) -> dict[str, AttributeValue]:
    """The item reduced to what ``config`` indexes (DynamoDB JSON in, DynamoDB JSON out)."""
    keep = {*key_names, *config.key_schema}
    include: _Trie | bool = _trie(config.include) if config.include else True
    exclude: _Trie | bool = _trie(config.exclude) if config.exclude else False
    out: dict[str, AttributeValue] = {}
    for name, av in image.items():
        if name in keep:
            out[name] = av
            continue
        picked = _select(av, _down(include, name), _down(exclude, name))
        if picked is not None:
            out[name] = picked
    return out


def _down(node: _Trie | bool, name: str) -> _Trie | bool:
    """The sub-trie for ``name``: True/False pass through; a name not in it is False."""
    if isinstance(node, bool):
        return node
    return node.get(name, False)


def _select(av: AttributeValue, include: _Trie | bool, exclude: _Trie | bool) -> Any:  # noqa: PLR0911
    if include is False or exclude is True:
        return None
    if include is True and exclude is False:
        return av
    if len(av) != 1:
        return av  # malformed: to_document reports it
    ((tag, value),) = av.items()
    if tag == "M":
        out = {}
        for name, child in value.items():
            picked = _select(child, _down(include, name), _down(exclude, name))
            if picked is not None:
                out[name] = picked
        if not out and include is not True:
            return None  # nothing the include paths name is in this map
        return {"M": out}
    if tag == "L":
        items = [_select(v, include, exclude) for v in value]
        kept = [v for v in items if v is not None]
        if not kept and include is not True:
            return None
        return {"L": kept}
    # A scalar (or set) where the paths go deeper: included paths name nothing
    # inside it; exclusions below it exclude nothing.
    return None if include is not True else av


# --------------------------------------------------------------------------- ids


def _key_component(av: AttributeValue) -> str:
    ((tag, value),) = av.items()
    if tag == "S":
        text = str(value)
    elif tag == "N":
        # Canonical positional form, so "3", "3.0" and "3E0" name the same item, as in
        # DynamoDB, and 149179528360 stays 149179528360 (not 1.4917952836E+11).
        # Decimal(...) is exact; normalize() rounds to its context's precision, and
        # the default context's 28 digits would merge keys that differ only in
        # DynamoDB's 29th to 38th digits: normalize in a context wide enough for all.
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise InvalidDocument("malformed number in a key attribute") from None
        if not number.is_finite():
            raise InvalidDocument("key number is not finite")
        text = "0" if number == 0 else format(number.normalize(_EXACT), "f")
    elif tag == "B":
        text = _binary(value)
    else:
        raise InvalidDocument(f"key attribute has non-key type {tag!r}")
    return text.replace("\\", "\\\\").replace(_ID_SEPARATOR, "\\" + _ID_SEPARATOR)


def document_id(keys: Mapping[str, AttributeValue], config: GenerationConfig | None = None) -> str:
    """The _id of an item, from its key attributes only (``dynamodb.Keys`` on every event).

    Values are joined with ``|`` in key-schema order (partition key, then sort
    key) when the generation's configuration says so, else in key-name order
    (every index made before generations); ``\\`` and ``|`` inside values are
    escaped, so ("a", "bc") and ("ab", "c") never collide. An id over 512 UTF-8
    bytes is replaced by ``sha256:<hex>`` of the full id (deterministic).
    """
    if not keys:
        raise InvalidDocument("record has no key attributes")
    if config is not None and config.id_scheme == "key-schema":
        order: Sequence[str] = config.key_schema
        if set(order) != set(keys):
            raise InvalidDocument("the record's key attributes do not match the key schema")
    else:
        order = sorted(keys)
    joined = _ID_SEPARATOR.join(_key_component(keys[name]) for name in order)
    encoded = joined.encode("utf-8")
    if len(encoded) <= MAX_ID_BYTES:
        return joined
    return _HASHED_ID_PREFIX + hashlib.sha256(encoded).hexdigest()


# --------------------------------------------------------------------------- versions
#
# External versions order writes per document; OpenSearch keeps the highest.
# Stream records: ApproximateCreationDateTime in milliseconds, times two, plus 1
# (odd). Backfill rows: the read time in whole seconds minus a skew margin, in
# milliseconds, times two (even). Consequences:
# - a stream change made in a later second always beats an earlier one;
# - two changes to one key in the same second carry equal versions; with
#   version_type=external_gte the one applied last wins, which in stream order
#   (per key, Lambda delivers in order) is the newer one. A replay of an older
#   record from that same second can overwrite the newer document until the
#   stream delivers the newer record again (it always does: replays go forward);
# - a backfill row always loses to any stream record of a change made at or after
#   its read (and within CLOCK_SKEW_MARGIN_SECONDS before it), and wins over
#   changes older than that, which the row it read already contains.


def stream_version(approximate_creation_seconds: float) -> int:
    return round(approximate_creation_seconds * 1000) * 2 + 1


# With ``version_attribute`` (tables keeping an increasing version number on
# every item, e.g. optimistic locking) the item's own number is the version on
# every path: writes carry it as is, a delete carries the deleted image's
# number plus one, so a late or replayed write of that same image cannot bring
# the item back. A record or row without a usable number is refused
# (MissingVersion), never indexed at another version.


def attribute_version(
    image: Mapping[str, AttributeValue] | None, name: str, *, delete: bool = False
) -> int:
    """The external version an image's ``name`` attribute gives (see above)."""
    av = None if image is None else image.get(name)
    if av is None:
        raise MissingVersion(f"version attribute {name!r} is missing")
    text = av.get("N") if isinstance(av, Mapping) else None
    if not isinstance(text, str):
        raise MissingVersion(f"version attribute {name!r} is not a number")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise MissingVersion(f"version attribute {name!r} is not a number") from None
    if (
        not number.is_finite()
        or number != number.to_integral_value()
        or not (0 <= number <= _INT64_MAX)
    ):
        raise MissingVersion(f"version attribute {name!r} is not an integer between 0 and 2^63-1")
    version = int(number)
    return min(version + 1, _INT64_MAX) if delete else version


def backfill_version(read_started_at: float) -> int:
    return (int(read_started_at) - CLOCK_SKEW_MARGIN_SECONDS) * 1000 * 2


# --------------------------------------------------------------------------- actions

_INDEXABLE_VIEWS = frozenset({"NEW_IMAGE", "NEW_AND_OLD_IMAGES"})
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


def is_ttl_removal(record: Mapping[str, Any]) -> bool:
    """True for a REMOVE that DynamoDB's TTL made (the stream marks it with a service identity)."""
    identity = record.get("userIdentity")
    return (
        record.get("eventName") == "REMOVE"
        and isinstance(identity, Mapping)
        and identity.get("type") == "Service"
        and identity.get("principalId") == TTL_PRINCIPAL
    )


def record_version(record: Mapping[str, Any], config: GenerationConfig | None = None) -> int:
    """The external version of a stream record's change, under ``config``.

    Raises MissingVersion when the generation takes versions from an attribute
    the record does not carry (a REMOVE needs the old image: NEW_AND_OLD_IMAGES).
    """
    ddb = record["dynamodb"]
    attr = None if config is None else config.version_attribute
    if attr is None:
        return stream_version(float(ddb["ApproximateCreationDateTime"]))
    if record.get("eventName") == "REMOVE":
        old = ddb.get("OldImage")
        if old is None:
            raise MissingVersion(
                f"version attribute {attr!r}: the REMOVE record has no old image "
                "(the stream must be NEW_AND_OLD_IMAGES)"
            )
        return attribute_version(old, attr, delete=True)
    return attribute_version(ddb.get("NewImage"), attr)


def action_from_record(
    record: Mapping[str, Any],
    config: GenerationConfig | None = None,
    index: str | None = None,
    *,
    doc_id: str | None = None,
) -> Action:
    """One DynamoDB stream record (Lambda event shape) -> the index action it implies.

    ``config`` is the configuration of the generation written (None: the
    original model), ``index`` the generation's name (None: the indexer's index).
    Raises ConfigurationError when the stream does not carry new images, and
    InvalidDocument (MissingVersion among them) when the change cannot be indexed.
    """
    ddb = record["dynamodb"]
    keys = ddb["Keys"]
    seq = ddb.get("SequenceNumber")
    if doc_id is None:  # callers that already built it (the handler's collapse) pass it
        doc_id = document_id(keys, config)
    if record["eventName"] == "REMOVE":
        return Action("delete", doc_id, record_version(record, config), None, keys, seq, index)
    view = ddb.get("StreamViewType")
    image = ddb.get("NewImage")
    if image is None or (view is not None and view not in _INDEXABLE_VIEWS):
        raise ConfigurationError(
            f"the table's stream view type is {view or 'unknown'}; ddbsearch needs "
            "NEW_IMAGE or NEW_AND_OLD_IMAGES to index changes",
            hint="enable the stream with NEW_AND_OLD_IMAGES (ddbsearch deploy does)",
        )
    version = record_version(record, config)
    return Action("index", doc_id, version, to_document(image, config, keys), keys, seq, index)


def action_from_item(
    item: Mapping[str, AttributeValue],
    key_names: Sequence[str],
    version: int,
    config: GenerationConfig | None = None,
    index: str | None = None,
) -> Action:
    """A row read by Scan (backfill) -> an index action at a backfill version.

    With a generation's ``version_attribute`` the row's own number is its
    version instead (``version`` is then unused); a row without it is refused.
    """
    try:
        keys = {name: item[name] for name in key_names}
    except KeyError as exc:
        raise InvalidDocument(f"item lacks key attribute {exc.args[0]!r}") from None
    if config is not None and config.version_attribute is not None:
        version = attribute_version(item, config.version_attribute)
    doc_id = document_id(keys, config)
    return Action("index", doc_id, version, to_document(item, config, key_names), keys, None, index)
