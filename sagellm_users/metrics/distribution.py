"""A mergeable distribution: exact while small, a DDSketch once large.

Why this shape: a load test must report percentiles within 1% of exact across any number of
workers, with memory that does not grow with run length. DDSketch (Datadog's ``ddsketch``
package) gives exactly that guarantee: every value is kept in a log-spaced bin whose width
is ``2 * RELATIVE_ACCURACY`` of its value, bins merge by adding counts, and the bin count is
capped (``BIN_LIMIT``, collapsing the lowest bins first, far below any latency we report).
While a distribution holds at most ``EXACT_LIMIT`` samples it keeps them exactly, so short
runs and tests get exact numbers, then it moves them into the sketch.

Percentiles interpolate linearly between the two closest ranks (numpy's default), also in
sketch mode: the values at ranks ``floor(r)`` and ``ceil(r)`` are each within 0.5%, so
their interpolation is too. Count, sum, mean, standard deviation, min and max are exact
in both modes.

The sketch's stores and mapping are used through their public API only; our own
bookkeeping holds the exact summary statistics and the zero count.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import CollapsingHighestDenseStore, CollapsingLowestDenseStore

__all__ = ["BIN_LIMIT", "EXACT_LIMIT", "RELATIVE_ACCURACY", "Distribution"]

RELATIVE_ACCURACY = 0.005
"""Half of the 1% contract, so interpolating between two sketched ranks stays within it."""
EXACT_LIMIT = 1024
"""Samples kept exactly before a distribution switches to its sketch."""
BIN_LIMIT = 4096
"""Bins per sign: 4096 bins at 0.5% cover 18 decades (a nanosecond to 30 years)."""

_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
_MIN_POSITIVE = _MAPPING.min_possible
_KEY = _MAPPING.key
_LOG2_MULTIPLIER = (1 / math.log1p(2 * RELATIVE_ACCURACY / (1 - RELATIVE_ACCURACY))) * math.log(2)
"""LogarithmicMapping's documented key, ceil(log2(v) * log(2) / log(gamma)), computed with the
same float operations so a batch can be keyed in one comprehension (a method call per value
was most of the cost of recording a request's gaps); a test holds it equal to ``_KEY``."""


def batch_keys(values: list[float]) -> list[int]:
    """``_KEY`` of each (positive) value."""
    log, ceil, multiplier = math.log, math.ceil, _LOG2_MULTIPLIER
    return [ceil(log(v, 2) * multiplier) for v in values]


class _Sketch:
    """Positive and negative DDSketch stores plus a zero count; counts are integers."""

    __slots__ = ("negative", "positive", "zeros")

    def __init__(self) -> None:
        self.positive = CollapsingLowestDenseStore(BIN_LIMIT)
        self.negative = CollapsingHighestDenseStore(BIN_LIMIT)  # type: ignore[no-untyped-call]
        self.zeros = 0

    def add(self, value: float) -> None:
        if value > _MIN_POSITIVE:
            self.positive.add(_MAPPING.key(value))
        elif value < -_MIN_POSITIVE:
            self.negative.add(_MAPPING.key(-value))
        else:
            self.zeros += 1

    def merge(self, other: _Sketch) -> None:
        self.positive.merge(other.positive)
        self.negative.merge(other.negative)
        self.zeros += other.zeros

    def value_at(self, index: int) -> float:
        """The value of the ``index``-th smallest sample (0-based), within the accuracy."""
        # A rank of index + 0.5 selects the bin that holds sample ``index`` without
        # depending on floating-point ties at bin boundaries.
        rank = index + 0.5
        negatives = self.negative.count
        if rank < negatives:
            key = self.negative.key_at_rank(negatives - rank - 1, lower=False)
            return -float(_MAPPING.value(key))
        if rank < negatives + self.zeros:
            return 0.0
        return float(_MAPPING.value(self.positive.key_at_rank(rank - negatives - self.zeros)))

    def count_above(self, threshold: float) -> int:
        """Samples in bins whose every value exceeds ``threshold`` (positive thresholds;
        negative samples are never counted, so the result stays a lower bound)."""
        if threshold <= _MIN_POSITIVE:
            return int(self.positive.count)
        first = _KEY(threshold) + 1
        store = self.positive
        return int(sum(c for i, c in enumerate(store.bins) if store.offset + i >= first))

    def count_below(self, threshold: float) -> int:
        """Samples in bins whose every value is under ``threshold`` (lower bound)."""
        if threshold <= _MIN_POSITIVE:
            return 0
        last = _KEY(threshold) - 1
        store = self.positive
        below = sum(c for i, c in enumerate(store.bins) if store.offset + i <= last)
        return int(below) + self.zeros + int(self.negative.count)

    def to_wire(self) -> dict[str, Any]:
        return {"p": _bins(self.positive), "n": _bins(self.negative), "z": self.zeros}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> _Sketch:
        sketch = cls()
        for key, count in data["p"]:
            sketch.positive.add(int(key), count)
        for key, count in data["n"]:
            sketch.negative.add(int(key), count)
        sketch.zeros = int(data["z"])
        return sketch


def _bins(store: CollapsingLowestDenseStore | CollapsingHighestDenseStore) -> list[list[int]]:
    """Non-empty bins as ``[key, count]`` pairs (msgpack- and JSON-friendly)."""
    if store.count == 0:
        return []
    offset = store.offset
    return [[offset + i, int(c)] for i, c in enumerate(store.bins) if c]


class Distribution:
    """Samples of one metric (any unit): add, merge, ask percentiles, ship as a dict."""

    __slots__ = ("_count", "_exact", "_max", "_min", "_sketch", "_sorted", "_sum", "_sumsq")

    _exact: list[float] | None
    _sketch: _Sketch | None
    _sorted: bool
    _count: int
    _sum: float
    _sumsq: float
    _min: float
    _max: float

    def __init__(self, samples: Iterable[float] = ()) -> None:
        self.clear()
        self.extend(samples)

    def add(self, value: float) -> None:
        self._count += 1
        self._sum += value
        self._sumsq += value * value
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value
        sketch = self._sketch
        if sketch is None:
            exact = self._exact
            assert exact is not None
            exact.append(value)
            self._sorted = False
            if len(exact) > EXACT_LIMIT:
                self._to_sketch()
        elif value > _MIN_POSITIVE:  # the hot case, inlined: a positive latency
            sketch.positive.add(_KEY(value))
        else:
            sketch.add(value)

    def extend(self, values: Iterable[float]) -> None:
        """Add many samples at once (a request's ITL gaps): one pass per statistic."""
        batch = values if isinstance(values, list) else list(values)
        if not batch:
            return
        self._count += len(batch)
        self._sum += sum(batch)
        self._sumsq += sum([v * v for v in batch])
        low, high = min(batch), max(batch)
        if low < self._min:
            self._min = low
        if high > self._max:
            self._max = high
        sketch = self._sketch
        if sketch is None:
            exact = self._exact
            assert exact is not None
            exact.extend(batch)
            self._sorted = False
            if len(exact) > EXACT_LIMIT:
                self._to_sketch()
        elif low > _MIN_POSITIVE:
            # Gaps of one request fall in few bins: count them in C, add each bin once.
            store_add = sketch.positive.add
            for key, count in Counter(batch_keys(batch)).items():
                store_add(key, count)
        else:
            for value in batch:
                sketch.add(value)

    def _to_sketch(self) -> None:
        sketch = _Sketch()
        for value in self._exact or ():
            sketch.add(value)
        self._sketch = sketch
        self._exact = None

    def merge(self, other: Distribution) -> None:
        """Fold ``other`` in: the result is what adding its samples here would give."""
        if other._count == 0:
            return
        self._count += other._count
        self._sum += other._sum
        self._sumsq += other._sumsq
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        if self._exact is not None and other._exact is not None:
            self._exact.extend(other._exact)
            self._sorted = False
            if len(self._exact) > EXACT_LIMIT:
                self._to_sketch()
            return
        if self._exact is not None:
            self._to_sketch()
        assert self._sketch is not None
        if other._sketch is not None:
            self._sketch.merge(other._sketch)
        else:
            for value in other._exact or ():
                self._sketch.add(value)

    def clear(self) -> None:
        self._exact = []
        self._sketch = None
        self._sorted = True
        self._count = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._min = math.inf
        self._max = -math.inf

    @property
    def count(self) -> int:
        return self._count

    @property
    def is_exact(self) -> bool:
        """True while every sample is kept exactly (percentiles are then exact too)."""
        return self._exact is not None

    def exact_samples(self) -> list[float] | None:
        """The samples themselves while the distribution is exact, else None."""
        return None if self._exact is None else list(self._exact)

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def mean(self) -> float | None:
        return self._sum / self._count if self._count else None

    @property
    def std(self) -> float | None:
        """Population standard deviation (as vLLM's benchmark reports it)."""
        n = self._count
        if n == 0:
            return None
        mean = self._sum / n
        return math.sqrt(max(0.0, self._sumsq / n - mean * mean))

    @property
    def min(self) -> float | None:
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        return self._max if self._count else None

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100), linear interpolation between closest ranks."""
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be within 0..100, got {p}")
        n = self._count
        if n == 0:
            return None
        rank = (n - 1) * p / 100
        low = math.floor(rank)
        high = min(low + 1, n - 1)
        exact = self._exact
        if exact is not None:
            if not self._sorted:
                exact.sort()
                self._sorted = True
            lo_value, hi_value = exact[low], exact[high]
        else:
            lo_value, hi_value = self._value_at(low), self._value_at(high)
        return lo_value + (hi_value - lo_value) * (rank - low)

    def count_above(self, threshold: float) -> int:
        """How many samples are certainly above ``threshold``: exact while exact; in sketch
        mode the samples in bins wholly above it (a lower bound, never an overcount)."""
        if self._count == 0 or self._max <= threshold:
            return 0
        if self._min > threshold:
            return self._count
        if self._exact is not None:
            return sum(1 for value in self._exact if value > threshold)
        assert self._sketch is not None
        return self._sketch.count_above(threshold)

    def count_below(self, threshold: float) -> int:
        """How many samples are certainly below ``threshold`` (see :meth:`count_above`)."""
        if self._count == 0 or self._min >= threshold:
            return 0
        if self._max < threshold:
            return self._count
        if self._exact is not None:
            return sum(1 for value in self._exact if value < threshold)
        assert self._sketch is not None
        return self._sketch.count_below(threshold)

    def bin_counts(self, edges: list[float]) -> list[int]:
        """Samples per bin ``[edges[i], edges[i+1])`` for a histogram; samples outside the
        edges count in the first or last bin. Exact while exact; in sketch mode each sketch
        bin counts where its value lies (so a bin edge is within the sketch's accuracy)."""
        if len(edges) < 2:
            raise ValueError("a histogram needs at least two edges")
        counts = [0] * (len(edges) - 1)
        last = len(counts) - 1

        def slot(value: float) -> int:
            return min(last, max(0, bisect_right(edges, value) - 1))

        if self._exact is not None:
            for value in self._exact:
                counts[slot(value)] += 1
            return counts
        assert self._sketch is not None
        sketch = self._sketch
        counts[0] += sketch.zeros + int(sketch.negative.count)
        store = sketch.positive
        if store.count:
            for i, count in enumerate(store.bins):
                if count:
                    value = min(self._max, max(self._min, _MAPPING.value(store.offset + i)))
                    counts[slot(value)] += int(count)
        return counts

    def _value_at(self, index: int) -> float:
        low, high = float(self._min), float(self._max)
        if index == 0:
            return low
        if index == self._count - 1:
            return high
        assert self._sketch is not None
        return min(high, max(low, self._sketch.value_at(index)))

    # -- shipping between processes --------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        """A msgpack- and JSON-friendly form, for worker -> master reports and saved files."""
        data: dict[str, Any] = {
            "count": self._count,
            "sum": self._sum,
            "sumsq": self._sumsq,
            "min": self._min if self._count else None,
            "max": self._max if self._count else None,
        }
        if self._exact is not None:
            data["exact"] = list(self._exact)
        else:
            assert self._sketch is not None
            data["sketch"] = self._sketch.to_wire()
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Distribution:
        dist = cls()
        count = int(data["count"])
        if count == 0:
            return dist
        dist._count = count
        dist._sum = float(data["sum"])
        dist._sumsq = float(data["sumsq"])
        dist._min = float(data["min"])
        dist._max = float(data["max"])
        if "exact" in data:
            dist._exact = [float(v) for v in data["exact"]]
            dist._sorted = False
        else:
            dist._exact = None
            dist._sketch = _Sketch.from_wire(data["sketch"])
        return dist
