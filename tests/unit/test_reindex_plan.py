"""The reindex's pure parts: the next configuration, the mapping file, the state file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ddbsearch.core.generations import GenerationConfig
from ddbsearch.errors import ConfigurationError, InputError
from ddbsearch.ops.reindex import (
    ReindexState,
    SchemaOptions,
    _model_refusal,
    describe_config,
    plan_config,
    read_mapping,
)

KEYS = ["userId", "transactionId"]


def test_options_given_replace_the_current_values_and_the_rest_is_kept() -> None:
    current = GenerationConfig.create(
        key_schema=KEYS,
        exclude=["notes"],
        mapping={"createdAt": "date"},
        version_attribute="rev",
        ttl_deletes="keep",
    )
    same = plan_config(current, KEYS)
    assert same == current
    changed = plan_config(current, KEYS, mapping={"sku": "keyword"}, version_attribute="")
    assert changed.mapping == {"sku": {"type": "keyword"}}
    assert changed.exclude == ("notes",)
    assert changed.version_attribute is None
    assert changed.ttl_deletes == "keep"
    reset = plan_config(current, KEYS, reset=True, include=["a.b"])
    assert reset.exclude == ()
    assert reset.include == ("a.b",)
    assert reset.ttl_deletes == "delete"


def test_a_legacy_index_moves_to_key_schema_ids() -> None:
    config = plan_config(None, KEYS)
    assert config.id_scheme == "key-schema"
    assert config.key_schema == tuple(KEYS)
    assert "key-schema" in describe_config(config)
    assert "legacy" in describe_config(None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mapping": {"createdAt": "datetime"}}, "unknown field type 'datetime'"),
        ({"mapping": {"_id": "keyword"}}, "metadata field"),
        ({"mapping": {"price": "long", "price.cents": "long"}}, "cannot exist"),
        ({"exclude": ["userId"]}, "cannot be excluded"),
        ({"mapping": {"userId": {"type": "keyword", "index": False}}}, "key attribute"),
        ({"ttl_deletes": "never"}, "TTL policy"),
        ({"version_attribute": "meta.rev"}, "top-level"),
        ({"include": ["a..b"]}, "not a dotted attribute path"),
    ],
)
def test_invalid_configurations_are_one_line_usage_errors(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace(".", r"\.")) as info:
        plan_config(None, KEYS, **kwargs)  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    assert "\n" not in info.value.message
    with pytest.raises(ConfigurationError):
        SchemaOptions(**kwargs).config(KEYS)  # type: ignore[arg-type]


def test_the_mapping_file_short_and_full_form(tmp_path: Path) -> None:
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"createdAt": "date", "address.city": "keyword"}))
    full = tmp_path / "full.json"
    full.write_text(
        json.dumps(
            {
                "mappings": {
                    "properties": {
                        "createdAt": {"type": "date"},
                        "address": {"properties": {"city": {"type": "keyword"}}},
                    }
                }
            }
        )
    )
    a = plan_config(None, KEYS, mapping=read_mapping(short))
    b = plan_config(None, KEYS, mapping=read_mapping(full))
    assert a.mapping == b.mapping


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read mapping file"), ("{nope", "is not JSON"), ("[1]", "JSON object")],
)
def test_mapping_file_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_mapping(path)


def test_state_file_round_trip_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "reindex" / "state.json"
    state = ReindexState("orders", "orders-000002", ["orders-000001"], "swapped", 12.5, True)
    state.swapped_at = 99.0
    state.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ReindexState.load(path) == state
    path.write_text('{"format": 1, "index": "orders"}')
    assert ReindexState.load(path) is None
    assert ReindexState.load(tmp_path / "missing.json") is None


def test_opensearch_rejections_stop_a_reindex_model_refusals_do_not() -> None:
    assert not _model_refusal(
        "PERMANENT: mapper_parsing_exception: field 'x' (mapped as long) cannot take ..."
    )
    assert not _model_refusal("http_400: OpenSearch refused the document")
    assert _model_refusal("PERMANENT: reserved field name '_id'")
    assert _model_refusal("attribute 'a.b' nests deeper than 34 levels")


# --------------------------------------------------------------------------- fill method


def test_the_fill_is_chosen_like_backfill_by_size_on_aws_and_says_why() -> None:
    """``reindex`` and ``backfill`` share one choice and one line saying which and why."""
    from ddbsearch.ops.export_load import EXPORT_THRESHOLD_BYTES, choose_fill
    from ddbsearch.targets import Target

    aws = Target("aws", "s", "us-east-1", "Orders", "orders", "https://x")
    local = Target("local", "local", "us-east-1", "Orders", "orders", "http://x")
    big = choose_fill(aws, from_export=None, size_bytes=lambda: 250 * 1024**3)
    assert big.export
    assert big.reason == (
        "table Orders holds 250.0 GB (>= 10 GB): loading it from an export (--scan forces a Scan)"
    )
    small = choose_fill(aws, from_export=None, size_bytes=lambda: EXPORT_THRESHOLD_BYTES - 1)
    assert small.method == "scan"
    assert small.reason == (
        "table Orders holds 10.0 GB (< 10 GB): scanning it "
        "(--from-export loads it from an export instead)"
    )
    assert choose_fill(aws, from_export=None, size_bytes=lambda: EXPORT_THRESHOLD_BYTES).export

    def unread() -> int:
        raise AssertionError("the size decides only when nothing was asked, on AWS")

    # Asked for, or on the local stack: no size read, nothing to explain.
    assert choose_fill(local, from_export=None, size_bytes=unread) == choose_fill(
        aws, from_export=False, size_bytes=unread
    )
    assert choose_fill(local, from_export=None, size_bytes=unread).method == "scan"
    asked = choose_fill(aws, from_export=True, size_bytes=unread)
    assert (asked.method, asked.reason) == ("export", None)
    by_arn = choose_fill(local, from_export=None, export_arn="arn:e", size_bytes=unread)
    assert by_arn.export
    with pytest.raises(InputError, match="--export-arn loads an export; drop --scan"):
        choose_fill(aws, from_export=False, export_arn="arn:e", size_bytes=unread)
    with pytest.raises(InputError, match="--export-arn and --detach load an export; drop --scan"):
        choose_fill(aws, from_export=False, export_arn="arn:e", detach=True, size_bytes=unread)


def test_the_state_file_records_an_export_fill_and_reads_older_files(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    state = ReindexState("i", "i-000002", ["i-000001"], "filling", 1.0)
    state.fill, state.load_run = "export", "/runs/abc"
    state.save(path)
    again = ReindexState.load(path)
    assert again is not None
    assert (again.fill, again.export_arn, again.load_run) == ("export", None, "/runs/abc")
    data = json.loads(path.read_text())
    for name in ("fill", "export_arn", "load_run"):
        del data[name]  # a file written before export fills existed
    path.write_text(json.dumps(data))
    old = ReindexState.load(path)
    assert old is not None
    assert (old.fill, old.load_run) == (None, None)
