"""Process plumbing for the local stack: is a pid alive, which processes share a
group, reaping our own children, killing a group. No stack logic here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

SUPERVISOR_MODULE = "ddbsearch.local.supervisor"

# Children started by this process, so that their zombies can be reaped.
children: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    proc = children.get(pid)
    if proc is not None and proc.poll() is not None:
        children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies of our own children are reaped first)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def is_supervisor(pid: int) -> bool:
    if not process_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        with contextlib.suppress(OSError):
            return SUPERVISOR_MODULE.encode() in cmdline.read_bytes()
    return True  # no /proc (macOS): trust the pid


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (Linux; empty elsewhere)."""
    members = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def log_tail(path: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        text = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        return " | ".join(text[-lines:])
    return ""


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    proc = children.pop(pgid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
