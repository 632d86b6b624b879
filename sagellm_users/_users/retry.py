"""When a failed request is sent again (``--retries``), and how long it waits first.

Retrying hides nothing: every failed attempt stays in the request's record
(``retry_errors``), in Locust's table as a ``RETRY`` row (a failure in that row alone: not
in "Aggregated", the error table or the exit code) and in the report's retry counts,
and the final attempt alone makes the request's timings (so TTFT stays a measure of the
server, not of the back-off). Only failures that happened before any output are retried:
a stream that already produced tokens cannot be sent again without counting them twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sagellm_users._errors import ConnectError, ConnectTimeout, HTTPStatusError, LLMError

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "attempt_label"]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses a server uses for "try again": timeout, rate limit, overload, gateways."""

_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 8.0


def attempt_label(exc: BaseException) -> str:
    """How a failed attempt is counted: its class, with the status for HTTP errors."""
    if isinstance(exc, HTTPStatusError):
        return f"HTTPStatusError {exc.status}"
    return type(exc).__name__


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` extra attempts at most; no single wait longer than ``max_wait`` s.
    ``rng`` draws the back-off jitter (it need not repeat from run to run)."""

    retries: int = 0
    max_wait: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def should_retry(self, exc: BaseException, attempt: int, output_started: bool) -> bool:
        """Whether attempt number ``attempt`` (1 for the first), failed with ``exc``, is
        followed by another."""
        if attempt > self.retries or output_started or not isinstance(exc, LLMError):
            return False
        if isinstance(exc, HTTPStatusError):
            return exc.status in RETRYABLE_STATUSES
        # Nothing reached the server; read and total timeouts are not retried (the server
        # may still be working on the request).
        return isinstance(exc, (ConnectError, ConnectTimeout))

    def wait(self, exc: BaseException, attempt: int) -> float:
        """Seconds before the next attempt: the server's Retry-After when it sent one, else
        exponential back-off with full jitter (0.5 s, 1 s, 2 s ... at most 8 s), so many
        users that failed together do not all come back at once."""
        retry_after = exc.retry_after if isinstance(exc, HTTPStatusError) else None
        if retry_after is not None:
            return min(retry_after, self.max_wait)
        ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (attempt - 1), self.max_wait)
        return self.rng.uniform(0.0, ceiling)
