"""Worker reports gathered for a moment, then folded into every target at once.

A master folds each worker's finished requests into the run's numbers, the live view's
current slice and a sweep's current stage: the same thousands of bins added two or three
times per report. Gathered first into one batch, whose bins are the union of the workers'
(it stops growing after a few reports), each report is added once, and the batch is added
to each target once per second, however many workers report. The targets are behind by
at most :data:`MAX_AGE_S` (the reports themselves are up to 3 s old) and never when read:
whoever reads them settles the batch first (see ``LLMRuntime.settle``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sagellm_users._metrics.collector import MetricsCollector

__all__ = ["MAX_AGE_S", "ReportBatch"]

MAX_AGE_S = 1.0
"""How long a batch gathers before it is due, counted from its first report."""


class ReportBatch:
    """Drained collector data (:meth:`MetricsCollector.drain`) of several reports, as one."""

    def __init__(
        self, max_age: float = MAX_AGE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._gathered: MetricsCollector | None = None
        self._since = 0.0

    @property
    def pending(self) -> bool:
        """Whether reports were gathered since the last :meth:`take`."""
        return self._gathered is not None

    @property
    def due(self) -> bool:
        """Whether the batch has gathered for :attr:`max_age` seconds."""
        return self._gathered is not None and self._clock() - self._since >= self.max_age

    def add(self, data: dict[str, Any]) -> None:
        gathered = self._gathered
        if gathered is None:
            gathered = self._gathered = MetricsCollector()
            self._since = self._clock()
        gathered.merge_wire(data)

    def take(self) -> dict[str, Any] | None:
        """What was gathered, in the drained form every target merges; then start empty."""
        gathered, self._gathered = self._gathered, None
        return None if gathered is None else gathered.snapshot()
