"""Searching the index: the OpenSearch client for a target, query building, results.

``ddbsearch search "mega test"`` runs a ``simple_query_string`` over the index's text
fields with ``default_operator: and``: every word must match (somewhere in the
document), which is what people expect from a search box, and more words narrow the
result. ``mega | test`` asks for either word, ``"mega test"`` for the phrase, ``-word``
excludes, ``meg*`` is a prefix: the simple query string syntax never raises a syntax
error on user input.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ddbsearch.errors import (
    AuthError,
    DdbsearchError,
    InputError,
    NotFoundError,
    UnreachableError,
)
from ddbsearch.targets import Target

if TYPE_CHECKING:  # imported when a search runs: `ddbsearch --help` stays fast
    from opensearchpy import OpenSearch

# Highlight markers unlikely to appear in data; the CLI turns them into styles.
MARK_START = "\x02"
MARK_END = "\x03"

NUMERIC_TYPES = frozenset(
    {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
)
_BODY_KEYS = frozenset(
    {
        "query", "size", "from", "sort", "aggs", "aggregations", "_source", "highlight",
        "track_total_hits", "post_filter", "search_after", "min_score", "fields",
    }
)  # fmt: skip
MAX_SIZE = 10_000  # OpenSearch's default index.max_result_window


def endpoint_url(endpoint: str) -> str:
    """The endpoint with a scheme; AWS domain endpoints are printed without one."""
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def client_for(target: Target, *, timeout: float = 30.0) -> OpenSearch:
    """An opensearch-py client: SigV4-signed (requests-aws4auth) for AWS, plain HTTP for
    the local emulator.

    opensearch-py and requests are imported here, when a search runs, not when the CLI
    starts: ``ddbsearch --help`` and the other commands do not pay for them. Credentials
    come from botocore's chain for the target's profile (:func:`ddbsearch.clients.credentials_for`:
    SSO, assume-role, session tokens), without boto3. Requests to a signed endpoint are
    tried up to three times on a dropped connection, a timeout or a 502/503/504; the
    local emulator is asked once, so a stopped stack fails fast.
    """
    from opensearchpy import OpenSearch, RequestsHttpConnection

    url = endpoint_url(target.search_endpoint)
    if not target.sigv4:
        return OpenSearch(hosts=[url], timeout=timeout, max_retries=0)
    from requests_aws4auth import AWS4Auth

    from ddbsearch.clients import credentials_for

    credentials = credentials_for(target)
    if credentials is None:
        raise AuthError(
            "no AWS credentials to sign search requests with",
            hint="configure credentials (aws configure / AWS_PROFILE)",
        )
    # refreshable_credentials: temporary credentials are refreshed before each request.
    auth = AWS4Auth(refreshable_credentials=credentials, region=target.region, service="es")
    return OpenSearch(
        hosts=[url],
        http_auth=auth,
        use_ssl=url.startswith("https://"),
        verify_certs=True,
        connection_class=RequestsHttpConnection,
        timeout=timeout,
        max_retries=2,
        retry_on_timeout=True,
    )


def translate(exc: Exception, target: Target, what: str) -> DdbsearchError:
    """The :mod:`ddbsearch.errors` equivalent of an opensearch-py failure."""
    from opensearchpy import exceptions as ose

    if isinstance(exc, ose.ConnectionError):
        return UnreachableError(
            f"{what}: cannot reach the search endpoint {target.search_endpoint}",
            hint="is the local stack running ('ddbsearch deploy --local') / is the network up?",
        )
    if isinstance(exc, (ose.AuthenticationException, ose.AuthorizationException)):
        return AuthError(
            f"{what}: the search endpoint refused the request ({exc.status_code})",
            hint="check your AWS credentials and the domain access policy",
        )
    if isinstance(exc, ose.NotFoundError):
        return NotFoundError(
            f"index '{target.index}' does not exist on {target.search_endpoint}",
            hint="check --index, or deploy / backfill first",
        )
    if isinstance(exc, ose.RequestError):
        return InputError(f"{what}: the search was rejected: {_reason(exc)}")
    if isinstance(exc, ose.TransportError):
        return DdbsearchError(f"{what}: search endpoint error {exc.status_code}: {_reason(exc)}")
    return exc if isinstance(exc, DdbsearchError) else DdbsearchError(f"{what}: {exc!r}")


def _reason(exc: Any) -> str:
    info = getattr(exc, "info", None)
    if isinstance(info, dict) and isinstance(info.get("error"), dict):
        err = info["error"]
        root = (err.get("root_cause") or [err])[0]
        return f"{root.get('type', 'error')}: {root.get('reason', '')}"
    return str(getattr(exc, "error", exc))


# --------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class FieldInfo:
    type: str
    keyword: str | None = None  # the keyword sub-field for text fields, if any
    # The exact integer sub-field of a number (``amount.long``, docs/document-model.md).
    long: str | None = None

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_TYPES


def flatten_mapping(properties: Mapping[str, Any], prefix: str = "") -> dict[str, FieldInfo]:
    """Field path -> type, from an index mapping's ``properties`` (objects flattened)."""
    out: dict[str, FieldInfo] = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            out.update(flatten_mapping(spec["properties"], f"{path}."))
            continue
        kind = str(spec.get("type", "object"))
        keyword = long = None
        for sub, sub_spec in (spec.get("fields") or {}).items():
            if sub_spec.get("type") == "keyword" and keyword is None:
                keyword = f"{path}.{sub}"
            elif sub_spec.get("type") == "long" and kind in NUMERIC_TYPES and long is None:
                long = f"{path}.{sub}"
        out[path] = FieldInfo(kind, keyword, long)
    return out


