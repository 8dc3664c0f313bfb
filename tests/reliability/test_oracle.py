"""The oracle itself must be strict, or every convergence check above proves nothing."""

from __future__ import annotations

from ddbsearch.testing.oracle import IndexDiff, canonical, compare, expected_documents


def test_equal_maps_compare_clean() -> None:
    docs = {"a": {"n": 1, "s": "x", "l": [1.5, None], "m": {"t": True}}}
    diff = compare(docs, {"a": {"m": {"t": True}, "l": [1.5, None], "s": "x", "n": 1}})
    assert diff.ok
    assert diff.compared == 1
    assert diff.summary() == "1 documents compared, 0 mismatches"


def test_types_are_not_confused() -> None:
    # Python says True == 1 and 1 == 1.0; the index keeps them apart.
    assert not compare({"a": {"v": True}}, {"a": {"v": 1}}).ok
    assert not compare({"a": {"v": 1}}, {"a": {"v": "1"}}).ok
    assert not compare({"a": {"v": [1, 2]}}, {"a": {"v": [2, 1]}}).ok
    assert not compare({"a": {"v": None}}, {"a": {}}).ok


def test_floats_compare_as_the_index_stores_them() -> None:
    assert canonical({"v": 1e125}) == canonical({"v": 1.0e125})
    assert compare({"a": {"v": 1.2345678901234568e-130}}, {"a": {"v": 1.2345678901234568e-130}}).ok


def test_missing_unexpected_and_different_are_named_by_id_only() -> None:
    diff = compare(
        {"a": {"v": 1}, "b": {"v": 2}, "c": {"secret": "x"}},
        {"b": {"v": 2}, "c": {"secret": "y"}, "d": {"v": 4}},
    )
    assert diff == IndexDiff(compared=4, missing=("a",), unexpected=("d",), different=("c",))
    assert diff.mismatches == 3
    summary = diff.summary()
    assert "missing: 'a'" in summary
    assert "unexpected: 'd'" in summary
    assert "different: 'c'" in summary
    assert "secret" not in summary


def test_expected_documents_sets_aside_items_the_model_rejects() -> None:
    items = [
        {"pk": {"S": "ok"}, "v": {"N": "1"}},
        {"pk": {"S": "dot"}, "a.b": {"S": "x"}},
    ]
    expected = expected_documents(items, ["pk"])
    assert expected.documents == {"ok": {"pk": "ok", "v": 1}}
    assert expected.invalid == {"dot": "attribute name 'a.b' contains a dot"}
