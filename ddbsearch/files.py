"""The one way ddbsearch writes and reads its state files (JSON, owner-only, atomic).

Every file under the state directory (the AWS stack record, the local stack's
state, the worker's status report and checkpoints, backfill checkpoints) goes
through :func:`write_json`: a private temporary file in the same directory,
flushed and fsynced, then renamed over the target, so a reader (or a crash)
never sees half a file. Files are 0600, directories ddbsearch creates 0700.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) owner-only if missing; return it."""
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    # Every directory created here is owner-only, parents included (mkdir's
    # parents=True would give them the umask's mode).
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def write_json(path: Path, data: Mapping[str, Any], *, indent: int | None = 2) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and owner-only."""
    write_text(path, json.dumps(data, indent=indent, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, atomically and owner-only."""
    ensure_dir(path.parent)
    # mkstemp creates the file 0600 with a unique name: concurrent writers never share it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return data if isinstance(data, dict) else None
