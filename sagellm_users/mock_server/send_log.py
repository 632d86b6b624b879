"""``--send-log PATH``: when the mock wrote each output event, for checking a client's clock.

A client's timestamps can only be judged against the moment each event really left the
server. With this log a benchmark joins, by response id, every record a client kept with
the mock's own times: event delay (client read - mock write) and TTFT error come out exact,
with no change to what goes over the wire. Times are ``time.perf_counter()`` seconds, which
on Linux is CLOCK_MONOTONIC and so comparable across processes on one machine.

One JSON line per finished streamed response, written with a single ``write(2)`` on an
``O_APPEND`` descriptor, so ``--workers`` processes can share one file.
"""

from __future__ import annotations

import os

import orjson

__all__ = ["SendLog"]


class SendLog:
    """An append-only JSONL file of ``{"id", "t_received", "t_send": [...]}``."""

    def __init__(self, path: str) -> None:
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise ValueError(f"--send-log {path}: cannot open for appending ({exc})") from exc

    def write(self, response_id: str, t_received: float, t_send: list[float]) -> None:
        line = orjson.dumps({"id": response_id, "t_received": t_received, "t_send": t_send})
        os.write(self._fd, line + b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