def get_fields(client: OpenSearch, target: Target) -> dict[str, FieldInfo]:
    """The index's fields; NotFoundError when the index does not exist."""
    try:
        mapping = client.indices.get_mapping(index=target.index)
    except Exception as exc:
        raise translate(exc, target, f"index '{target.index}'") from None
    props: dict[str, Any] = {}
    for index_mapping in mapping.values():  # one entry (or several behind an alias)
        props.update((index_mapping.get("mappings") or {}).get("properties") or {})
    return flatten_mapping(props)


# --------------------------------------------------------------------------- query


@dataclass
class SearchRequest:
    text: str | None = None
    fields: Sequence[str] = ()
    filters: Sequence[str] = ()  # FIELD=VALUE
    size: int = 10
    sort: Sequence[str] = ()  # FIELD[:asc|desc]
    query_json: str | None = None
    highlight: bool = True
    count_by: Sequence[str] = ()  # FIELD[:N]: the N (default 10) most frequent values
    stats: Sequence[str] = ()  # FIELD: count, min, max, avg, sum
    histograms: Sequence[str] = ()  # FIELD:INTERVAL (a number, or a date interval)
    # Hide items whose TTL attribute (DescribeTimeToLive) is in the past; search() fills
    # ``ttl_attribute`` from the table when this is set.
    hide_expired: bool = False
    ttl_attribute: str | None = None
    now: float | None = None  # the time --hide-expired compares with (default: now)


LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


