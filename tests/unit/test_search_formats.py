"""The `search --format` writers, byte for byte (no server needed)."""

from __future__ import annotations

import io

import pytest

from ddbsearch.cli.formats import (
    Summary,
    cell,
    default_columns,
    parse_fields,
    value_at,
    writer_for,
)
from ddbsearch.ops.search import Hit

HITS = [
    Hit("1", 1.5, {"a": 'x, "y"', "m": {"n": {"k": "Ünï"}}, "l": [{"s": 1}, {"s": 2.0}]}),
    Hit("2", None, {"a": "line\r\nbreak\ttab\\", "m": None, "b": False}),
]


def write(fmt: str, columns: list[str] | None) -> str:
    out = io.StringIO(newline="")
    writer = writer_for(fmt, out, columns)
    writer.start()
    for hit in HITS:
        writer.hit(hit)
    writer.finish(Summary(2, "eq", 3))
    return out.getvalue()


def test_nested_paths_and_lists() -> None:
    assert value_at(HITS[0].source, "m.n.k") == "Ünï"
    assert value_at(HITS[0].source, "l.s") == [1, 2.0]
    assert value_at(HITS[1].source, "m.n") is None
    assert parse_fields(["a, m.n.k", "b"]) == ["a", "m.n.k", "b"]
    assert parse_fields(None) is None


def test_cells() -> None:
    assert cell(None) == ""
    assert cell(True) == "true"
    assert cell(3.0) == "3"
    assert cell(2.5) == "2.5"
    assert cell({"k": ["ü", 1]}) == '{"k":["ü",1]}'


def test_csv() -> None:
    assert write("csv", ["_id", "a", "m.n.k", "l.s", "b"]) == (
        '_id,a,m.n.k,l.s,b\r\n1,"x, ""y""",Ünï,"[1,2.0]",\r\n2,"line\r\nbreak\ttab\\",,,false\r\n'
    )


def test_tsv() -> None:
    assert write("tsv", ["_id", "a", "b"]) == (
        '_id\ta\tb\n1\tx, "y"\t\n2\tline\\r\\nbreak\\ttab\\\\\tfalse\n'
    )


def test_ndjson_and_json() -> None:
    assert write("ndjson", ["_id", "_score", "m.n.k"]) == (
        '{"_id": "1", "_score": 1.5, "m.n.k": "Ünï"}\n{"_id": "2", "_score": null, "m.n.k": null}\n'
    )
    assert write("json", ["_id"]) == (
        '{"hits": [\n{"_id": "1"},\n{"_id": "2"}\n], "total": 2, "total_relation": "eq", '
        '"took_ms": 3}\n'
    )
    empty = io.StringIO()
    writer = writer_for("json", empty, None)
    writer.start()
    writer.finish(Summary(0))
    assert empty.getvalue() == '{"hits": [], "total": 0, "total_relation": "eq"}\n'


@pytest.mark.parametrize(
    ("keys", "fields", "expected"),
    [
        (["pk"], ["x", "pk"], ["pk", "x"]),
        ([], ["x"], ["_id", "x"]),
        (["pk", "sk"], ["pk", "a"], ["pk", "a"]),
    ],
)
def test_default_columns(keys: list[str], fields: list[str], expected: list[str]) -> None:
    assert default_columns(keys, fields) == expected
