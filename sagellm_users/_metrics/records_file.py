"""Per-request JSONL, one line per finished request, written with one unbuffered write.

One write syscall per request (negligible next to the request itself) means Ctrl-C, SIGTERM
or a crash loses nothing already measured.

A write can fail mid-run (a full disk, a file size limit, a quota). The file then still ends
at a line boundary: a line written in part is cut off again, so every line in it parses.
Such a record is counted as lost (:attr:`RecordsWriter.lost`) and stays in every number of
the run; the failure is logged once, with its reason, and the count when the file closes.
Later records are tried again (space may come back). Nothing here raises for a failed write,
so the caller goes on reporting the request (Locust's events, the report).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from sagellm_users._errors import ConfigError
from sagellm_users._metrics.record import RequestRecord

__all__ = ["RecordsWriter"]

log = logging.getLogger("sagellm_users")

_write: Callable[[int, memoryview], int] = os.write
"""The one call that writes bytes (a seam for tests that fill a disk)."""


class RecordsWriter:
    """Appends records to a JSONL file, opened on the first write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.written = 0
        self.lost = 0
        """Records that could not be written (see the module docstring)."""
        self.error: str | None = None
        """Why the first lost record could not be written, e.g. ``No space left on device``."""
        self._fd: int | None = None
        self._end = 0
        """The file's length up to its last whole line."""
        self._opened = False
        self._broken = False
        self._lost_told = 0
        parent = self.path.parent
        if not parent.is_dir():
            raise ConfigError(
                f"--llm-records {str(path)!r}: directory {str(parent)!r} does not exist; "
                "create it or choose another path"
            )
        if self.path.is_dir():
            raise ConfigError(
                f"--llm-records {str(path)!r}: is a directory; give a file name in it"
            )
        if not os.access(parent, os.W_OK):
            raise ConfigError(
                f"--llm-records {str(path)!r}: directory {str(parent)!r} is not writable; "
                "choose another path"
            )

    def use_suffix(self, suffix: str) -> None:
        """Write to ``NAME.SUFFIX.EXT`` instead (one file per worker process); before open."""
        if self._fd is None:
            self.path = self.path.with_name(f"{self.path.stem}.{suffix}{self.path.suffix}")

    def open(self) -> None:
        """Create (truncate) the file the first time; reopened after a close, append:
        a record that arrives late is added, never at the cost of the ones written."""
        if self._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            if not self._opened:
                flags |= os.O_TRUNC
            try:
                self._fd = os.open(self.path, flags, 0o666)
                self._end = os.fstat(self._fd).st_size
                self._opened = True
            except OSError as exc:
                raise ConfigError(
                    f"--llm-records {str(self.path)!r} cannot be written: {exc.strerror}"
                ) from None

    def write(self, record: RequestRecord) -> None:
        self.write_json(record.to_json())

    def write_json(self, line: dict[str, Any]) -> None:
        """Write a record already in its JSON form (as workers send them to the master);
        a record that cannot be written is counted in :attr:`lost` (never raises for it)."""
        data = orjson.dumps(line) + b"\n"
        if self._broken:
            self._lose("the file could not be cut back to its last whole line")
            return
        try:
            if self._fd is None:
                self.open()
        except ConfigError as exc:
            self._lose(str(exc))
            return
        assert self._fd is not None
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                n = _write(self._fd, view[done:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += n
        except OSError as exc:
            if done:
                self._cut_back()
            self._lose(exc.strerror or str(exc))
            return
        self._end += len(data)
        self.written += 1

    def _cut_back(self) -> None:
        """Remove the part of a line a failed write left (shrinking needs no space)."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._end)
        except OSError as exc:
            self._broken = True  # a torn line stays: write nothing after it
            log.error(
                "sagellm: --llm-records %s: a record was written in part and cannot be cut "
                "off again (%s); no more records are written to it",
                self.path,
                exc.strerror,
            )

    def _lose(self, reason: str) -> None:
        self.lost += 1
        if self.error is None:
            self.error = reason
            log.error(
                "sagellm: --llm-records %s: a record could not be written (%s); the run goes "
                "on, each such record is counted as lost (every number still includes it) "
                "and the count is given at the end",
                self.path,
                reason,
            )

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError as exc:  # nothing is buffered here: all was written or counted
                log.warning("sagellm: --llm-records %s: closing failed (%s)", self.path, exc)
        if self.lost > self._lost_told:
            self._lost_told = self.lost
            log.error(
                "sagellm: --llm-records %s: %d record(s) could not be written (%s); %d written",
                self.path,
                self.lost,
                self.error,
                self.written,
            )