def _as_number(raw: str) -> int | float | None:
    try:
        number = Decimal(raw.strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    # int(Decimal) is exact: 1234567890123456789 stays itself, never a double.
    return int(number) if number == number.to_integral_value() else float(number)


def _number_target(name: str, info: FieldInfo | None, number: int | float) -> str:
    """Integers go to the exact ``.long`` sub-field when the mapping has one."""
    exact = isinstance(number, int) and LONG_MIN <= number <= LONG_MAX
    return info.long if exact and info is not None and info.long is not None else name


def _filter_value(raw: str, info: FieldInfo | None, spec: str) -> tuple[str, Any]:
    name = spec.split("=", 1)[0]
    if info is None:
        # Not in the mapping (yet): guess from the value, as the dynamic template would map it.
        number = _as_number(raw)
        return (f"{name}.keyword", raw) if number is None else (name, number)
    if info.numeric:
        number = _as_number(raw)
        if number is None:
            raise InputError(f"--filter {spec}: {name} is a number field")
        return _number_target(name, info, number), number
    if info.type == "boolean":
        if raw.lower() not in ("true", "false"):
            raise InputError(f"--filter {spec}: {name} is a boolean field (true or false)")
        return name, raw.lower() == "true"
    if info.type == "text":
        if info.keyword is None:
            raise InputError(f"--filter {spec}: {name} is full-text only (no keyword sub-field)")
        return info.keyword, raw
    return name, raw  # keyword, date, ip, ...: the raw string


def _terms(target_field: str, values: list[Any]) -> dict[str, Any]:
    return (
        {"term": {target_field: values[0]}}
        if len(values) == 1
        else {"terms": {target_field: values}}
    )


def build_filters(specs: Sequence[str], fields: Mapping[str, FieldInfo]) -> list[dict[str, Any]]:
    """``FIELD=VALUE`` -> term filters. Repeating a field means any of its values.

    Integers of a number field are matched on its exact ``.long`` sub-field and
    decimals on the field itself, so ``--filter n=1 --filter n=1.5`` is one
    either-or clause over both.
    """
    grouped: dict[str, dict[str, list[Any]]] = {}
    for spec in specs:
        name, sep, raw = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--filter {spec!r}: expected FIELD=VALUE")
        target_field, value = _filter_value(raw, fields.get(name), f"{name}={raw}")
        grouped.setdefault(name, {}).setdefault(target_field, []).append(value)
    out: list[dict[str, Any]] = []
    for per_target in grouped.values():
        clauses = [_terms(f, values) for f, values in per_target.items()]
        out.append(
            clauses[0]
            if len(clauses) == 1
            else {"bool": {"should": clauses, "minimum_should_match": 1}}
        )
    return out


def build_sort(specs: Sequence[str], fields: Mapping[str, FieldInfo]) -> list[dict[str, Any]]:
    """``FIELD[:asc|desc]`` -> sort clauses, following the mapping.

    Strings sort on their keyword sub-field. A number with an exact ``.long``
    sub-field sorts on the double first and then on the long: doubles order every
    number (decimals included) and never invert two integers, and the long breaks
    the ties of integers beyond 2^53 that share one double, so the order is exact.
    """
    out: list[dict[str, Any]] = []
    for spec in specs:
        name, sep, order = spec.rpartition(":")  # attribute names may hold colons themselves
        if not sep:
            name, order = spec, "asc"
        order = order.lower()
        if not name or order not in ("asc", "desc"):
            raise InputError(f"--sort {spec!r}: expected FIELD, FIELD:asc or FIELD:desc")
        info = fields.get(name)
        names = [name]
        if info is not None and info.type == "text":
            if info.keyword is None:
                raise InputError(f"--sort {spec}: {name} is full-text only and cannot be sorted")
            names = [info.keyword]
        elif info is not None and info.long is not None:
            names = [name, info.long]
        for sort_field in names:
            clause: dict[str, Any] = {"order": order}
            if sort_field != "_score":
                clause["unmapped_type"] = "keyword"  # an index without the field yet: no error
                clause["missing"] = "_last"
            out.append({sort_field: clause})
    return out


def _parse_query_json(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--query-json: malformed JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict) or not obj:
        raise InputError("--query-json: expected a JSON object (a query or a search body)")
    if _BODY_KEYS.intersection(obj):
        unknown = set(obj) - _BODY_KEYS
        if unknown:
            raise InputError(
                f"--query-json: unknown search body key(s) {', '.join(sorted(unknown))}"
            )
        return obj
    return {"query": obj}  # a bare query clause like {"match": {...}}


# --------------------------------------------------------------------------- aggregations

COUNT_BY_DEFAULT = 10
# calendar_interval units (1 of each) and their names; anything else with a unit is fixed.
CALENDAR_UNITS = {"m": "minute", "h": "hour", "d": "day", "w": "week", "M": "month",
                  "q": "quarter", "y": "year"}  # fmt: skip
FIXED_INTERVAL = re.compile(r"^[1-9][0-9]*(ms|s|m|h|d)$")


def _field(option: str, name: str, fields: Mapping[str, FieldInfo]) -> FieldInfo:
    info = fields.get(name)
    if info is None:
        known = ", ".join(sorted(fields)[:8]) or "none yet"
        raise InputError(f"{option} {name}: no such field in the index (fields: {known})")
    return info


def _exact_field(option: str, name: str, info: FieldInfo) -> str:
    """The field that holds a value as a whole: keyword sub-field for strings."""
    if info.type == "text":
        if info.keyword is None:
            raise InputError(f"{option} {name}: {name} is full-text only (no keyword sub-field)")
        return info.keyword
    return name


def _split_suffix(spec: str) -> tuple[str, str | None]:
    name, sep, suffix = spec.rpartition(":")
    return (name, suffix) if sep and name else (spec, None)


def build_aggs(request: SearchRequest, fields: Mapping[str, FieldInfo]) -> dict[str, Any]:
    """The ``aggs`` for --count-by, --stats and --histogram, named ``kind:field``."""
    aggs: dict[str, Any] = {}
    for spec in request.count_by:
        name, top = _split_suffix(spec)
        if top is None or not top.isdigit():
            name, top = spec, None
        size = int(top) if top else COUNT_BY_DEFAULT
        if not 1 <= size <= MAX_SIZE:
            raise InputError(f"--count-by {spec}: the number of values must be 1..{MAX_SIZE}")
        info = _field("--count-by", name, fields)
        aggs[f"count_by:{name}"] = {
            "terms": {"field": _exact_field("--count-by", name, info), "size": size}
        }
    for name in request.stats:
        info = _field("--stats", name, fields)
        if not info.numeric:
            raise InputError(f"--stats {name}: {name} is a {info.type} field, not a number")
        aggs[f"stats:{name}"] = {"stats": {"field": name}}
    for spec in request.histograms:
        name, interval = _split_suffix(spec)
        if not interval:
            raise InputError(f"--histogram {spec!r}: expected FIELD:INTERVAL (amount:100, at:1d)")
        info = _field("--histogram", name, fields)
        aggs[f"histogram:{name}"] = _histogram(spec, name, interval, info)
    return aggs


def _histogram(spec: str, name: str, interval: str, info: FieldInfo) -> dict[str, Any]:
    if info.numeric:
        step = _as_number(interval)
        if step is None or step <= 0:
            raise InputError(
                f"--histogram {spec}: {name} is a number field: INTERVAL is a number > 0"
            )
        return {"histogram": {"field": name, "interval": step}}
    if info.type in ("date", "date_nanos"):
        unit = interval[1:] if interval[:1] == "1" else None
        if interval in CALENDAR_UNITS.values() or (unit in CALENDAR_UNITS):
            calendar = interval if unit is None else CALENDAR_UNITS[unit]
            return {"date_histogram": {"field": name, "calendar_interval": calendar}}
        if FIXED_INTERVAL.match(interval):
            return {"date_histogram": {"field": name, "fixed_interval": interval}}
        raise InputError(
            f"--histogram {spec}: {name} is a date field: INTERVAL is minute, hour, day, week, "
            "month, quarter, year (or 1m, 1h, 1d, 1w, 1M, 1q, 1y) or a fixed 90s, 12h, 2d"
        )
    raise InputError(
        f"--histogram {spec}: {name} is a {info.type} field; a histogram needs a number or a date"
    )


def expired_filter(attribute: str, now: float) -> dict[str, Any]:
    """Documents whose TTL attribute (epoch seconds) is in the past.

    DynamoDB deletes such items eventually (within days), and reads still return
    them until then; an item without the attribute, or with a value that is not a
    number, never expires (DynamoDB skips it), and a range never matches those.
    """
    return {"range": {attribute: {"lt": now}}}


def text_fields(fields: Mapping[str, FieldInfo]) -> list[str]:
    return sorted(name for name, info in fields.items() if info.type == "text")


def build_body(request: SearchRequest, fields: Mapping[str, FieldInfo]) -> dict[str, Any]:
    """The search body for ``request``, checked against the index's ``fields``."""
    if not 0 <= request.size <= MAX_SIZE:
        raise InputError(f"--size must be between 0 and {MAX_SIZE}")
    if request.query_json is not None:
        if request.text:
            raise InputError("give either a query text or --query-json, not both")
        if request.fields:
            raise InputError("--field applies to the query text, not to --query-json")
        body = _parse_query_json(request.query_json)
        query = body.get("query", {"match_all": {}})
    elif request.text and request.text.strip():
        query = {
            "simple_query_string": {
                "query": request.text,
                "fields": list(request.fields) or text_fields(fields) or ["*"],
                "default_operator": "and",
                # A text query over numeric fields would otherwise fail the whole search.
                "lenient": True,
            }
        }
        body = {}
    else:
        if request.fields:
            raise InputError("--field needs a query text")
        query = {"match_all": {}}
        body = {}
    text_query = query
    body["query"] = _filtered(query, request, fields)
    body.setdefault("size", request.size)
    _add_aggs(body, build_aggs(request, fields))
    if request.sort:
        body["sort"] = build_sort(request.sort, fields)
    if request.highlight and "highlight" not in body:
        body["highlight"] = {
            "fields": {"*": {}},
            "pre_tags": [MARK_START],
            "post_tags": [MARK_END],
            "require_field_match": True,
            # Highlight what the words matched, not the --filter terms.
            "highlight_query": text_query,
        }
    return body


def _filtered(
    query: dict[str, Any], request: SearchRequest, fields: Mapping[str, FieldInfo]
) -> dict[str, Any]:
    filters = build_filters(request.filters, fields)
    must_not: list[dict[str, Any]] = []
    if request.hide_expired:
        if request.ttl_attribute is None:
            raise InputError("--hide-expired: the table's TTL attribute is not known")
        now = time.time() if request.now is None else request.now
        must_not.append(expired_filter(request.ttl_attribute, now))
    if filters or must_not:
        clauses: dict[str, Any] = {"must": [query]}
        if filters:
            clauses["filter"] = filters
        if must_not:
            clauses["must_not"] = must_not
        query = {"bool": clauses}
    return query


def _add_aggs(body: dict[str, Any], aggs: dict[str, Any]) -> None:
    if not aggs:
        return
    existing = body.setdefault("aggs", body.pop("aggregations", {}))
    if not isinstance(existing, dict):
        raise InputError("--query-json: aggs must be an object")
    clash = set(aggs) & set(existing)
    if clash:
        raise InputError(f"--query-json: aggregation name(s) {', '.join(sorted(clash))} clash")
    existing.update(aggs)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Hit:
    id: str
    score: float | None
    source: dict[str, Any]
    highlight: dict[str, list[str]] = field(default_factory=dict)
    sort: list[Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"_id": self.id, "_score": self.score, "_source": self.source}


@dataclass(frozen=True)
class Bucket:
    """A value and its count; ``key`` is how OpenSearch names it as text when it does
    (dates, booleans), otherwise the value (integral doubles as integers)."""

    key: Any
    count: int

    @property
    def label(self) -> str:
        return str(self.key)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "count": self.count}


