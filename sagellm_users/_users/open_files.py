"""The open-files limit of a process that sends load, and how many users it can hold.

Each user holds one connection, so a process with 2,000 users needs 2,000 file descriptors
besides its own files; Linux's usual soft limit is 1,024. The soft limit is raised to the
hard limit when a load-generating process starts (no privilege is needed for that), and a
user count the limit still cannot hold is refused before any load: without it, every
connection past the limit fails with "Too many open files" as a client-side error that
says nothing about the server.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

if sys.platform != "win32":
    import resource

__all__ = ["FILES_PER_USER", "HEADROOM", "OpenFiles", "open_files", "raise_limit"]

log = logging.getLogger("sagellm_users")

FILES_PER_USER = 1
"""A user sends one request at a time, on one connection."""
HEADROOM = 64
"""Files the process needs besides its users' connections and what it has open already
(a new connection before a stale one is closed, the records file, the web UI, logs)."""
_NR_OPEN = "/proc/sys/fs/nr_open"
_FALLBACK_CEILING = 1_048_576


@dataclass(frozen=True, slots=True)
class OpenFiles:
    """This process's open-files limit and what it already uses."""

    limit: int
    hard: int
    in_use: int

    @property
    def users(self) -> int:
        """The most users this process can hold."""
        return max(0, (self.limit - self.in_use - HEADROOM) // FILES_PER_USER)

    def refusal(self, users: int, where: str) -> str | None:
        """None when ``users`` fit; else one line naming the limit, the count and the fix."""
        if users <= self.users:
            return None
        needed = users * FILES_PER_USER + self.in_use + HEADROOM
        hard = "unlimited" if self.hard < 0 else str(self.hard)
        return (
            f"{users} users {where} need about {needed} open files, but the open files limit "
            f"is {self.limit} (hard limit {hard}), enough for {self.users} users; raise it "
            f"(`ulimit -n {max(needed, 4096)}` in the shell that starts locust, or LimitNOFILE "
            "in a systemd unit), or spread the users over more processes (--processes, or "
            "workers on other machines)"
        )


def open_files() -> OpenFiles:
    """The limit now (unlimited: a very large number) and the descriptors open now."""
    if sys.platform == "win32":  # no such limit
        return OpenFiles(limit=1 << 30, hard=-1, in_use=0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    return OpenFiles(
        limit=1 << 30 if soft == unlimited else soft,
        hard=-1 if hard == unlimited else hard,
        in_use=_count_open(),
    )


def raise_limit(say: Callable[[str], None] = log.info) -> OpenFiles:
    """Raise the soft limit to the hard one (once per process: again is a no-op) and say
    so; what cannot be raised is left as it is, for :meth:`OpenFiles.refusal` to judge."""
    if sys.platform != "win32":
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = _ceiling() if hard == resource.RLIM_INFINITY else hard
        if soft != resource.RLIM_INFINITY and soft < target:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError) as exc:
                say(f"sagellm: open files limit stays at {soft} (raising it failed: {exc})")
            else:
                say(f"sagellm: open files limit raised from {soft} to {target}")
    return open_files()


def _ceiling() -> int:
    """An unlimited hard limit still stops at the kernel's ``nr_open``."""
    try:
        with open(_NR_OPEN) as f:
            return int(f.read())
    except (OSError, ValueError):
        return _FALLBACK_CEILING


def _count_open() -> int:
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder))
        except OSError:
            continue
    return 0
