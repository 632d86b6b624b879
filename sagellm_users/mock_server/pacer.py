"""One clock for every generation in a process: deadlines grouped into sub-millisecond ticks.

A mock serving 25k tokens/s through ``loop.call_at`` pays, per token, a ``TimerHandle``
object and two heap operations whose comparisons are Python-level ``__lt__`` calls: about
half of its user CPU. The pacer keeps one asyncio timer for the whole process and groups
deadlines by tick (``RESOLUTION_S``): scheduling a token is an integer division and a list
append, and one timer callback serves every generation whose tick has come.

Timing: a callback runs in the first tick that starts at or after its deadline, so it is
never early and at most ``RESOLUTION_S`` later than a timer of its own would have been
(epoll itself sleeps in whole milliseconds). Deadlines stay absolute in the generations,
so this lateness never accumulates; the mock stamps the real send time on every event.

Cancellation is the caller's: a cancelled generation ignores its callback (checking its own
state is cheaper than finding and removing an entry from a bucket).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from heapq import heappop, heappush

__all__ = ["RESOLUTION_S", "Pacer"]

RESOLUTION_S = 0.00025
"""Tick width: a quarter of epoll's millisecond, so grouping adds little to its jitter."""

_NEVER = math.inf


class Pacer:
    """Runs callbacks at absolute ``loop.time()`` deadlines, one asyncio timer for all."""

    __slots__ = ("_armed", "_buckets", "_loop", "_per_tick", "_ticks", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._per_tick = 1.0 / RESOLUTION_S
        self._buckets: dict[int, list[Callable[[], None]]] = {}
        self._ticks: list[int] = []  # heap of the keys of _buckets
        self._armed: float = _NEVER  # tick the asyncio timer is set for
        self._timer: asyncio.TimerHandle | None = None

    def time(self) -> float:
        return self._loop.time()

    @property
    def pending(self) -> int:
        """Callbacks waiting (cancelled generations included until their tick)."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        tick = math.ceil(when * self._per_tick)
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.append(callback)
            return
        self._buckets[tick] = [callback]
        heappush(self._ticks, tick)
        if tick < self._armed:
            self._arm(tick)

    def close(self) -> None:
        """Drop every pending callback (the server is shutting down)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed = _NEVER
        self._buckets.clear()
        self._ticks.clear()

    def _arm(self, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = tick
        self._timer = self._loop.call_at(tick / self._per_tick, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._armed = _NEVER
        # A tick is due once its start has passed; the epsilon absorbs float rounding of
        # tick / per_tick so a timer never wakes to find its own tick "not yet" due.
        now = self._loop.time() * self._per_tick + 1e-6
        ticks, buckets = self._ticks, self._buckets
        due: list[list[Callable[[], None]]] = []
        while ticks and ticks[0] <= now:
            due.append(buckets.pop(heappop(ticks)))
        # Callbacks may schedule into ticks already past (a zero gap): those get a new
        # bucket and a fresh timer, so socket I/O runs before them and a zero-gap stream
        # cannot starve the loop.
        for bucket in due:
            for callback in bucket:
                try:
                    callback()
                except Exception as exc:  # one broken generation must not stall the rest
                    self._loop.call_exception_handler(
                        {"message": "mock generation callback failed", "exception": exc}
                    )
        if ticks and ticks[0] < self._armed:
            self._arm(ticks[0])
