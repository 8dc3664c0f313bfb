"""The one way ddbsearch writes and reads its state files (JSON, owner-only, atomic).

Every file under the state directory (the AWS stack record, the local stack's
state, the worker's status report and checkpoints, backfill checkpoints) goes
through :func:`write_json`: a private temporary file in the same directory,
flushed and fsynced, then renamed over the target, so a reader (or a crash)
never sees half a file. Files are 0600, directories ddbsearch creates 0700.

:func:`exclusive_lock` is the one advisory lock on such a file (a run that must be
the only one on its state, like a backfill on its checkpoint).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ddbsearch.errors import BusyError

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


class LockHeld(BusyError):
    """Another open of the lock file (another process, or another run in this one) holds it."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"{path} is locked by another run ({holder})")
        self.path = path
        self.pid = pid


# flock is not available at all (no fcntl) or not on this file system.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[str | None]:
    """Hold an exclusive advisory lock (``flock``) on ``path`` for the ``with`` block.

    Never waits: raises :class:`LockHeld` at once, with the holder's pid when it is
    known, if another open of ``path`` holds the lock. The lock goes with the open
    file, so the kernel releases it when the holder's process ends in any way
    (Ctrl-C, a crash, SIGKILL): a stale lock file never blocks anyone. The file
    (0600) holds the holder's pid and is left in place on release: removing it would
    let a waiter lock the removed file while a newcomer locks a new one.

    Yields None when the lock is held, or why no lock could be taken where the
    platform or file system has none (no ``fcntl``, e.g. Windows): the block then
    runs unlocked and the caller says so.
    """
    try:
        import fcntl
    except ImportError:
        yield "this platform has no file locks (no fcntl)"
        return
    ensure_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)  # close-on-exec: children never hold it
    try:
        os.fchmod(fd, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(path, _holder(fd)) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise
            yield f"the file system of {path.parent} has no file locks ({exc.strerror})"
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield None
        finally:
            os.ftruncate(fd, 0)  # released: no pid to report any more
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> int | None:
    """The pid the lock's holder wrote, if that process still exists."""
    try:
        pid = int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # the holder has not written it yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # left by a killed holder; the new one has not replaced it yet
    except PermissionError:
        pass  # exists, owned by someone else
    return pid
