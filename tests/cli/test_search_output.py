"""`ddbsearch search` output formats, --fields, aggregations, --all, exact integers,
--hide-expired and completion, against the real emulators (osmem-server, moto)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.bulk import BulkIndexer
from ddbsearch.core.documents import action_from_item, backfill_version
from ddbsearch.core.transport import SearchTransport
from ddbsearch.items import parse_item
from ddbsearch.targets import Target

pytestmark = pytest.mark.integration

runner = CliRunner()
KEYS = ["userId", "transactionId"]
# Numbers carry the exact long sub-field of docs/document-model.md; put explicitly so
# these tests do not depend on which template version created the index.
NUMBER = {
    "type": "double",
    "fields": {"long": {"type": "long", "coerce": False, "ignore_malformed": True}},
}
DOCS = [
    {"userId": 1, "transactionId": "t1", "note": 'comma, and "quotes"', "amount": 5,
     "currency": "EUR", "merchant": {"name": "Café Ünïcode", "city": "Zürich"},
     "tags": ["a", "b"], "at": "2024-01-01T10:00:00Z"},
    {"userId": 2, "transactionId": "t2", "note": "two\nlines\tand a tab", "amount": 50.5,
     "currency": "USD", "merchant": {"name": "Mega Mart", "city": "Oslo"}, "tags": [],
     "at": "2024-01-02T11:00:00Z"},
    {"userId": 3, "transactionId": "t3", "note": "plain", "amount": 20, "currency": "EUR",
     "merchant": {"name": "Corner", "city": "Zürich"}, "at": "2024-01-04T12:00:00Z",
     "flag": True},
]  # fmt: skip


def index_docs(target: Target, docs: list[dict[str, Any]], *, chunk: int = 2000) -> None:
    """Write documents the way the pipeline does (core document model + bulk path)."""
    transport = SearchTransport(target.search_endpoint, sigv4=False)
    version = backfill_version(time.time())
    for start in range(0, len(docs), chunk):
        actions = [
            action_from_item(parse_item(json.dumps(d)), KEYS, version)
            for d in docs[start : start + chunk]
        ]
        report = BulkIndexer(transport, target.index).run(actions, deadline=time.monotonic() + 60)
        assert all(r.outcome.done for r in report.results)
    transport.request("POST", f"/{target.index}/_refresh")


def put_mapping(target: Target, properties: dict[str, Any]) -> None:
    transport = SearchTransport(target.search_endpoint, sigv4=False)
    response = transport.json("PUT", f"/{target.index}/_mapping", {"properties": properties})
    assert response.status == 200, response.body


@pytest.fixture
def indexed(ops_target: Callable[..., Target]) -> Target:
    target = ops_target()
    put_mapping(
        target,
        {"userId": NUMBER, "amount": NUMBER, "at": {"type": "date"}, "flag": {"type": "boolean"}},
    )
    index_docs(target, DOCS)
    return target


def search(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["search", *args], env=env)


# --------------------------------------------------------------------------- formats

FIELDS = "userId,note,merchant.name,tags,flag"


def test_csv_is_rfc_4180_with_json_cells_and_unicode(indexed: Target) -> None:
    result = search("--format", "csv", "--fields", FIELDS, "--sort", "userId")
    assert result.exit_code == 0, result.stderr
    # the bytes: Result.stdout turns \r\n into \n
    assert result.stdout_bytes.decode() == (
        "userId,note,merchant.name,tags,flag\r\n"
        '1,"comma, and ""quotes""",Café Ünïcode,"[""a"",""b""]",\r\n'
        '2,"two\nlines\tand a tab",Mega Mart,[],\r\n'
        "3,plain,Corner,,true\r\n"
    )
    assert result.stderr == "3 hits in " + result.stderr.split(" in ", 1)[1]


