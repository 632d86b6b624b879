"""Recent metrics for the live view: the last N seconds as time slices that merge.

The cumulative numbers are the collector's. For "what is happening now", every finished
request (local runner) or every worker delta (master) also lands in the current slice;
slices are one second long and kept for ``keep`` seconds, so the last-10-s view is the
merge of the newest slices: memory is bounded by the horizon, not the run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.record import RequestRecord

__all__ = ["RecentMetrics"]

_SLICE_SECONDS = 1.0


class RecentMetrics:
    """Time-sliced collectors covering the last ``keep`` seconds."""

    def __init__(self, keep: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.keep = keep
        self._clock = clock
        self._slices: deque[tuple[float, MetricsCollector]] = deque()

    def _current(self) -> MetricsCollector:
        now = self._clock()
        if not self._slices or now - self._slices[-1][0] >= _SLICE_SECONDS:
            self._slices.append((now, MetricsCollector()))
            while self._slices and now - self._slices[0][0] > self.keep:
                self._slices.popleft()
        return self._slices[-1][1]

    def add(self, record: RequestRecord) -> None:
        self._current().add(record)

    def merge_wire(self, data: dict[str, Any]) -> None:
        self._current().merge_wire(data)

    def last(self, seconds: float) -> tuple[MetricsCollector, float]:
        """The merge of the slices started in the last ``seconds``, and the span covered."""
        now = self._clock()
        merged = MetricsCollector()
        oldest = now
        for started, collector in self._slices:
            if now - started <= seconds:
                merged.merge_wire(collector.snapshot())
                oldest = min(oldest, started)
        return merged, max(now - oldest, _SLICE_SECONDS) if merged.by_key else 0.0

    def reset(self) -> None:
        self._slices.clear()
