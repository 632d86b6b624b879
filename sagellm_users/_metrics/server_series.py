"""One server's scrapes over a test: the window's counters, histograms and gauge trends.

The first scrape of a test (or of a stats reset) is the baseline; every counter and
histogram in the report is the last scrape minus it, so it covers what the server did while
the test ran. Gauges (running, waiting, KV-cache usage) are summarised over every scrape,
and the most recent ones are kept for the live view (bounded, however long the test).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from sagellm_users._metrics.server import GAUGES, BucketHistogram, ServerSnapshot

__all__ = ["GaugeTrend", "ServerSeries"]

MAX_POINTS = 720
"""Gauge points kept for the live view: an hour at the default 5 s interval."""


@dataclass(slots=True)
class GaugeTrend:
    """A gauge over the scrapes: last, peak and mean."""

    last: float = 0.0
    peak: float = 0.0
    total: float = 0.0
    samples: int = 0

    def add(self, value: float) -> None:
        self.last = value
        self.peak = value if self.samples == 0 else max(self.peak, value)
        self.total += value
        self.samples += 1

    @property
    def mean(self) -> float | None:
        return self.total / self.samples if self.samples else None


@dataclass(slots=True)
class ServerSeries:
    """What one server's ``/metrics`` said during the test."""

    host: str
    version: str | None = None
    first: ServerSnapshot | None = None
    last: ServerSnapshot | None = None
    scrapes: int = 0
    failures: int = 0
    last_error: str | None = None
    gauges: dict[str, GaugeTrend] = field(default_factory=dict)
    points: deque[tuple[float, dict[str, float]]] = field(
        default_factory=lambda: deque(maxlen=MAX_POINTS)
    )

    def add(self, snapshot: ServerSnapshot) -> None:
        if self.first is None:
            self.first = snapshot
        self.last = snapshot
        self.scrapes += 1
        for name, value in snapshot.gauges.items():
            self.gauges.setdefault(name, GaugeTrend()).add(value)
        self.points.append((snapshot.t, dict(snapshot.gauges)))

    def failed(self, error: str) -> None:
        self.failures += 1
        self.last_error = error

    def reset(self) -> None:
        """Locust's "reset stats": count from the latest scrape on."""
        self.first = self.last
        self.scrapes = 1 if self.last is not None else 0
        self.gauges = {}
        self.points.clear()

    @property
    def seconds(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return self.last.t - self.first.t

    def counters(self) -> dict[str, float]:
        """Counter growth from the baseline to the last scrape."""
        if self.first is None or self.last is None:
            return {}
        base = self.first.counters
        return {
            name: value - base.get(name, 0.0) if value >= base.get(name, 0.0) else value
            for name, value in self.last.counters.items()
        }

    def histograms(self) -> dict[str, BucketHistogram]:
        """Observations from the baseline to the last scrape."""
        if self.last is None:
            return {}
        base = self.first.histograms if self.first is not None else {}
        return {name: h.minus(base.get(name)) for name, h in self.last.histograms.items()}

    def recent(self, count: int = 60) -> list[dict[str, float]]:
        """The latest gauge points, oldest first, for the live view."""
        points = list(self.points)[-count:]
        return [{"t": t, **{k: v for k, v in g.items() if k in GAUGES}} for t, g in points]