def test_tsv_escapes_tabs_and_newlines(indexed: Target) -> None:
    result = search("--format", "tsv", "--fields", FIELDS, "--sort", "userId")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "userId\tnote\tmerchant.name\ttags\tflag\n"
        '1\tcomma, and "quotes"\tCafé Ünïcode\t["a","b"]\t\n'
        "2\ttwo\\nlines\\tand a tab\tMega Mart\t[]\t\n"
        "3\tplain\tCorner\t\ttrue\n"
    )


def test_ndjson_and_json_with_fields(indexed: Target) -> None:
    args = ["--fields", "userId,merchant.city", "--sort", "userId:desc"]
    lines = search("--format", "ndjson", *args)
    assert lines.exit_code == 0, lines.stderr
    assert lines.stdout == (
        '{"userId": 3, "merchant.city": "Zürich"}\n'
        '{"userId": 2, "merchant.city": "Oslo"}\n'
        '{"userId": 1, "merchant.city": "Zürich"}\n'
    )
    assert search("--json", *args).stdout == lines.stdout  # --json is the shorthand
    doc = search("--format", "json", *args)
    assert doc.exit_code == 0, doc.stderr
    parsed = json.loads(doc.stdout)
    assert parsed["hits"] == [json.loads(line) for line in lines.stdout.splitlines()]
    assert (parsed["total"], parsed["total_relation"]) == (3, "eq")
    assert isinstance(parsed["took_ms"], int)


def test_json_without_fields_keeps_the_hit_shape(indexed: Target) -> None:
    result = search("--format", "json", "--filter", "userId=1")
    assert result.exit_code == 0, result.stderr
    (hit,) = json.loads(result.stdout)["hits"]
    assert set(hit) == {"_id", "_score", "_source"}
    assert hit["_source"]["merchant"]["name"] == "Café Ünïcode"
    assert "Café" in result.stdout  # not \u-escaped


def test_csv_default_columns_are_keys_then_fields(indexed: Target) -> None:
    result = search("--format", "csv", "--filter", "userId=3")
    assert result.exit_code == 0, result.stderr
    header, row, end = result.stdout_bytes.decode().split("\r\n")
    assert header == "userId,transactionId,amount,at,currency,flag,merchant,note,tags"
    assert (
        row == "3,t3,20,2024-01-04T12:00:00Z,EUR,true,"
        '"{""name"":""Corner"",""city"":""Zürich""}",plain,'
    )
    assert end == ""


def test_table_with_fields_and_narrow_terminal(indexed: Target) -> None:
    result = search("--fields", "transactionId,merchant.name", env={"COLUMNS": "50"})
    assert result.exit_code == 0, result.stderr
    assert "merchant.name" in result.stderr
    assert "Café Ünïcode" in result.stderr
    long_note = search("--sort", "userId", env={"COLUMNS": "40"})
    assert long_note.exit_code == 0, long_note.stderr
    assert max(len(line) for line in long_note.stderr.splitlines()) <= 40


def test_json_contradicting_format_and_all_with_table_are_one_line_errors(
    indexed: Target,
) -> None:
    for args in (["--json", "--format", "csv"], ["--all"]):
        result = search(*args)
        assert result.exit_code == 2
        assert result.stderr.startswith("error: ")
        assert result.stderr.count("\n") == 1
    assert "--format ndjson" in search("--all").stderr


# --------------------------------------------------------------------------- aggregations


