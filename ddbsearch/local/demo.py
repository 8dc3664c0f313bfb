"""``ddbsearch demo``: the whole pipeline, end to end, on a throwaway local stack.

Start a stack in a temporary state directory (never the user's own stack, which
keeps running if there is one), deploy the reference table, put the reference
item, wait until a search finds it, and tear everything down again, also on
failure or Ctrl-C.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddbsearch.errors import DdbsearchError, ExitCode
from ddbsearch.local.deploy import deploy_table
from ddbsearch.local.stack import check_prerequisites, start_stack, stop_stack
from ddbsearch.targets import DEFAULT_TABLE

# The reference item of the original blog post.
REFERENCE_ITEM: dict[str, dict[str, str]] = {
    "userId": {"N": "3"},
    "transactionId": {"N": "51"},
    "accountId": {"N": "3"},
    "amount": {"N": "11"},
    "shortDescription": {"S": "Final mega test 2"},
}
QUERY = "mega test"


class DemoFailed(DdbsearchError):
    """The pipeline ran but did not make the item searchable in time."""

    exit_code = ExitCode.UNHEALTHY


@dataclass(frozen=True)
class DemoResult:
    table: str
    index: str
    query: str
    latency_seconds: float
    hit_id: str
    hit_source: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "found": True,
            "table": self.table,
            "index": self.index,
            "query": self.query,
            "latency_ms": round(self.latency_seconds * 1000, 1),
            "hit": {"_id": self.hit_id, "_source": self.hit_source},
        }


def run_demo(
    *,
    timeout: float = 30.0,
    on_progress: Callable[[str], None] | None = None,
    root: Path | None = None,
) -> DemoResult:
    """Run the demo; raises :class:`DemoFailed` if the item is not found within ``timeout``."""
    from ddbsearch.ops.search import SearchRequest, search

    check_prerequisites()  # without the emulators: one line, nothing started or said
    say = on_progress or (lambda _message: None)
    workdir = root or Path(tempfile.mkdtemp(prefix="ddbsearch-demo-"))
    try:
        stack = start_stack(workdir, on_progress=say)
        target = deploy_table(stack, table=DEFAULT_TABLE, on_progress=say)
        say("putting the reference item (userId=3, transactionId=51)")
        ddb = stack.client("dynamodb")
        put_at = time.monotonic()
        ddb.put_item(TableName=target.table, Item=REFERENCE_ITEM)
        say(f"waiting until '{QUERY}' finds it")
        deadline = put_at + timeout
        while True:
            result = search(target, SearchRequest(text=QUERY, size=1, highlight=False))
            if result.hits:
                latency = time.monotonic() - put_at
                hit = result.hits[0]
                return DemoResult(target.table, target.index, QUERY, latency, hit.id, hit.source)
            if time.monotonic() > deadline:
                status = stack.mapping_status(target.table)
                last_error = status.stats.get("last_error") if status is not None else None
                raise DemoFailed(
                    f"the item was not searchable within {timeout:.0f} s"
                    + (f" (last stream worker error: {last_error})" if last_error else ""),
                    hint=f"function log: {stack.function_log(target.table)}",
                )
            time.sleep(0.02)
    finally:
        say("tearing the demo stack down")
        try:
            stop_stack(workdir)
        finally:
            if root is None:
                shutil.rmtree(workdir, ignore_errors=True)
