"""A user backs off after connection errors in a row, so a server that refuses every
connection is not hammered at full CPU.

A refused port answers in microseconds: a closed-loop user would fail tens of thousands of
requests a second, the process would spin at 100% CPU (Locust then advises more processes)
and the run's numbers would be nothing but that. After :data:`FREE_ERRORS` connection
errors in a row (refused, unresolvable, reset or timed out while connecting), the user
waits before its next request, twice as long each time up to :data:`MAX_WAIT_S`; any
other outcome resets it. Every failed request still counts as a failure; the waits are
counted in the summary and the JSON report, and a log line says when users start backing
off.
"""

from __future__ import annotations

import logging
import random
from time import perf_counter

from sagellm_users._errors import ConnectError, ConnectTimeout

__all__ = ["FIRST_WAIT_S", "FREE_ERRORS", "MAX_WAIT_S", "ConnectBackoff"]

log = logging.getLogger("sagellm_users")

FREE_ERRORS = 3
"""Connection errors in a row a user sends through without waiting (a restart, a blip)."""
FIRST_WAIT_S = 0.25
MAX_WAIT_S = 10.0
WARN_AGAIN_S = 60.0
"""While users keep backing off, the log line is repeated this often (per process)."""

_warned = {"at": -WARN_AGAIN_S}
"""When this process last logged the line."""


class ConnectBackoff:
    """One user's streak of connection errors and the wait it has earned."""

    def __init__(self) -> None:
        self.in_a_row = 0

    def after(self, error: BaseException | None, host: str) -> float:
        """Seconds to wait before the next request, given how this one ended."""
        if not isinstance(error, ConnectError | ConnectTimeout):
            self.in_a_row = 0
            return 0.0
        self.in_a_row += 1
        if self.in_a_row <= FREE_ERRORS:
            return 0.0
        wait = min(MAX_WAIT_S, FIRST_WAIT_S * 2.0 ** (self.in_a_row - FREE_ERRORS - 1))
        _warn(self.in_a_row, host, error)
        return wait * random.uniform(0.75, 1.0)  # users that failed together spread out


def _warn(in_a_row: int, host: str, error: BaseException) -> None:
    now = perf_counter()
    if now - _warned["at"] < WARN_AGAIN_S:
        return
    _warned["at"] = now
    log.warning(
        "sagellm: %d connection errors in a row to %s (%s: %s): users now wait up to %g s "
        "between tries; each failure still counts",
        in_a_row,
        host,
        type(error).__name__,
        error,
        MAX_WAIT_S,
    )
