"""How well the open-loop schedule was kept: intended against actual start times.

Each open-loop request knows when the schedule meant it to start and when it did; the gap
is the client's lag. Lag appears when every in-flight slot (user) is busy or the load
generator is overloaded, and it is what coordinated omission hides: latency measured from
the actual send looks fine while the traffic the test promised never happened. Counts,
first and last times and the lag distribution all merge across workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sagellm_users._metrics.distribution import Distribution
from sagellm_users._metrics.record import RequestRecord

__all__ = ["LATE_SECONDS", "ArrivalStats"]

LATE_SECONDS = 0.010
"""A request that starts more than this after its intended time counts as late."""


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None or (b is not None and b < a) else a


def _latest(a: float | None, b: float | None) -> float | None:
    return b if a is None or (b is not None and b > a) else a


@dataclass
class ArrivalStats:
    """Open-loop requests: counts, wall-clock bounds and start lag (seconds)."""

    requests: int = 0
    late: int = 0
    lag: Distribution = field(default_factory=Distribution)
    first_intended: float | None = None
    last_intended: float | None = None
    first_start: float | None = None
    last_start: float | None = None

    def add(self, record: RequestRecord) -> None:
        intended = record.intended_wall
        if intended is None:
            return
        lag = max(0.0, record.wall_start - intended)
        self.requests += 1
        self.lag.add(lag)
        if lag > LATE_SECONDS:
            self.late += 1
        self.first_intended = _earliest(self.first_intended, intended)
        self.last_intended = _latest(self.last_intended, intended)
        self.first_start = _earliest(self.first_start, record.wall_start)
        self.last_start = _latest(self.last_start, record.wall_start)

    def merge(self, other: ArrivalStats) -> None:
        self.requests += other.requests
        self.late += other.late
        self.lag.merge(other.lag)
        self.first_intended = _earliest(self.first_intended, other.first_intended)
        self.last_intended = _latest(self.last_intended, other.last_intended)
        self.first_start = _earliest(self.first_start, other.first_start)
        self.last_start = _latest(self.last_start, other.last_start)

    @staticmethod
    def _rate(count: int, first: float | None, last: float | None) -> float | None:
        if count < 2 or first is None or last is None or last <= first:
            return None
        return (count - 1) / (last - first)

    @property
    def intended_rate(self) -> float | None:
        """Requests per second the schedule asked for (over the intended times)."""
        return self._rate(self.requests, self.first_intended, self.last_intended)

    @property
    def achieved_rate(self) -> float | None:
        """Requests per second that actually started."""
        return self._rate(self.requests, self.first_start, self.last_start)

    def to_wire(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "late": self.late,
            "lag": self.lag.to_wire(),
            "first_intended": self.first_intended,
            "last_intended": self.last_intended,
            "first_start": self.first_start,
            "last_start": self.last_start,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ArrivalStats:
        return cls(
            requests=int(data["requests"]),
            late=int(data["late"]),
            lag=Distribution.from_wire(data["lag"]),
            first_intended=data["first_intended"],
            last_intended=data["last_intended"],
            first_start=data["first_start"],
            last_start=data["last_start"],
        )
