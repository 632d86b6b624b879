"""An exact sample distribution: percentiles by linear interpolation, mergeable.

Exact storage grows with the run; it is the reference the bounded-memory sketches of the
metrics engine are checked against, and the right choice for a single process run of
modest length.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["Distribution"]


class Distribution:
    """Samples of one metric (any unit); sorted lazily, only when a percentile is asked."""

    __slots__ = ("_samples", "_sorted", "_sum")

    def __init__(self, samples: Iterable[float] = ()) -> None:
        self._samples: list[float] = list(samples)
        self._sum = math.fsum(self._samples)
        self._sorted = False

    def add(self, value: float) -> None:
        self._samples.append(value)
        self._sum += value
        self._sorted = False

    def extend(self, values: Iterable[float]) -> None:
        values = list(values)
        self._samples.extend(values)
        self._sum += math.fsum(values)
        self._sorted = False

    def merge(self, other: Distribution) -> None:
        self.extend(other._samples)

    def clear(self) -> None:
        self._samples.clear()
        self._sum = 0.0
        self._sorted = True

    @property
    def count(self) -> int:
        return len(self._samples)

    @property
    def samples(self) -> list[float]:
        return list(self._samples)

    @property
    def mean(self) -> float | None:
        return self._sum / len(self._samples) if self._samples else None

    @property
    def std(self) -> float | None:
        n = len(self._samples)
        if n == 0:
            return None
        mean = self._sum / n
        return math.sqrt(math.fsum((x - mean) ** 2 for x in self._samples) / n)

    @property
    def min(self) -> float | None:
        return min(self._samples) if self._samples else None

    @property
    def max(self) -> float | None:
        return max(self._samples) if self._samples else None

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100), linear interpolation between closest ranks."""
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be within 0..100, got {p}")
        data = self._samples
        if not data:
            return None
        if not self._sorted:
            data.sort()
            self._sorted = True
        rank = (len(data) - 1) * p / 100
        low = math.floor(rank)
        high = min(low + 1, len(data) - 1)
        return data[low] + (data[high] - data[low]) * (rank - low)
