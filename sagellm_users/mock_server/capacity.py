"""Admission control: at most N sequences generate at once, the rest wait in FIFO order.

This is how the mock models an overloaded engine: a request that waits here has already
received its response headers, so the wait shows up in its TTFT exactly as queueing does in
a real server. The count of running sequences also drives ``--tbt-per-running-ms``.
The same object counts what the engine produced, for the mock's ``/metrics``.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

__all__ = ["Admission", "Waiter"]


class Waiter(Protocol):
    """Something that can be admitted; ``cancelled`` ones are skipped, never admitted."""

    @property
    def cancelled(self) -> bool: ...

    def admit(self) -> None: ...


class Admission:
    """FIFO admission with a concurrency limit (0 = unlimited).

    ``admit()`` is called synchronously from :meth:`submit` or :meth:`release`; waiters must
    not call :meth:`release` from inside ``admit()``. Cancelled waiters stay queued until
    they reach the head and are then dropped, which keeps cancellation O(1).
    """

    __slots__ = ("_queue", "finished", "generated_tokens", "limit", "prompt_tokens", "running")

    def __init__(self, limit: int = 0) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.limit = limit
        self.running = 0
        self._queue: deque[Waiter] = deque()
        self.generated_tokens = 0
        """Tokens sent (streamed) or delivered (whole bodies), as vLLM counts generation."""
        self.prompt_tokens = 0
        self.finished = 0
        """Requests that ran to their end without an error."""

    @property
    def waiting(self) -> int:
        """Queued waiters not yet admitted (cancelled ones included until dropped)."""
        return len(self._queue)

    def submit(self, waiter: Waiter) -> None:
        """Admit now if a slot is free (and nobody is queued ahead), else enqueue."""
        if not self._queue and (self.limit == 0 or self.running < self.limit):
            self.running += 1
            waiter.admit()
        else:
            self._queue.append(waiter)

    def release(self) -> None:
        """Free one slot and admit queued waiters while slots are free."""
        if self.running <= 0:
            raise RuntimeError("release() without a matching admission")
        self.running -= 1
        queue = self._queue
        while queue and (self.limit == 0 or self.running < self.limit):
            waiter = queue.popleft()
            if waiter.cancelled:
                continue
            self.running += 1
            waiter.admit()
