"""What `ddbsearch search` imports: only what the search needs (docs/benchmarks.md, start-up).

Each run is a fresh interpreter (the console script's entry point, in a subprocess) that
reports the modules it loaded. `search --help` loads no AWS or HTTP client package. A
search talks to OpenSearch through opensearch-py (the design card's client), so it loads
opensearch-py and what opensearch-py itself imports (requests; aiohttp when installed),
nothing more. A search of the local stack signs nothing and calls no AWS API, so it loads
no boto3/botocore and no requests-aws4auth; a SigV4 search adds botocore (its credential
chain) and requests-aws4auth, but not boto3 and s3transfer. No search loads the local
stack's packages. Import sets, not timings: timings belong to bench/install.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ddbsearch.core.bulk import BulkIndexer
from ddbsearch.core.documents import action_from_item, backfill_version
from ddbsearch.core.template import ensure_index
from ddbsearch.core.transport import SearchTransport
from ddbsearch.items import parse_item
from ddbsearch.local.state import record_target
from ddbsearch.targets import Target, save_aws_target, set_current

REPO = Path(__file__).resolve().parents[2]
WATCHED = (
    "boto3", "botocore", "s3transfer", "opensearchpy", "requests", "requests_aws4auth",
    "aiohttp", "moto", "osmem_server", "flask", "werkzeug",
)  # fmt: skip
# Runs the CLI as the console script does, then prints the watched packages it loaded.
_RUN = f"""
import json, sys
from ddbsearch.cli import main
sys.argv[0] = "ddbsearch"
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({WATCHED!r}))
print("\\n" + json.dumps({{"code": code, "loaded": loaded}}))
"""


def opensearch_py_imports() -> list[str]:
    """The watched packages `import opensearchpy` loads by itself, in a fresh process."""
    code = (
        "import json, sys, opensearchpy\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({WATCHED!r}))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return list(json.loads(proc.stdout))


def run_cli(*args: str) -> tuple[int, list[str], str]:
    """(exit code, watched packages loaded, stderr) of `ddbsearch ARGS` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.stdout.strip(), proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(report["code"] or 0), report["loaded"], proc.stderr


@pytest.fixture
def local_index(osmem_base: str) -> Iterator[Target]:
    index = f"startup{uuid.uuid4().hex[:8]}"
    transport = SearchTransport(osmem_base, sigv4=False)
    ensure_index(transport, index)
    actions = [
        action_from_item(
            parse_item(json.dumps({"userId": i, "note": f"mega row {i}"})),
            ["userId"],
            backfill_version(1_700_000_000),
        )
        for i in range(3)
    ]
    report = BulkIndexer(transport, index).run(actions, deadline=time.monotonic() + 60)
    assert all(r.outcome.done for r in report.results)
    transport.request("POST", f"/{index}/_refresh")
    target = Target(
        kind="local", name="local", region="us-east-1", table="Startup", index=index,
        search_endpoint=osmem_base, sigv4=False, key_names=("userId",),
    )  # fmt: skip
    record_target(target)
    set_current("local", "local")
    yield target
    transport.request("DELETE", f"/{index}")


def test_help_loads_no_aws_or_http_client_package() -> None:
    code, loaded, stderr = run_cli("search", "--help")
    assert code == 0, stderr
    assert loaded == []


@pytest.mark.integration
def test_a_local_search_loads_opensearch_py_and_no_aws_package(local_index: Target) -> None:
    code, loaded, stderr = run_cli("search", "mega")
    assert code == 0, stderr
    assert "3 hits" in stderr
    assert loaded == opensearch_py_imports()
    assert "requests" in loaded  # opensearch-py's own import; no boto3, no signing


@pytest.mark.integration
def test_search_all_of_the_local_stack_loads_no_aws_package(local_index: Target) -> None:
    code, loaded, stderr = run_cli("search", "--all", "--format", "ndjson")
    assert code == 0, stderr
    assert stderr.endswith("3 hits\n")
    assert loaded == opensearch_py_imports()


@pytest.fixture
def signed_domain() -> Iterator[str]:
    """A loopback stand-in for an AWS domain that answers the mapping and one search."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            ok = self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 ")
            self._reply(
                {"idx": {"mappings": {"properties": {"t": {"type": "text"}}}}} if ok else {}
            )

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hit = {"_id": "k", "_score": 1.0, "_source": {"pk": "k", "t": "mega"}}
            self._reply(
                {"took": 1, "hits": {"total": {"value": 1, "relation": "eq"}, "hits": [hit]}}
            )

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_signed_search_loads_botocore_and_aws4auth_but_not_boto3(signed_domain: str) -> None:
    target = Target(
        kind="aws", name="signed", region="eu-west-1", table="T", index="idx",
        search_endpoint=signed_domain, sigv4=True, key_names=("pk",),
    )  # fmt: skip
    save_aws_target(target)
    set_current("aws", "signed")
    code, loaded, stderr = run_cli("search", "mega")
    assert code == 0, stderr
    assert "1 hit" in stderr
    assert loaded == sorted({*opensearch_py_imports(), "botocore", "requests_aws4auth"})


def test_every_command_module_is_in_the_lazy_table() -> None:
    """A command defined in a module of ddbsearch.cli but missing from COMMANDS would
    silently vanish from the CLI (the root group builds only what COMMANDS names)."""
    import importlib
    import pkgutil

    import typer

    import ddbsearch.cli
    from ddbsearch.cli import app
    from ddbsearch.cli.app import COMMANDS

    defined: dict[str, str] = {}
    for info in pkgutil.iter_modules(ddbsearch.cli.__path__):
        module = importlib.import_module(f"ddbsearch.cli.{info.name}")
        sub_app = getattr(module, "app", None)
        if isinstance(sub_app, typer.Typer) and info.name != "app":
            for command in sub_app.registered_commands:
                name = command.name or (command.callback.__name__ if command.callback else "")
                defined[name.replace("_", "-")] = info.name
    assert defined == COMMANDS
    group = typer.main.get_command(app)
    assert list(group.commands) == list(COMMANDS)  # type: ignore[attr-defined]
