"""The processes of a fault test, read from /proc: who started whom, and stopping a whole tree.

Dagster's processes never leave the session they are started in (no `setsid`), so a command
started as the leader of its own session (`start_new_session=True`) can be followed, and stopped,
through everything it started: code servers, run workers and their children included,
even those whose parent died.
"""

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    """One process: its ids and its command line."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    cmdline: str


def _read(pid: int) -> Proc | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in parentheses may hold spaces: the fields after it are space-separated.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None  # a zombie has exited; only its parent's wait() is missing
    return Proc(pid=pid, ppid=int(fields[1]), pgid=int(fields[2]), sid=int(fields[3]),
                cmdline=cmdline.replace(b"\0", b" ").decode(errors="replace").strip())


def all_processes() -> list[Proc]:
    """Every live process on the machine (zombies left out)."""
    found = (_read(int(entry.name)) for entry in os.scandir(PROC) if entry.name.isdigit())
    return [proc for proc in found if proc is not None]


def session(sid: int) -> list[Proc]:
    """The live processes of session `sid`."""
    return [proc for proc in all_processes() if proc.sid == sid]


def descendants(pid: int) -> list[Proc]:
    """The live processes started by `pid`, directly or not (those whose parent is alive)."""
    procs = all_processes()
    found, frontier = [], {pid}
    while frontier:
        below = [proc for proc in procs if proc.ppid in frontier]
        found += below
        frontier = {proc.pid for proc in below}
    return found


def kill_session(sid: int, grace_s: float = 10.0) -> None:
    """SIGTERM every process of session `sid`, then SIGKILL whatever is left after `grace_s`."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for proc in session(sid):
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while session(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not session(sid):
            return
