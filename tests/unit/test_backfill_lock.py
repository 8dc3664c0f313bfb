"""The exclusive lock a backfill holds on its checkpoint (no emulator, no child process).

flock locks belong to an open file, not to a process: a second open in this same
process conflicts with the first exactly as another process would, so all of it is
testable here. Release on a process's death is tested with SIGKILL in
tests/cli/test_backfill.py.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from ddbsearch import clients, files
from ddbsearch.errors import BusyError, ExitCode
from ddbsearch.ops.backfill import checkpoint_path, lock_path, run_backfill
from ddbsearch.targets import Target

# Above Linux's largest pid (2**22): no process has it.
NO_SUCH_PID = 2**22 + 1


class PastTheLock(Exception):
    """The run got past its lock to its first client."""


@pytest.fixture(autouse=True)
def _no_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    def client(*args: Any, **kwargs: Any) -> Any:
        raise PastTheLock

    monkeypatch.setattr(clients, "client", client)


def nowhere() -> Target:
    """A target nothing answers for (no client is ever made here: see _no_clients)."""
    return Target(
        kind="local",
        name="local",
        region="us-east-1",
        table="Tx",
        index="tx",
        search_endpoint="http://127.0.0.1:9",
        aws_endpoint="http://127.0.0.1:9",
        sigv4=False,
    )


def test_the_lock_file_is_owner_only_names_its_holder_and_stays(tmp_path: Path) -> None:
    path = tmp_path / "state" / "x.json.lock"
    with files.exclusive_lock(path) as unlocked:
        assert unlocked is None
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert path.read_text() == f"{os.getpid()}\n"
    assert path.exists()  # removing it would let two runs lock two different files
    assert path.read_text() == ""


def test_a_second_holder_is_refused_at_once_with_the_first_ones_pid(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with files.exclusive_lock(path):
        with pytest.raises(files.LockHeld) as held, files.exclusive_lock(path):
            pytest.fail("two holders of one lock")
        assert held.value.pid == os.getpid()
        assert held.value.exit_code == ExitCode.BUSY
        # The refused attempt left the holder's record alone.
        assert path.read_text() == f"{os.getpid()}\n"
    with files.exclusive_lock(path) as unlocked:  # released: the next one gets it
        assert unlocked is None


def test_the_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with pytest.raises(KeyboardInterrupt), files.exclusive_lock(path):
        raise KeyboardInterrupt
    with files.exclusive_lock(path) as unlocked:
        assert unlocked is None


def test_a_pid_left_by_a_dead_holder_is_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text(f"{NO_SUCH_PID}\n")  # a killed holder's record: no lock comes with it
    with files.exclusive_lock(path) as unlocked:
        assert unlocked is None
        assert path.read_text() == f"{os.getpid()}\n"
        # The moment between a new holder's flock and its pid write: the old pid is not named.
        path.write_text(f"{NO_SUCH_PID}\n")
        with pytest.raises(files.LockHeld) as held, files.exclusive_lock(path):
            pass
        assert held.value.pid is None
        assert "pid unknown" in held.value.message


def test_without_fcntl_the_block_runs_unlocked_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl raises ImportError
    path = tmp_path / "x.lock"
    with files.exclusive_lock(path) as unlocked:
        assert unlocked is not None
        assert "no fcntl" in unlocked
    assert not path.exists()


def test_a_file_system_without_locks_runs_unlocked_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with files.exclusive_lock(tmp_path / "x.lock") as unlocked:
        assert unlocked is not None
        assert "has no file locks" in unlocked


def test_a_backfill_on_a_held_checkpoint_fails_fast_and_leaves_it_intact() -> None:
    target = nowhere()
    checkpoint = checkpoint_path(target)
    files.write_json(checkpoint, {"format": 1, "total_segments": 1, "segments": {}})
    before = checkpoint.read_bytes()
    with files.exclusive_lock(lock_path(checkpoint)):
        for resume in (False, True):  # a fresh run would have rewritten it
            with pytest.raises(BusyError) as busy:
                run_backfill(target, resume=resume)  # refused before any request
            assert busy.value.exit_code == ExitCode.BUSY == 15
            assert str(busy.value) == (
                f"another backfill of table 'Tx' into index 'tx' is already running "
                f"(pid {os.getpid()}) (wait for it to finish, or stop it (Ctrl-C) and run "
                "'ddbsearch backfill --resume')"
            )
            assert "\n" not in str(busy.value)
    assert checkpoint.read_bytes() == before


def test_a_reindex_fill_locks_its_own_checkpoint(tmp_path: Path) -> None:
    fill_file = tmp_path / "tx.tx-000002.fill.json"
    with files.exclusive_lock(lock_path(fill_file)):
        with pytest.raises(BusyError, match=r"another fill of 'tx-000002' from table 'Tx'"):
            run_backfill(nowhere(), generation="tx-000002", checkpoint_file=fill_file)
        # The target's plain backfill has a checkpoint of its own: not refused.
        with pytest.raises(PastTheLock):
            run_backfill(nowhere())
    assert lock_path(fill_file) == tmp_path / "tx.tx-000002.fill.json.lock"


def test_without_locks_a_backfill_warns_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "fcntl", None)
    caplog.set_level(logging.WARNING, logger="ddbsearch.ops.backfill")
    with pytest.raises(PastTheLock):
        run_backfill(nowhere())
    (record,) = caplog.records
    message = record.getMessage()
    assert "no fcntl" in message
    assert "would not be refused" in message
