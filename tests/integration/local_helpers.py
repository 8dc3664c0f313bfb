"""Helpers for the local-stack tests: a handler zip that fails on purpose, by rule."""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Each record's NewImage may carry "mode": raise (function error for the whole
# batch), report (listed in batchItemFailures), sleep (run past the timeout).
# Every invocation appends the keys it saw to $SEEN_FILE, before failing.
RULED_HANDLER = """
import json, os, time

def handler(event, context):
    keys = [int(r["dynamodb"]["Keys"]["id"]["N"]) for r in event["Records"]]
    with open(os.environ["SEEN_FILE"], "a") as f:
        f.write(json.dumps(keys) + "\\n")
    failures = []
    for r in event["Records"]:
        mode = r["dynamodb"].get("NewImage", {}).get("mode", {}).get("S")
        if mode == "raise":
            raise RuntimeError("poison record")
        if mode == "sleep":
            time.sleep(30)
        if mode == "report":
            failures.append({"itemIdentifier": r["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}
"""


def build_zip(path: Path, source: str = RULED_HANDLER) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("handler.py", source)
    return path


def seen_batches(path: Path) -> list[list[int]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
