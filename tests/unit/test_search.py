"""Query building and result parsing for `ddbsearch search` (no server needed)."""

from __future__ import annotations

import pytest

from ddbsearch.errors import InputError
from ddbsearch.ops.search import (
    FieldInfo,
    SearchRequest,
    build_body,
    endpoint_url,
    flatten_mapping,
    parse_response,
)

MAPPING = {
    "userId": {"type": "double"},
    "amount": {"type": "double"},
    "shortDescription": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
    "merchant": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
    "notes": {"type": "text"},
    "active": {"type": "boolean"},
    "address": {"properties": {"city": {"type": "text", "fields": {"raw": {"type": "keyword"}}}}},
}
FIELDS = flatten_mapping(MAPPING)


def test_mapping_is_flattened_with_keyword_subfields() -> None:
    assert FIELDS["address.city"] == FieldInfo("text", "address.city.raw")
    assert FIELDS["userId"] == FieldInfo("double", None)
    assert FIELDS["notes"].keyword is None


def test_text_query_is_and_over_every_text_field_and_lenient() -> None:
    body = build_body(SearchRequest(text="mega test"), FIELDS)
    sqs = body["query"]["simple_query_string"]
    assert sqs["default_operator"] == "and"
    assert sqs["lenient"] is True
    assert sqs["fields"] == ["address.city", "merchant", "notes", "shortDescription"]
    assert body["size"] == 10
    assert body["highlight"]["fields"] == {"*": {}}


def test_explicit_fields_and_no_text_means_match_all() -> None:
    body = build_body(SearchRequest(text="x", fields=["merchant^2"]), FIELDS)
    assert body["query"]["simple_query_string"]["fields"] == ["merchant^2"]
    assert build_body(SearchRequest(), FIELDS)["query"] == {"match_all": {}}
    with pytest.raises(InputError, match="--field needs a query text"):
        build_body(SearchRequest(fields=["merchant"]), FIELDS)


def test_filters_follow_the_mapping() -> None:
    body = build_body(
        SearchRequest(
            text="x",
            filters=["userId=3", "merchant=Mega Mart", "active=true", "merchant=Corner Bakery"],
        ),
        FIELDS,
    )
    filters = body["query"]["bool"]["filter"]
    assert {"term": {"userId": 3}} in filters
    assert {"term": {"active": True}} in filters
    assert {"terms": {"merchant.keyword": ["Mega Mart", "Corner Bakery"]}} in filters
    # highlights show what the words matched, not the filter terms
    assert body["highlight"]["highlight_query"] == body["query"]["bool"]["must"][0]


