"""`ddbsearch search` against the real emulators: documents indexed through the core bulk path."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.bulk import BulkIndexer
from ddbsearch.core.documents import action_from_item, backfill_version
from ddbsearch.core.transport import SearchTransport
from ddbsearch.items import parse_item
from ddbsearch.targets import Target, local_state_file

pytestmark = pytest.mark.integration

runner = CliRunner()

DOCS = [
    {"userId": 3, "transactionId": "t1", "shortDescription": "Final mega test 2", "amount": 5,
     "currency": "USD"},
    {"userId": 3, "transactionId": "t2", "shortDescription": "mega sale", "amount": 50,
     "currency": "EUR"},
    {"userId": 4, "transactionId": "t3", "shortDescription": "unit test only", "amount": 20,
     "currency": "GBP"},
    {"userId": 5, "transactionId": "t4", "shortDescription": "another mega test run",
     "amount": 7, "currency": "EUR"},
]  # fmt: skip


@pytest.fixture
def indexed(ops_target: Callable[..., Target]) -> Target:
    """A target whose index holds DOCS, written the way the pipeline writes them."""
    target = ops_target()
    transport = SearchTransport(target.search_endpoint, sigv4=False)
    actions = [
        action_from_item(parse_item(json.dumps(d)), ["userId", "transactionId"],
                         backfill_version(time.time()))
        for d in DOCS
    ]  # fmt: skip
    report = BulkIndexer(transport, target.index, refresh=True).run(
        actions, deadline=time.monotonic() + 30
    )
    assert all(r.outcome.done for r in report.results)
    return target


def test_words_must_all_match_and_hits_show_keys_and_highlights(indexed: Target) -> None:
    result = runner.invoke(app, ["search", "mega test"])
    assert result.exit_code == 0, result.stderr
    err = result.stderr
    assert "2 hits in" in err
    assert "t1" in err
    assert "t4" in err
    assert "t2" not in err  # "mega sale" lacks "test": AND semantics
    assert "t3" not in err
    header = next(line for line in err.splitlines() if "userId" in line)
    assert header.index("userId") < header.index("transactionId") < header.index("score")
    assert "shortDescription:" in err  # the highlighted field


def test_unquoted_words_are_one_query(indexed: Target) -> None:
    quoted = runner.invoke(app, ["search", "--json", "mega test"])
    unquoted = runner.invoke(app, ["search", "--json", "mega", "test"])
    assert unquoted.exit_code == 0, unquoted.stderr
    assert unquoted.stdout == quoted.stdout
    assert len(unquoted.stdout.splitlines()) == 2


def test_json_lines_on_stdout(indexed: Target) -> None:
    result = runner.invoke(app, ["search", "mega", "--json"])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {hit["_source"]["transactionId"] for hit in lines} == {"t1", "t2", "t4"}
    assert all(set(hit) == {"_id", "_score", "_source"} for hit in lines)
    assert "3 hits" in result.stderr


def test_size_zero_counts(indexed: Target) -> None:
    result = runner.invoke(app, ["search", "mega", "--size", "0"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("3 hits in ")
    assert result.stderr.count("\n") == 1


def test_no_hits_is_exit_3(indexed: Target) -> None:
    result = runner.invoke(app, ["search", "nonexistentword"])
    assert result.exit_code == 3
    assert result.stderr.startswith("no hits")
    result = runner.invoke(app, ["search", "nonexistentword", "--json"])
    assert result.exit_code == 3
    assert result.stdout == ""


def test_filters_numbers_strings_and_any_of(indexed: Target) -> None:
    def ids(*args: str) -> set[str]:
        result = runner.invoke(app, ["search", "--json", *args])
        assert result.exit_code in (0, 3), result.stderr
        return {json.loads(x)["_source"]["transactionId"] for x in result.stdout.splitlines()}

    assert ids("mega", "--filter", "userId=3") == {"t1", "t2"}
    assert ids("--filter", "currency=EUR") == {"t2", "t4"}
    assert ids("--filter", "currency=EUR", "--filter", "currency=GBP") == {"t2", "t3", "t4"}
    assert ids("--filter", "currency=EUR", "--filter", "userId=5") == {"t4"}
    assert ids("--filter", "currency=eur") == set()  # exact, on the keyword sub-field


def test_filter_terms_are_not_highlighted(indexed: Target) -> None:
    result = runner.invoke(app, ["search", "mega", "--filter", "currency=EUR"])
    assert result.exit_code == 0, result.stderr
    assert "shortDescription:" in result.stderr
    assert "currency" not in result.stderr


def test_sort_size_and_field(indexed: Target) -> None:
    result = runner.invoke(app, ["search", "--json", "--sort", "amount:desc", "--size", "2"])
    assert result.exit_code == 0, result.stderr
    amounts = [json.loads(x)["_source"]["amount"] for x in result.stdout.splitlines()]
    assert amounts == [50, 20]
    result = runner.invoke(app, ["search", "--json", "--field", "currency", "usd"])
    assert [json.loads(x)["_source"]["transactionId"] for x in result.stdout.splitlines()] == ["t1"]


def test_query_json_and_lower_bound_total(indexed: Target) -> None:
    body = {"query": {"match": {"shortDescription": "mega"}}, "track_total_hits": 1}
    result = runner.invoke(app, ["search", "--query-json", json.dumps(body)])
    assert result.exit_code == 0, result.stderr
    assert "≥1 hit" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--query-json", "{broken"], "error: --query-json: malformed JSON"),
        (["--query-json", "[1, 2]"], "error: --query-json: expected a JSON object"),
        (["--filter", "userId"], "error: --filter 'userId': expected FIELD=VALUE"),
        (["--filter", "userId=abc"], "error: --filter userId=abc: userId is a number field"),
        (["--sort", "amount:sideways"], "error: --sort 'amount:sideways'"),
        (["--query-json", '{"bogus_query": {}}'], "error: search: the search was rejected"),
    ],
)
def test_bad_input_is_exit_2(indexed: Target, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["search", *args])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_unknown_index_is_exit_5(indexed: Target) -> None:
    result = runner.invoke(app, ["search", "--index", "no-such-index", "x"])
    assert result.exit_code == 5
    assert "index 'no-such-index' does not exist" in result.stderr


def test_unreachable_search_endpoint_is_exit_6(indexed: Target) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = runner.invoke(app, ["search", "--endpoint", f"http://127.0.0.1:{port}", "x"])
    assert result.exit_code == 6
    assert "cannot reach the search endpoint" in result.stderr


def test_nothing_deployed_is_exit_4() -> None:
    result = runner.invoke(app, ["search", "x"])
    assert result.exit_code == 4
    assert not local_state_file().exists()
