"""Searching the index: the OpenSearch client for a target, query building, results.

``ddbsearch search "mega test"`` runs a ``simple_query_string`` over the index's text
fields with ``default_operator: and``: every word must match (somewhere in the
document), which is what people expect from a search box, and more words narrow the
result. ``mega | test`` asks for either word, ``"mega test"`` for the phrase, ``-word``
excludes, ``meg*`` is a prefix: the simple query string syntax never raises a syntax
error on user input.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from ddbsearch.errors import (
    AuthError,
    DdbsearchError,
    InputError,
    NotFoundError,
    UnreachableError,
)
from ddbsearch.targets import Target

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


def client_for(target: Target, *, timeout: float = 30.0) -> Any:
    """An opensearch-py client: SigV4-signed for AWS, plain HTTP for the local emulator."""
    from opensearchpy import OpenSearch, RequestsHttpConnection

    url = endpoint_url(target.search_endpoint)
    if not target.sigv4:
        return OpenSearch(hosts=[url], timeout=timeout, max_retries=0)
    from requests_aws4auth import AWS4Auth

    from ddbsearch.clients import session

    credentials = session(target).get_credentials()
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


def flatten_mapping(properties: Mapping[str, Any], prefix: str = "") -> dict[str, FieldInfo]:
    """Field path -> type, from an index mapping's ``properties`` (objects flattened)."""
    out: dict[str, FieldInfo] = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            out.update(flatten_mapping(spec["properties"], f"{path}."))
            continue
        kind = str(spec.get("type", "object"))
        keyword = None
        for sub, sub_spec in (spec.get("fields") or {}).items():
            if sub_spec.get("type") == "keyword":
                keyword = f"{path}.{sub}"
                break
        out[path] = FieldInfo(kind, keyword)
    return out


def get_fields(client: Any, target: Target) -> dict[str, FieldInfo]:
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


def _as_number(raw: str) -> int | float | None:
    try:
        number = Decimal(raw)
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return int(number) if number == number.to_integral_value() else float(number)


def _filter_value(raw: str, info: FieldInfo | None, spec: str) -> tuple[str, Any]:
    name = spec.split("=", 1)[0]
    if info is None:
        # Not in the mapping (yet): guess from the value, as the dynamic template would map it.
        number = _as_number(raw)
        return (f"{name}.keyword", raw) if number is None else (name, number)
    if info.type in NUMERIC_TYPES:
        number = _as_number(raw)
        if number is None:
            raise InputError(f"--filter {spec}: {name} is a number field")
        return name, number
    if info.type == "boolean":
        if raw.lower() not in ("true", "false"):
            raise InputError(f"--filter {spec}: {name} is a boolean field (true or false)")
        return name, raw.lower() == "true"
    if info.type == "text":
        if info.keyword is None:
            raise InputError(f"--filter {spec}: {name} is full-text only (no keyword sub-field)")
        return info.keyword, raw
    return name, raw  # keyword, date, ip, ...: the raw string


def build_filters(specs: Sequence[str], fields: Mapping[str, FieldInfo]) -> list[dict[str, Any]]:
    """``FIELD=VALUE`` -> term filters. Repeating a field means any of its values."""
    grouped: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, raw = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--filter {spec!r}: expected FIELD=VALUE")
        target_field, value = _filter_value(raw, fields.get(name), f"{name}={raw}")
        grouped.setdefault(target_field, []).append(value)
    return [
        {"term": {f: values[0]}} if len(values) == 1 else {"terms": {f: values}}
        for f, values in grouped.items()
    ]


def build_sort(specs: Sequence[str], fields: Mapping[str, FieldInfo]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec in specs:
        name, _, order = spec.partition(":")
        order = (order or "asc").lower()
        if not name or order not in ("asc", "desc"):
            raise InputError(f"--sort {spec!r}: expected FIELD, FIELD:asc or FIELD:desc")
        info = fields.get(name)
        if info is not None and info.type == "text":
            if info.keyword is None:
                raise InputError(f"--sort {spec}: {name} is full-text only and cannot be sorted")
            name = info.keyword
        clause: dict[str, Any] = {"order": order}
        if name != "_score":
            clause["unmapped_type"] = "keyword"  # an index without the field yet: no error
            clause["missing"] = "_last"
        out.append({name: clause})
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
    filters = build_filters(request.filters, fields)
    if filters:
        query = {"bool": {"must": [query], "filter": filters}}
    body["query"] = query
    body.setdefault("size", request.size)
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
class SearchResult:
    total: int
    total_is_lower_bound: bool  # total.relation == "gte": at least ``total`` documents match
    took_ms: int
    hits: list[Hit]
    body: dict[str, Any]
    key_names: list[str] = field(default_factory=list)  # filled with ``with_key_names``

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
    return SearchResult(value, relation == "gte", int(response.get("took", 0)), hits, body)


def search(
    target: Target,
    request: SearchRequest | str | None = None,
    *,
    wait: float = 0.0,
    with_key_names: bool = False,
    client: Any = None,
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
    body = build_body(request, fields)
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
    if with_key_names and result.hits:
        result = replace(result, key_names=key_names(target))
    return result


def key_names(target: Target) -> list[str]:
    """The table's key attributes, best effort: search works even without DynamoDB access."""
    from ddbsearch import clients
    from ddbsearch.tables import describe_table

    if target.key_names:
        return list(target.key_names)
    try:
        return describe_table(clients.client(target, "dynamodb"), target.table).key_names
    except DdbsearchError:
        return []


def count_documents(target: Target, *, client: Any = None) -> int:
    """Exact number of documents in the target's index."""
    client = client or client_for(target)
    try:
        return int(client.count(index=target.index)["count"])
    except Exception as exc:
        raise translate(exc, target, f"index '{target.index}'") from None