@dataclass(frozen=True)
class Aggregation:
    """One aggregation's answer: buckets (count-by, histograms) or values (stats)."""

    name: str  # "count_by:currency", "stats:amount", "histogram:at", or a --query-json name
    kind: str  # count_by | stats | histogram | raw
    path: str | None  # the field, as the option named it
    buckets: list[Bucket] | None = None
    other: int = 0  # documents in values beyond the top N (count-by)
    values: dict[str, Any] | None = None  # stats: count, min, max, avg, sum
    raw: dict[str, Any] = field(default_factory=dict)  # as OpenSearch answered

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.kind, "field": self.path}
        if self.kind == "raw":
            out["result"] = self.raw
            return out
        if self.buckets is not None:
            out["buckets"] = [b.to_json() for b in self.buckets]
        if self.kind == "count_by":
            out["other"] = self.other
        if self.values is not None:
            out.update(self.values)
        return out


def _plain(value: Any) -> Any:
    """Integral doubles (3.0) as integers: numbers are doubles in the index."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _buckets(result: Mapping[str, Any]) -> list[Bucket] | None:
    raw = result.get("buckets")
    if not isinstance(raw, list):  # (keyed buckets, metrics: not a list of values)
        return None
    return [
        Bucket(
            b["key_as_string"] if "key_as_string" in b else _plain(b.get("key")),
            int(b.get("doc_count", 0)),
        )
        for b in raw
        if isinstance(b, dict)
    ]


def parse_aggregations(raw: Mapping[str, Any]) -> list[Aggregation]:
    out: list[Aggregation] = []
    for name, result in raw.items():
        if not isinstance(result, dict):
            continue
        kind, sep, agg_field = name.partition(":")
        buckets = _buckets(result)
        other = int(result.get("sum_other_doc_count", 0) or 0)
        if not sep or kind not in ("count_by", "stats", "histogram"):
            # a --query-json aggregation: kept as answered; its buckets shown if it has any
            out.append(Aggregation(name, "raw", None, buckets, other, raw=result))
        elif kind == "stats":
            values = {k: _plain(result.get(k)) for k in ("count", "min", "max", "avg", "sum")}
            out.append(Aggregation(name, kind, agg_field, values=values, raw=result))
        else:
            out.append(Aggregation(name, kind, agg_field, buckets or [], other, raw=result))
    return out


@dataclass(frozen=True)
class SearchResult:
    total: int
    total_is_lower_bound: bool  # total.relation == "gte": at least ``total`` documents match
    took_ms: int
    hits: list[Hit]
    body: dict[str, Any]
    key_names: list[str] = field(default_factory=list)  # filled with ``with_key_names``
    aggregations: list[Aggregation] = field(default_factory=list)
    # The index's top-level field names (mapping order sorted), for default columns.
    field_names: list[str] = field(default_factory=list)

    @property
    def total_text(self) -> str:
        return f"≥{self.total}" if self.total_is_lower_bound else str(self.total)


def parse_response(response: Mapping[str, Any], body: dict[str, Any]) -> SearchResult:
    hits_obj = response.get("hits") or {}
    total = hits_obj.get("total", 0)
    if isinstance(total, dict):
        value, relation = int(total.get("value", 0)), str(total.get("relation", "eq"))
    else:  # very old clusters answer a bare number
        value, relation = int(total), "eq"
    hits = [
        Hit(
            id=str(h.get("_id")),
            score=h.get("_score"),
            source=h.get("_source") or {},
            highlight=h.get("highlight") or {},
            sort=h.get("sort"),
        )
        for h in hits_obj.get("hits", [])
    ]
    aggregations = parse_aggregations(response.get("aggregations") or {})
    return SearchResult(
        value, relation == "gte", int(response.get("took", 0)), hits, body,
        aggregations=aggregations,
    )  # fmt: skip


def search(
    target: Target,
    request: SearchRequest | str | None = None,
    *,
    wait: float = 0.0,
    with_key_names: bool = False,
    client: OpenSearch | None = None,
) -> SearchResult:
    """Run ``request`` (or plain query text) against the target's index.

    ``wait`` > 0 retries for up to that many seconds until something matches (the
    stream indexes a write within seconds, not at once). ``with_key_names`` also
    fills :attr:`SearchResult.key_names` (the table's keys, for showing hits).
    """
    if not isinstance(request, SearchRequest):
        request = SearchRequest(text=request, highlight=False)
    client = client or client_for(target)
    fields = get_fields(client, target)
    body = build_body(_with_ttl(target, request), fields)
    deadline = time.monotonic() + wait
    while True:
        try:
            response = client.search(index=target.index, body=body)
        except Exception as exc:
            raise translate(exc, target, "search") from None
        result = parse_response(response, body)
        if result.total or time.monotonic() >= deadline:
            break
        time.sleep(0.05)  # polling the index: a search is the only way to see a new document
    result = replace(result, field_names=top_level_names(fields))
    if with_key_names and result.hits:
        result = replace(result, key_names=key_names(target))
    return result


def top_level_names(fields: Mapping[str, FieldInfo]) -> list[str]:
    return sorted({name.split(".", 1)[0] for name in fields})


def _with_ttl(target: Target, request: SearchRequest) -> SearchRequest:
    if request.hide_expired and request.ttl_attribute is None:
        return replace(request, ttl_attribute=ttl_attribute(target))
    return request


def ttl_attribute(target: Target) -> str:
    """The table's TTL attribute (DescribeTimeToLive); InputError when TTL is off."""
    from ddbsearch import clients

    with clients.aws_errors(f"table '{target.table}'"):
        described = clients.client(target, "dynamodb").describe_time_to_live(TableName=target.table)
    ttl = described.get("TimeToLiveDescription") or {}
    status, attribute = ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")
    if status not in ("ENABLED", "ENABLING") or not attribute:
        raise InputError(
            f"--hide-expired: table '{target.table}' has no time to live enabled "
            f"({str(status or 'DISABLED').lower()}), so nothing expires",
            hint="drop --hide-expired",
        )
    return str(attribute)


# --------------------------------------------------------------------------- every hit

SCAN_PAGE_SIZE = 1_000
# How long OpenSearch keeps the point in time between two pages; renewed by each page.
PIT_KEEP_ALIVE = "2m"


@dataclass(frozen=True)
class Scan:
    """Every hit of a search, streamed page by page (see :func:`scan`)."""

    field_names: list[str]  # the index's top-level fields, for default columns
    hits: Generator[Hit, None, None]  # close() it to end early: that deletes the PIT


def scan(
    target: Target,
    request: SearchRequest | str | None = None,
    *,
    page_size: int = SCAN_PAGE_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
    client: OpenSearch | None = None,
) -> Scan:
    """Every hit of ``request``, past OpenSearch's 10,000-hit window.

    A point in time (PIT, OpenSearch 2.4+) freezes the index's state, pages are read
    with ``search_after`` on the request's sort plus ``_shard_doc`` (a total order),
    and only one page is held in memory. ``on_progress(done, total)`` is called after
    each page. The PIT is deleted when the iterator ends, is closed, or fails,
    including on KeyboardInterrupt (:class:`ddbsearch.ops.index_reader.PointInTime`,
    the reader ``verify`` uses too). osmem-server, the local stack's search engine,
    implements PIT too, so the same path runs locally and on AWS; no scroll fallback.
    """
    if not isinstance(request, SearchRequest):
        request = SearchRequest(text=request)
    if not 1 <= page_size <= MAX_SIZE:
        raise InputError(f"page size must be between 1 and {MAX_SIZE}")
    if request.count_by or request.stats or request.histograms:
        raise InputError("--all streams hits only", hint="ask for aggregations without --all")
    client = client or client_for(target)
    fields = get_fields(client, target)
    body = build_body(replace(_with_ttl(target, request), highlight=False), fields)
    for key in ("aggs", "aggregations", "from", "search_after"):
        if key in body:
            raise InputError(f"--all: the search body cannot set '{key}' (it pages by itself)")
    body["size"] = page_size
    body["sort"] = [*body.get("sort", []), {"_shard_doc": "asc"}]
    body["track_total_hits"] = True
    return Scan(top_level_names(fields), _pages(client, target, body, on_progress))


def _pages(
    client: OpenSearch,
    target: Target,
    body: dict[str, Any],
    on_progress: Callable[[int, int], None] | None,
) -> Generator[Hit, None, None]:
    from ddbsearch.ops.index_reader import PointInTime

    def request(method: str, path: str, payload: Any = None) -> Any:
        # The client's transport: its signing, retries and errors (opensearch-py's own).
        return client.transport.perform_request(method, path, body=payload)

    try:
        pit = PointInTime.open(request, target.index, keep_alive=PIT_KEEP_ALIVE)
    except Exception as exc:
        raise _pit_error(exc, target) from None
    done = 0
    with pit:
        pages = pit.pages(body)
        while True:
            try:
                response = next(pages)
            except StopIteration:
                return
            except Exception as exc:
                raise translate(exc, target, "search --all") from None
            result = parse_response(response, body)
            done += len(result.hits)
            if on_progress is not None:
                on_progress(done, result.total)
            yield from result.hits


def _pit_error(exc: Exception, target: Target) -> DdbsearchError:
    from opensearchpy import exceptions as ose

    # 400/405/501: no point in time API (OpenSearch before 2.4); 404: no such endpoint
    if isinstance(exc, (ose.RequestError, ose.NotFoundError)) or (
        isinstance(exc, ose.TransportError) and exc.status_code in (405, 501)
    ):
        return DdbsearchError(
            f"search --all: {target.search_endpoint} does not support point in time searches",
            hint="--all needs OpenSearch 2.4 or later; use --size (up to 10,000) instead",
        )
    return translate(exc, target, "search --all")


# --------------------------------------------------------------------------- completion

FIELDS_CACHE_SECONDS = 60.0


def cached_fields(
    target: Target, *, timeout: float = 0.3, max_age: float = FIELDS_CACHE_SECONDS
) -> dict[str, FieldInfo]:
    """The index's fields for shell completion: never slow, never an error.

    Read from a cache in the state directory when younger than ``max_age``;
    otherwise one mapping request with ``timeout`` seconds for connecting and
    reading. Any failure gives no fields (completion then offers nothing).
    """
    import hashlib

    from ddbsearch.files import read_json, write_json
    from ddbsearch.targets import state_home

    key = hashlib.sha256(f"{target.search_endpoint}\n{target.index}".encode()).hexdigest()[:16]
    path = state_home() / "cache" / f"fields-{key}.json"
    cached = read_json(path)
    if cached and time.time() - float(cached.get("at", 0)) < max_age:
        raw = cached.get("fields")
        if isinstance(raw, dict):
            return {k: FieldInfo(*v) for k, v in raw.items() if isinstance(v, list)}
    try:
        fields = _fetch_fields(target, timeout)
    except Exception:  # completion must stay silent
        return {}
    with contextlib.suppress(OSError):
        write_json(
            path,
            {
                "at": time.time(),
                "fields": {k: [v.type, v.keyword, v.long] for k, v in fields.items()},
            },
            indent=None,
        )
    return fields


def _fetch_fields(target: Target, timeout: float) -> dict[str, FieldInfo]:
    # The core transport (urllib3) rather than opensearch-py: completion runs on every
    # TAB and must start fast; its timeout bounds the connect as well as the read.
    from ddbsearch.core.transport import SearchTransport

    credentials = None
    if target.sigv4:
        from ddbsearch.clients import credentials_for

        credentials = credentials_for(target)
    transport = SearchTransport(
        target.search_endpoint,
        region=target.region,
        sigv4=target.sigv4,
        timeout=timeout,
        credentials=credentials,
    )
    # The timeout is passed again per request: SearchTransport.request(timeout=None)
    # sends urllib3 no timeout at all, which would hang on an endpoint that never answers.
    response = transport.request("GET", f"/{target.index}/_mapping", timeout=timeout)
    if response.status != 200:
        return {}
    props: dict[str, Any] = {}
    for index_mapping in response.json().values():
        props.update((index_mapping.get("mappings") or {}).get("properties") or {})
    return flatten_mapping(props)


def key_names(target: Target) -> list[str]:
    """The table's key attributes, best effort: search works even without DynamoDB access."""
    if target.key_names:
        return list(target.key_names)
    from ddbsearch import clients
    from ddbsearch.tables import describe_table

    try:
        return describe_table(clients.client(target, "dynamodb"), target.table).key_names
    except DdbsearchError:
        return []


def count_documents(target: Target, *, client: OpenSearch | None = None) -> int:
    """Exact number of documents in the target's index."""
    client = client or client_for(target)
    try:
        return int(client.count(index=target.index)["count"])
    except Exception as exc:
        raise translate(exc, target, f"index '{target.index}'") from None
