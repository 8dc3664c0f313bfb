"""`ddbsearch reindex` against the real emulators: the swap, validation, a generation that
cannot be built, --abort, resume after an interruption, --keep-old, a legacy index's migration.

The stream's dual write is the core's (tests/integration/test_generations_core.py);
the reliability round (tests/reliability/test_reindex.py) runs both together.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.core.lifecycle import list_generations
from ddbsearch.core.template import index_body
from ddbsearch.core.transport import SearchTransport
from ddbsearch.errors import Aborted, BusyError, ExitCode
from ddbsearch.ops.reindex import ReindexEvents, abort_reindex, run_reindex, state_path
from ddbsearch.targets import Target
from ddbsearch.testing.data import generate_transactions

pytestmark = pytest.mark.integration

runner = CliRunner()
KEYS = (("userId", "N"), ("transactionId", "N"))
FAST = ["--settle-seconds", "0"]


def fill(target: Target, count: int) -> list[dict[str, Any]]:
    items = list(generate_transactions(count, seed=3))
    client = boto3.client("dynamodb", endpoint_url=target.aws_endpoint, region_name="us-east-1")
    for i in range(0, count, 25):
        batch = [{"PutRequest": {"Item": it}} for it in items[i : i + 25]]
        assert not client.batch_write_item(RequestItems={target.table: batch})["UnprocessedItems"]
    return items


def transport(target: Target) -> SearchTransport:
    return SearchTransport(target.search_endpoint, sigv4=False)


def search_all(target: Target) -> dict[str, dict[str, Any]]:
    t = transport(target)
    t.request("POST", f"/{target.index}/_refresh")
    body = {"query": {"match_all": {}}, "size": 10_000}
    hits = t.json("POST", f"/{target.index}/_search", body).json()["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def gens(target: Target) -> dict[str, tuple[bool, bool]]:
    return {
        g.name: (g.serving, g.building) for g in list_generations(transport(target), target.index)
    }


def mapping_file(tmp_path: Path, body: Any) -> str:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(body))
    return str(path)


@pytest.fixture
def cleanup(osmem_base: str) -> Any:
    made: list[Target] = []
    yield made.append
    t = SearchTransport(osmem_base, sigv4=False)
    for target in made:
        t.request("DELETE", f"/{target.index}-*")


def test_reindex_with_a_new_mapping_swaps_and_drops_the_old_generation(
    ops_target: Callable[..., Target], cleanup: Any, tmp_path: Path
) -> None:
    target = ops_target(KEYS)
    cleanup(target)
    fill(target, 60)
    first = f"{target.index}-000001"
    assert gens(target) == {first: (True, False)}
    mapping = mapping_file(tmp_path, {"merchant": "keyword", "createdAt": "date"})
    args = ["reindex", "--mapping", mapping, "--exclude", "accountId", "--json", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    second = f"{target.index}-000002"
    assert summary["generation"] == second
    assert summary["swapped"] is True
    assert summary["dropped"] == [first]
    assert summary["fill"]["indexed"] == 60
    assert summary["verify"]["ok"] is True
    assert gens(target) == {second: (True, False)}
    docs = search_all(target)
    assert len(docs) == 60
    # Ids follow the key schema (partition key first); the excluded attribute is gone.
    some_id, some = next(iter(docs.items()))
    assert some_id == f"{some['userId']}|{some['transactionId']}"
    assert all("accountId" not in d for d in docs.values())
    props = transport(target).request("GET", f"/{second}/_mapping").json()[second]["mappings"]
    assert props["properties"]["merchant"]["type"] == "keyword"
    assert props["_meta"]["ddbsearch"]["exclude"] == ["accountId"]
    # status names the serving generation and its scheme.
    status = runner.invoke(app, ["status", "--json"])
    checks = {c["name"]: c for c in json.loads(status.stdout)["checks"]}
    assert checks["generations"]["data"]["serving"] == second
    assert checks["generations"]["data"]["id_scheme"] == "key-schema"
    assert checks["generations"]["data"]["reindex_in_progress"] is False
    assert not state_path(target).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mapping", "{bad}"], "unknown field type 'datetime'"),
        (["--exclude", "userId"], "key attribute 'userId' cannot be excluded"),
        (["--mapping", "{impossible}"], "cannot exist"),
        (["--ttl-deletes", "never"], "--ttl-deletes must be"),
    ],
)
def test_an_invalid_configuration_is_one_line_exit_2_and_changes_nothing(
    ops_target: Callable[..., Target], cleanup: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    target = ops_target(KEYS)
    cleanup(target)
    files = {
        "{bad}": mapping_file(tmp_path, {"createdAt": "datetime"}),
        "{impossible}": mapping_file(tmp_path / "..", {"_id": "keyword"}),
    }
    args = [files.get(a, a) for a in args]
    result = runner.invoke(app, ["reindex", *args, *FAST])
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert gens(target) == {f"{target.index}-000001": (True, False)}


def test_a_generation_that_cannot_be_built_stops_before_the_swap_and_abort_drops_it(
    ops_target: Callable[..., Target], cleanup: Any, tmp_path: Path
) -> None:
    target = ops_target(KEYS)
    cleanup(target)
    fill(target, 30)
    assert runner.invoke(app, ["backfill"]).exit_code == 0
    before = search_all(target)
    result = runner.invoke(
        app, ["reindex", "--mapping", mapping_file(tmp_path, {"merchant": "long"}), *FAST]
    )
    assert result.exit_code == 10
    line = result.stderr.strip()
    assert "cannot be built: 30 row(s) refused" in line
    assert "field 'merchant' (mapped as long)" in line
    assert "first ids: '" in line
    building = f"{target.index}-000002"
    # Serving untouched; the building generation left for inspection.
    assert gens(target) == {f"{target.index}-000001": (True, False), building: (False, True)}
    assert search_all(target) == before
    # A second reindex with other options is refused while this one is in progress.
    again = runner.invoke(app, ["reindex", "--exclude", "notes", *FAST])
    assert again.exit_code == 2
    assert "in progress" in again.stderr
    aborted = runner.invoke(app, ["reindex", "--abort", "--json", *FAST])
    assert aborted.exit_code == 0, aborted.stderr
    assert json.loads(aborted.stdout)["dropped"] == [building]
    assert gens(target) == {f"{target.index}-000001": (True, False)}
    assert search_all(target) == before
    assert not state_path(target).exists()


def test_an_interrupted_reindex_continues_where_it_stopped(
    ops_target: Callable[..., Target], cleanup: Any
) -> None:
    target = ops_target(KEYS)
    cleanup(target)
    fill(target, 80)
    stop = threading.Event()
    filled: list[int] = []

    def progress(n: int) -> None:
        filled.append(n)
        stop.set()  # Ctrl-C after the first page

    events = ReindexEvents(progress=progress)
    with pytest.raises(Aborted) as info:
        run_reindex(
            target,
            exclude=["notes"],
            segments=4,
            page_size=5,
            settle_seconds=0,
            retire_seconds=0,
            events=events,
            stop=stop,
        )
    assert "'ddbsearch reindex' again" in (info.value.hint or "")
    assert state_path(target).exists()
    assert gens(target)[f"{target.index}-000002"] == (False, True)
    done_before = sum(filled)
    assert 0 < done_before < 80
    summary = run_reindex(target, settle_seconds=0, retire_seconds=0)
    assert summary.resumed
    assert summary.swapped
    assert summary.fill is not None
    assert summary.fill.resumed
    assert summary.fill.scanned < 80  # finished pages were not read again
    assert summary.config is not None
    assert summary.config.exclude == ("notes",)
    assert len(search_all(target)) == 80
    assert gens(target) == {f"{target.index}-000002": (True, False)}


def test_a_second_reindex_or_abort_is_refused_while_one_runs(
    ops_target: Callable[..., Target], cleanup: Any
) -> None:
    """Two runs on one state file would each drive the other's generation; the second
    is refused at once (exit 15), and the first finishes undisturbed."""
    target = ops_target(KEYS)
    cleanup(target)
    fill(target, 20)
    refusals: list[BusyError] = []

    def progress(n: int) -> None:
        if refusals:
            return
        state_before = state_path(target).read_bytes()
        for attempt in (
            lambda: run_reindex(target, settle_seconds=0, retire_seconds=0),
            lambda: abort_reindex(target, retire_seconds=0),
        ):
            with pytest.raises(BusyError) as refused:
                attempt()
            refusals.append(refused.value)
        assert state_path(target).read_bytes() == state_before

    summary = run_reindex(
        target,
        exclude=["notes"],
        page_size=5,
        settle_seconds=0,
        retire_seconds=0,
        events=ReindexEvents(progress=progress),
    )
    assert [e.exit_code for e in refusals] == [ExitCode.BUSY, ExitCode.BUSY]
    assert f"another reindex of index '{target.index}' is already running" in refusals[0].message
    assert "'ddbsearch reindex --abort' again" in (refusals[1].hint or "")
    assert summary.swapped
    assert len(search_all(target)) == 20
    assert gens(target) == {f"{target.index}-000002": (True, False)}


def test_keep_old_keeps_the_old_generation_out_of_the_aliases(
    ops_target: Callable[..., Target], cleanup: Any
) -> None:
    target = ops_target(KEYS)
    cleanup(target)
    fill(target, 10)
    result = runner.invoke(app, ["reindex", "--keep-old", "--json", *FAST])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["kept"] == [f"{target.index}-000001"]
    assert gens(target) == {
        f"{target.index}-000001": (False, False),
        f"{target.index}-000002": (True, False),
    }


def test_a_legacy_index_migrates_behind_the_alias_in_the_swap(
    ops_target: Callable[..., Target], cleanup: Any
) -> None:
    target = ops_target(KEYS, index=False)
    cleanup(target)
    t = transport(target)
    assert t.json("PUT", f"/{target.index}", index_body()).status == 200
    fill(target, 20)
    assert runner.invoke(app, ["backfill"]).exit_code == 0
    assert gens(target) == {target.index: (True, False)}
    result = runner.invoke(app, ["reindex", "--json", *FAST])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["previous"] == [target.index]
    assert gens(target) == {f"{target.index}-000001": (True, False)}
    assert len(search_all(target)) == 20


# --------------------------------------------------------------------------- deploy --mapping


def test_deploy_validates_the_schema_before_anything_is_created(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ddbsearch.local.deploy as local_deploy

    calls: list[Any] = []
    monkeypatch.setattr(local_deploy, "deploy_local", lambda **kw: calls.append(kw))
    bad = mapping_file(tmp_path, {"createdAt": "datetime"})
    for args, message in (
        (["--mapping", bad], "unknown field type 'datetime'"),
        (["--exclude", "userId"], "key attribute 'userId' cannot be excluded"),
        (["--hash-key", "id:S", "--exclude", "id"], "key attribute 'id' cannot be excluded"),
        (["--mapping", str(tmp_path / "nope.json")], "cannot read mapping file"),
    ):
        result = runner.invoke(app, ["deploy", "--local", *args])
        assert result.exit_code == 2, result.stderr
        assert message in result.stderr
    assert calls == []


def test_the_first_generation_is_built_with_the_deploy_schema(
    ops_target: Callable[..., Target], cleanup: Any
) -> None:
    from ddbsearch.core.template import ensure_index
    from ddbsearch.errors import ConfigurationError
    from ddbsearch.ops.reindex import SchemaOptions, first_generation_config

    target = ops_target(KEYS, index=False)
    cleanup(target)
    t = transport(target)
    schema = SchemaOptions(mapping={"createdAt": "date"}, exclude=["notes"], ttl_deletes="keep")
    config = first_generation_config(t, target.index, schema, ["userId", "transactionId"])
    assert ensure_index(t, target.index, config=config)
    (gen,) = list_generations(t, target.index)
    assert gen.serving
    assert gen.config == config
    assert gen.config is not None
    assert gen.config.id_scheme == "key-schema"
    # Deploying again with the same schema is fine; another one is reindex's job.
    assert first_generation_config(t, target.index, schema, ["userId", "transactionId"])
    with pytest.raises(ConfigurationError, match="exists with another configuration"):
        first_generation_config(
            t, target.index, SchemaOptions(exclude=["x"]), ["userId", "transactionId"]
        )


def test_verification_finds_missing_and_extra_ids(
    ops_target: Callable[..., Target], cleanup: Any
) -> None:
    from ddbsearch.ops.reindex import verify_generation

    target = ops_target(KEYS)
    cleanup(target)
    items = fill(target, 12)
    assert runner.invoke(app, ["backfill"]).exit_code == 0
    gen = f"{target.index}-000001"
    config = list_generations(transport(target), target.index)[0].config
    assert verify_generation(target, gen, config, wait=0).ok
    gone = f"{items[0]['transactionId']['N']}|{items[0]['userId']['N']}"
    t = transport(target)
    assert t.request("DELETE", f"/{gen}/_doc/{gone.replace('|', '%7C')}").status == 200
    assert t.json("PUT", f"/{gen}/_doc/stray", {"userId": 0}).status in (200, 201)
    result = verify_generation(target, gen, config, wait=0)
    assert result.missing == [gone]
    assert result.extra == ["stray"]
    assert result.table_items == 12
    assert result.documents == 12