def test_filters_on_unmapped_fields_guess_from_the_value() -> None:
    body = build_body(SearchRequest(filters=["newField=2.5", "other=abc", "eq=a=b"]), FIELDS)
    filters = body["query"]["bool"]["filter"]
    assert {"term": {"newField": 2.5}} in filters
    assert {"term": {"other.keyword": "abc"}} in filters
    assert {"term": {"eq.keyword": "a=b"}} in filters  # only the first '=' separates


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("noequals", "expected FIELD=VALUE"),
        ("=3", "expected FIELD=VALUE"),
        ("userId=abc", "userId is a number field"),
        ("active=yes", "boolean field"),
        ("notes=x", "full-text only"),
    ],
)
def test_bad_filters_are_input_errors(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_body(SearchRequest(filters=[spec]), FIELDS)


def test_sort_uses_keyword_subfields_and_validates_order() -> None:
    body = build_body(SearchRequest(sort=["amount:desc", "merchant", "_score"]), FIELDS)
    assert body["sort"][0] == {
        "amount": {"order": "desc", "unmapped_type": "keyword", "missing": "_last"}
    }
    assert next(iter(body["sort"][1])) == "merchant.keyword"
    assert body["sort"][2] == {"_score": {"order": "asc"}}
    with pytest.raises(InputError, match="FIELD:asc or FIELD:desc"):
        build_body(SearchRequest(sort=["amount:up"]), FIELDS)
    with pytest.raises(InputError, match="cannot be sorted"):
        build_body(SearchRequest(sort=["notes"]), FIELDS)


def test_query_json_accepts_a_query_or_a_body() -> None:
    bare = build_body(SearchRequest(query_json='{"match": {"merchant": "mega"}}'), FIELDS)
    assert bare["query"] == {"match": {"merchant": "mega"}}
    full = build_body(
        SearchRequest(query_json='{"query": {"match_all": {}}, "size": 3}', filters=["userId=1"]),
        FIELDS,
    )
    assert full["size"] == 3  # the raw body wins over --size's default
    assert full["query"]["bool"]["must"] == [{"match_all": {}}]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{nope", "malformed JSON"),
        ("[1]", "expected a JSON object"),
        ("{}", "expected a JSON object"),
        ('{"query": {}, "bogus": 1}', "unknown search body key"),
    ],
)
def test_query_json_is_validated(raw: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_body(SearchRequest(query_json=raw), FIELDS)


def test_query_json_excludes_text() -> None:
    with pytest.raises(InputError, match="either a query text or --query-json"):
        build_body(SearchRequest(text="x", query_json='{"match_all": {}}'), FIELDS)


def test_total_lower_bound_is_shown_with_a_greater_or_equal_sign() -> None:
    response = {
        "took": 4,
        "hits": {
            "total": {"value": 10000, "relation": "gte"},
            "hits": [{"_id": "1", "_score": 1.5, "_source": {"a": 1}, "highlight": {"a": ["x"]}}],
        },
    }
    result = parse_response(response, {})
    assert result.total_text == "≥10000"
    assert result.hits[0].to_json() == {"_id": "1", "_score": 1.5, "_source": {"a": 1}}
    exact = parse_response({"took": 1, "hits": {"total": {"value": 3, "relation": "eq"}}}, {})
    assert exact.total_text == "3"


def test_endpoint_without_scheme_is_https() -> None:
    assert endpoint_url("search-x.us-east-1.es.amazonaws.com") == (
        "https://search-x.us-east-1.es.amazonaws.com"
    )
    assert endpoint_url("http://127.0.0.1:9200") == "http://127.0.0.1:9200"


# --------------------------------------------------------------------------- issue 15

LONG = {"type": "double", "fields": {"long": {"type": "long"}}}
FIELDS_LONG = flatten_mapping(
    {
        "orderId": LONG,
        "price": {"type": "double"},
        "currency": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
        "notes": {"type": "text"},
        "at": {"type": "date"},
        "expiresAt": LONG,
    }
)


def test_numbers_know_their_exact_long_subfield() -> None:
    assert FIELDS_LONG["orderId"] == FieldInfo("double", None, "orderId.long")
    assert FIELDS_LONG["price"].long is None


def test_integer_filters_use_the_long_subfield_and_decimals_the_double() -> None:
    big = 1234567890123456789
    body = build_body(
        SearchRequest(filters=[f"orderId={big}", "price=3", "orderId=2.5"]), FIELDS_LONG
    )
    filters = body["query"]["bool"]["filter"]
    assert {
        "bool": {
            "should": [{"term": {"orderId.long": big}}, {"term": {"orderId": 2.5}}],
            "minimum_should_match": 1,
        }
    } in filters
    assert {"term": {"price": 3}} in filters  # no long sub-field: the double
    too_big = build_body(SearchRequest(filters=[f"orderId={2**63}"]), FIELDS_LONG)
    assert too_big["query"]["bool"]["filter"] == [{"term": {"orderId": 2**63}}]


def test_integer_sorts_break_double_ties_on_the_long() -> None:
    body = build_body(SearchRequest(sort=["orderId:desc", "a:b:asc"]), FIELDS_LONG)
    assert [next(iter(c)) for c in body["sort"]] == ["orderId", "orderId.long", "a:b"]
    assert body["sort"][1]["orderId.long"]["order"] == "desc"


def test_aggregations_follow_the_mapping() -> None:
    body = build_body(
        SearchRequest(
            size=0,
            count_by=["currency", "orderId:3"],
            stats=["price"],
            histograms=["price:2.5", "at:1d", "at:month", "at:90m"],
        ),
        FIELDS_LONG,
    )
    aggs = body["aggs"]
    assert aggs["count_by:currency"] == {"terms": {"field": "currency.keyword", "size": 10}}
    assert aggs["count_by:orderId"] == {"terms": {"field": "orderId", "size": 3}}
    assert aggs["stats:price"] == {"stats": {"field": "price"}}
    assert aggs["histogram:price"] == {"histogram": {"field": "price", "interval": 2.5}}
    # the last --histogram of a field wins its name; each interval form separately:
    for interval, expected in [
        ("1d", {"calendar_interval": "day"}),
        ("month", {"calendar_interval": "month"}),
        ("1M", {"calendar_interval": "month"}),
        ("90m", {"fixed_interval": "90m"}),
        ("2d", {"fixed_interval": "2d"}),
    ]:
        one = build_body(SearchRequest(histograms=[f"at:{interval}"]), FIELDS_LONG)
        assert one["aggs"]["histogram:at"] == {"date_histogram": {"field": "at", **expected}}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (SearchRequest(stats=["currency"]), "is a text field, not a number"),
        (SearchRequest(stats=["nope"]), "no such field in the index"),
        (SearchRequest(count_by=["notes"]), "full-text only"),
        (SearchRequest(count_by=["currency:0"]), "must be 1..10000"),
        (SearchRequest(histograms=["price"]), "expected FIELD:INTERVAL"),
        (SearchRequest(histograms=["price:-1"]), "INTERVAL is a number > 0"),
        (SearchRequest(histograms=["at:fortnight"]), "is a date field"),
        (SearchRequest(histograms=["currency:1d"]), "needs a number or a date"),
        (SearchRequest(hide_expired=True), "TTL attribute is not known"),
    ],
)
def test_bad_aggregations_are_input_errors(request_: SearchRequest, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_body(request_, FIELDS_LONG)


def test_raw_aggs_are_kept_and_named_ones_must_not_clash() -> None:
    raw = '{"size": 0, "aggs": {"mine": {"max": {"field": "price"}}}}'
    body = build_body(SearchRequest(query_json=raw, stats=["price"]), FIELDS_LONG)
    assert set(body["aggs"]) == {"mine", "stats:price"}
    clash = '{"aggs": {"stats:price": {"max": {"field": "price"}}}}'
    with pytest.raises(InputError, match="clash"):
        build_body(SearchRequest(query_json=clash, stats=["price"]), FIELDS_LONG)


def test_hide_expired_excludes_past_ttls_only() -> None:
    body = build_body(
        SearchRequest(hide_expired=True, ttl_attribute="expiresAt", now=1_700_000_000.0),
        FIELDS_LONG,
    )
    assert body["query"]["bool"]["must_not"] == [{"range": {"expiresAt": {"lt": 1_700_000_000.0}}}]


def test_aggregation_answers_are_parsed() -> None:
    response = {
        "hits": {"total": {"value": 3, "relation": "eq"}, "hits": []},
        "aggregations": {
            "count_by:currency": {
                "buckets": [{"key": "EUR", "doc_count": 2}],
                "sum_other_doc_count": 1,
            },
            "stats:price": {"count": 3, "min": 1.0, "max": 4.5, "avg": 2.5, "sum": 7.5},
            "histogram:at": {
                "buckets": [
                    {
                        "key": 1704067200000,
                        "key_as_string": "2024-01-01T00:00:00.000Z",
                        "doc_count": 1,
                    }
                ]
            },
            "mine": {"value": 4.5},
        },
    }
    aggs = {a.name: a.to_json() for a in parse_response(response, {}).aggregations}
    assert aggs["count_by:currency"] == {
        "name": "count_by:currency", "type": "count_by", "field": "currency",
        "buckets": [{"key": "EUR", "count": 2}], "other": 1,
    }  # fmt: skip
    assert aggs["stats:price"]["min"] == 1  # integral doubles as integers
    assert aggs["histogram:at"]["buckets"] == [{"key": "2024-01-01T00:00:00.000Z", "count": 1}]
    assert aggs["mine"] == {"name": "mine", "type": "raw", "field": None, "result": {"value": 4.5}}