def test_count_by_table_and_json(indexed: Target) -> None:
    table = search("--count-by", "currency", "--size", "0")
    assert table.exit_code == 0, table.stderr
    assert "count by currency" in table.stderr
    assert re.search(r"EUR\s+│\s+2", table.stderr)
    assert re.search(r"USD\s+│\s+1", table.stderr)
    assert "3 hits in" in table.stderr
    result = search("--count-by", "currency", "--count-by", "merchant.city:1", "--size", "0",
                    "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["hits"] == []
    assert data["aggregations"]["count_by:currency"] == {
        "name": "count_by:currency", "type": "count_by", "field": "currency",
        "buckets": [{"key": "EUR", "count": 2}, {"key": "USD", "count": 1}], "other": 0,
    }  # fmt: skip
    city = data["aggregations"]["count_by:merchant.city"]
    assert city["buckets"] == [{"key": "Zürich", "count": 2}]
    assert city["other"] == 1


def test_stats_table_and_ndjson(indexed: Target) -> None:
    table = search("--stats", "amount", "--size", "0")
    assert table.exit_code == 0, table.stderr
    assert "stats of amount" in table.stderr
    assert re.search(r"3\s+│\s+5\s+│\s+50.5\s+│\s+25.16", table.stderr)
    lines = search("--stats", "amount", "--size", "0", "--json")
    assert lines.exit_code == 0, lines.stderr
    (agg,) = [json.loads(line) for line in lines.stdout.splitlines()]
    assert agg["name"] == "stats:amount"
    assert (agg["count"], agg["min"], agg["max"], agg["sum"]) == (3, 5, 50.5, 75.5)
    assert agg["avg"] == pytest.approx(75.5 / 3)


def test_histograms_number_and_date(indexed: Target) -> None:
    numbers = search("--histogram", "amount:25", "--size", "0", "--format", "json")
    assert numbers.exit_code == 0, numbers.stderr
    buckets = json.loads(numbers.stdout)["aggregations"]["histogram:amount"]["buckets"]
    assert buckets == [{"key": 0, "count": 2}, {"key": 25, "count": 0}, {"key": 50, "count": 1}]
    days = search("--histogram", "at:1d", "--size", "0", "--format", "json")
    assert days.exit_code == 0, days.stderr
    agg = json.loads(days.stdout)["aggregations"]["histogram:at"]
    assert [(b["key"][:10], b["count"]) for b in agg["buckets"] if b["count"]] == [
        ("2024-01-01", 1), ("2024-01-02", 1), ("2024-01-04", 1),
    ]  # fmt: skip
    fixed = search("--histogram", "at:2d", "--size", "0")
    assert fixed.exit_code == 0, fixed.stderr
    assert "histogram of at" in fixed.stderr
    bad = search("--histogram", "currency:1d")
    assert bad.exit_code == 2
    assert "a histogram needs a number or a date" in bad.stderr


def test_query_json_aggs_are_printed(indexed: Target) -> None:
    body = {"size": 0, "aggs": {"cities": {"terms": {"field": "merchant.city.keyword"}},
                                "most": {"max": {"field": "amount"}}}}  # fmt: skip
    table = search("--query-json", json.dumps(body))
    assert table.exit_code == 0, table.stderr
    assert re.search(r"Zürich\s+│\s+2", table.stderr)
    assert 'most: {"value": 50.5}' in table.stderr
    lines = search("--query-json", json.dumps(body), "--json")
    aggs = {a["name"]: a for a in map(json.loads, lines.stdout.splitlines())}
    assert aggs["most"] == {"name": "most", "type": "raw", "field": None, "result": {"value": 50.5}}


# --------------------------------------------------------------------------- exact integers


def test_integer_filters_and_sorts_are_exact_on_the_long_subfield(
    ops_target: Callable[..., Target],
) -> None:
    target = ops_target()
    put_mapping(target, {"orderId": NUMBER})
    big = 1234567890123456789  # its neighbours share its double
    index_docs(
        target,
        [{"userId": i, "transactionId": f"o{i}", "orderId": big + i - 1} for i in range(3)]
        + [{"userId": 9, "transactionId": "o9", "orderId": 2.5}],
    )
    result = search("--filter", f"orderId={big}", "--format", "ndjson", "--fields", "orderId")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f'{{"orderId": {big}}}\n'
    either = search("--filter", f"orderId={big}", "--filter", "orderId=2.5", "--json",
                    "--fields", "transactionId", "--sort", "transactionId")  # fmt: skip
    assert either.stdout.splitlines() == ['{"transactionId": "o1"}', '{"transactionId": "o9"}']


# --------------------------------------------------------------------------- --hide-expired


def test_hide_expired_uses_the_tables_ttl_attribute(
    ops_target: Callable[..., Target], moto_endpoint: str
) -> None:
    target = ops_target()
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    no_ttl = search("--hide-expired")
    assert no_ttl.exit_code == 2
    assert "has no time to live enabled" in no_ttl.stderr
    ddb.update_time_to_live(
        TableName=target.table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
    )
    now = int(time.time())
    index_docs(
        target,
        [
            {"userId": 1, "transactionId": "past", "expiresAt": now - 60},
            {"userId": 2, "transactionId": "future", "expiresAt": now + 3600},
            {"userId": 3, "transactionId": "never"},
        ],
    )
    result = search("--hide-expired", "--json", "--fields", "transactionId", "--sort", "userId")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        '{"transactionId": "future"}',
        '{"transactionId": "never"}',
    ]
    assert len(search("--json").stdout.splitlines()) == 3


