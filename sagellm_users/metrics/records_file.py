"""Per-request JSONL, one line per finished request, flushed as it is written.

Flushing each line costs one write syscall per request (negligible next to the request
itself) and means Ctrl-C, SIGTERM or a crash loses nothing already measured.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from sagellm_users.errors import ConfigError
from sagellm_users.metrics.record import RequestRecord

__all__ = ["RecordsWriter"]


class RecordsWriter:
    """Appends records to a JSONL file, opened on the first write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.written = 0
        self._file: BinaryIO | None = None
        self._opened = False
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
        if self._file is None:
            self.path = self.path.with_name(f"{self.path.stem}.{suffix}{self.path.suffix}")

    def open(self) -> None:
        """Create (truncate) the file the first time; reopened after a close, append:
        a record that arrives late is added, never at the cost of the ones written."""
        if self._file is None:
            try:
                self._file = self.path.open("ab" if self._opened else "wb")
                self._opened = True
            except OSError as exc:
                raise ConfigError(
                    f"--llm-records {str(self.path)!r} cannot be written: {exc.strerror}"
                ) from None

    def write(self, record: RequestRecord) -> None:
        self.write_json(record.to_json())

    def write_json(self, line: dict[str, Any]) -> None:
        """Write a record already in its JSON form (as workers send them to the master)."""
        if self._file is None:
            self.open()
        assert self._file is not None
        self._file.write(orjson.dumps(line) + b"\n")
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
