"""Writers for `search --format`: ndjson, json, csv and tsv on stdout (the table is Rich).

Each writer takes hits one at a time, so ``search --all`` streams in bounded memory:
``start(columns)``, ``hit(hit)`` for each, ``finish(summary)``.

- ``ndjson``: one JSON object per hit, then one per aggregation (``{"name": ...,
  "type": ...}``, told apart from hits by having no ``_id``).
- ``json``: one document, ``{"hits": [...], "total": N, "total_relation": "eq"|"gte",
  "took_ms": T, "aggregations": {name: {...}}}``; hits come first so the document can
  be written while hits arrive.
- ``csv``: RFC 4180 (``\\r\\n`` line ends; fields with commas, quotes or line breaks
  quoted, quotes doubled), a header row of the columns.
- ``tsv``: a header row, tab-separated; backslash, tab, CR and LF inside values are
  written ``\\\\``, ``\\t``, ``\\r``, ``\\n`` so every row is one line.

A hit is ``{"_id", "_score", "_source"}`` in JSON unless ``--fields`` chose columns:
then it is ``{column: value}``. In CSV and TSV cells, lists and maps are compact JSON,
``null``/missing is empty, booleans are ``true``/``false``; non-ASCII text is kept.
"""

from __future__ import annotations

import abc
import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ddbsearch.ops.search import Aggregation, Hit

FORMATS = ("table", "json", "ndjson", "csv", "tsv")
PSEUDO_FIELDS = ("_id", "_score")


def parse_fields(specs: Sequence[str] | None) -> list[str] | None:
    """``--fields a,b.c`` (repeatable) -> ["a", "b.c"]; None when not given."""
    if not specs:
        return None
    names = [part.strip() for spec in specs for part in spec.split(",")]
    return [n for n in names if n] or None


def value_at(source: Any, path: str) -> Any:
    """The value at a dotted path; through lists, the list of the values found."""
    value = source
    for part in path.split("."):
        if isinstance(value, list):
            found = [value_at(item, part) for item in value]
            value = [v for v in found if v is not None] or None
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
        if value is None:
            return None
    return value


def hit_value(hit: Hit, column: str) -> Any:
    if column == "_id":
        return hit.id
    if column == "_score":
        return hit.score
    return value_at(hit.source, column)


def plain(value: Any) -> Any:
    """Integral doubles as integers (the index holds numbers as doubles)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def cell(value: Any) -> str:
    """A value as one text cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(plain(value))


def hit_json(hit: Hit, columns: Sequence[str] | None) -> dict[str, Any]:
    if columns is None:
        return hit.to_json()
    return {c: hit_value(hit, c) for c in columns}


@dataclass
class Summary:
    total: int
    total_relation: str = "eq"
    took_ms: int | None = None
    aggregations: list[Aggregation] = field(default_factory=list)


class Writer(abc.ABC):
    """One output format: ``start``, then ``hit`` per hit, then ``finish``."""

    def __init__(self, stream: IO[str], columns: Sequence[str] | None) -> None:
        self.stream = stream
        self.columns = columns
        self.count = 0

    def start(self) -> None:  # noqa: B027 - an optional hook: most formats write no header
        pass

    @abc.abstractmethod
    def hit(self, hit: Hit) -> None: ...

    def finish(self, summary: Summary) -> None:
        self.stream.flush()


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


class NdjsonWriter(Writer):
    def hit(self, hit: Hit) -> None:
        self.stream.write(_dumps(hit_json(hit, self.columns)) + "\n")
        self.count += 1

    def finish(self, summary: Summary) -> None:
        for agg in summary.aggregations:
            self.stream.write(_dumps(agg.to_json()) + "\n")
        super().finish(summary)


class JsonWriter(Writer):
    # The opening is written with the first hit (or at the end), so a search that
    # fails before any hit leaves stdout empty rather than half a document.
    def hit(self, hit: Hit) -> None:
        prefix = '{"hits": [\n' if not self.count else ",\n"
        self.stream.write(prefix + _dumps(hit_json(hit, self.columns)))
        self.count += 1

    def finish(self, summary: Summary) -> None:
        if not self.count:
            self.stream.write('{"hits": [')
        tail: dict[str, Any] = {"total": summary.total, "total_relation": summary.total_relation}
        if summary.took_ms is not None:
            tail["took_ms"] = summary.took_ms
        if summary.aggregations:
            tail["aggregations"] = {a.name: a.to_json() for a in summary.aggregations}
        rest = _dumps(tail)[1:]  # '"total": ...}' continues the open object
        self.stream.write(("\n" if self.count else "") + "], " + rest + "\n")
        super().finish(summary)


class CsvWriter(Writer):
    def __init__(self, stream: IO[str], columns: Sequence[str] | None) -> None:
        super().__init__(stream, columns)
        self._csv = csv.writer(stream, lineterminator="\r\n")

    def start(self) -> None:
        self._csv.writerow(self.columns or ())

    def hit(self, hit: Hit) -> None:
        self._csv.writerow([cell(hit_value(hit, c)) for c in self.columns or ()])
        self.count += 1


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class TsvWriter(Writer):
    def _row(self, values: Sequence[str]) -> None:
        self.stream.write("\t".join(v.translate(_TSV_ESCAPES) for v in values) + "\n")

    def start(self) -> None:
        self._row(list(self.columns or ()))

    def hit(self, hit: Hit) -> None:
        self._row([cell(hit_value(hit, c)) for c in self.columns or ()])
        self.count += 1


WRITERS: dict[str, type[Writer]] = {
    "ndjson": NdjsonWriter,
    "json": JsonWriter,
    "csv": CsvWriter,
    "tsv": TsvWriter,
}


def writer_for(fmt: str, stream: IO[str], columns: Sequence[str] | None) -> Writer:
    return WRITERS[fmt](stream, columns)


def default_columns(key_names: Sequence[str], field_names: Sequence[str]) -> list[str]:
    """CSV/TSV columns without --fields: the table's keys (else _id), then every field."""
    keys = [k for k in key_names if k in field_names]
    return [*(keys or ["_id"]), *(f for f in field_names if f not in keys)]