# --------------------------------------------------------------------------- terminal manners


def test_usage_errors_are_one_line_with_exit_2() -> None:
    for args in (["search", "--size", "10001"], ["--bogus"], ["search", "--format", "xml"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: "), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "--help'" in result.stderr
    assert "'--size'" in runner.invoke(app, ["search", "--size", "10001"]).stderr


def test_help_shows_no_bool_metavar_on_flags() -> None:
    result = runner.invoke(app, ["search", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout
    assert "FIELD=VALUE" in result.stdout


def test_no_color_and_pipes_get_no_colour(indexed: Target) -> None:
    colour = re.compile(r"\x1b\[[0-9;]*3[0-9]m")  # a foreground colour escape
    forced = search("--sort", "userId", env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"})
    assert colour.search(forced.stderr)  # a terminal gets colours (cyan keys)
    no_color = search("--sort", "userId", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert not colour.search(no_color.stderr)
    piped = search("--sort", "userId")  # stderr is a pipe here
    assert "\x1b[" not in piped.stderr


# --------------------------------------------------------------------------- completion


def complete(line: str) -> list[str]:
    """What bash completion offers for ``line`` (the cursor at its end)."""
    words = line.split(" ")
    result = runner.invoke(
        app,
        [],
        prog_name="ddbsearch",
        env={
            "_DDBSEARCH_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        },
    )
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_completion_offers_field_names_from_the_mapping(indexed: Target) -> None:
    assert complete("ddbsearch search --filter cur") == ["currency="]
    assert complete("ddbsearch search --stats am") == ["amount"]
    assert complete("ddbsearch search --fields userId,merchant.c") == ["userId,merchant.city"]
    assert complete("ddbsearch search --sort amount:d") == ["amount:desc"]
    assert "at:" in complete("ddbsearch search --histogram ")
    assert "currency" in complete("ddbsearch search --count-by ")
    assert complete("ddbsearch search --field note") == ["note"]
    assert "--count-by" in complete("ddbsearch search --cou")
    assert "search" in complete("ddbsearch se")


def test_completion_is_silent_without_a_target() -> None:
    assert complete("ddbsearch search --filter cur") == []


def test_completion_reads_a_private_cache_then_the_network(indexed: Target) -> None:
    from ddbsearch.files import write_json
    from ddbsearch.targets import state_home

    assert complete("ddbsearch search --stats am") == ["amount"]
    (cache,) = (state_home() / "cache").glob("fields-*.json")
    assert cache.stat().st_mode & 0o777 == 0o600
    fresh = {"at": time.time(), "fields": {"amortised": ["double", None, None]}}
    write_json(cache, fresh)
    assert complete("ddbsearch search --stats am") == ["amortised"]  # the cache, no request
    write_json(cache, {**fresh, "at": time.time() - 3600})
    assert complete("ddbsearch search --stats am") == ["amount"]  # stale: asked again


def test_completion_gives_up_quietly_on_a_silent_endpoint(indexed: Target) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert complete(f"ddbsearch search --endpoint {url} --stats am") == []
