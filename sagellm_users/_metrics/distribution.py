"""A mergeable distribution whose percentiles are numpy's linear percentiles of every sample.

The contract (shared by vllm bench serve, guidellm and AIPerf, which print exact
percentiles): every percentile equals ``numpy.percentile(samples, p)`` over all samples, in
one process and merged across any number of workers, within ``max(0.1% of the value,
0.05 ms)``; it lies within [min, max] and grows with p. A relative-error sketch cannot keep
it: a 0.5% DDSketch printed p50 = p90 = p95 = p99 = 2,599.38 ms for E2E values spread over
2,601-2,609 ms, a p99 below its own mean.

How: a distribution keeps its samples exactly, as 8-byte doubles, up to its exact limit,
then folds them into fixed fine bins (:mod:`sagellm_users._metrics.bins`: 10 us wide below
0.05, 0.02% of the value above) and counts every later sample there: a sparse
``{key: count}``. Percentiles read each order statistic as its bin's midpoint clamped to
[min, max] (the smallest and largest are exact), at most a tenth of the tolerance away.
Bins are the same in every process, so merging adds counts: a merged distribution is the
one that saw all samples, and since the mode depends on the count alone (for a given
limit), it answers bit for bit alike.

Two limits, because the two kinds of samples differ by two or three orders of magnitude
in number. Per-request values (TTFT, TPOT, E2E, token counts: one per request) keep
:data:`EXACT_LIMIT` (65,536): runs of up to 65,536 requests are bit-exact, and a worker's
few seconds of them travel to the master exactly. Per-chunk gaps (ITL: 30-1,000 per
request, :meth:`Distribution.for_gaps`) keep :data:`GAP_EXACT_LIMIT` (1,024): the bins
measure them within 5 us instead of shipping every gap, which at 65,536 made a worker's
report of a few hundred requests 0.7 MiB of raw gaps instead of a few KiB of bins.

Memory per distribution, whatever the run's length: at most 65,536 x 8 bytes = 512 KiB
(gaps: 8 KiB) while exact; binned, one entry (60-90 bytes) per touched bin, at most about
61,000 bins (5 MiB) for values up to an hour, typically 2,000-20,000 (see the bins
module). Count, sum, mean, standard deviation, min and max are exact in both modes.

Samples that are whole numbers (token counts) read back as whole numbers when binned: a
flag remembers that every sample was one, and each bin then reads as the integer nearest
its midpoint, which below 5,000 is the one integer it holds.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable
from itertools import accumulate, pairwise
from math import inf, isfinite, log, sqrt
from typing import Any

from sagellm_users._metrics.bins import (
    FINE,
    GRIDS,
    LINEAR_LIMIT,
    LOG_SCALE,
    LOG_SHIFT,
    Grid,
    add_counts,
    batch_keys,
    bin_key,
    bin_value,
)

__all__ = ["EXACT_LIMIT", "GAP_EXACT_LIMIT", "Distribution"]

EXACT_LIMIT = 65_536
"""Samples a distribution keeps exactly before it folds them into bins (the default)."""
GAP_EXACT_LIMIT = 1_024
"""The same for per-chunk gaps (:meth:`Distribution.for_gaps`)."""


class Distribution:
    """Samples of one metric (any unit): add, merge, ask percentiles, ship as a dict."""

    __slots__ = (
        "_bins",
        "_count",
        "_exact",
        "_grid",
        "_integral",
        "_limit",
        "_max",
        "_min",
        "_ranked",
        "_sorted",
        "_sum",
        "_sumsq",
    )

    _exact: array[float] | None
    """The samples while exact (None once binned)."""
    _bins: Counter[int] | None
    """Bin key -> samples, once binned (None while exact)."""
    _ranked: tuple[int, list[int], list[int]] | None
    """The count they were built at, the sorted bin keys and the samples up to each key:
    valid while the count is unchanged (so adding a sample needs no write to drop them)."""
    _integral: bool
    """Binned: every sample so far was a whole number."""
    _limit: int
    """Samples kept exactly; one more folds them into bins."""
    _grid: Grid
    """The bins it folds into (:data:`~sagellm_users._metrics.bins.FINE` unless told)."""
    _sorted: bool
    _count: int
    _sum: float
    _sumsq: float
    _min: float
    _max: float

    def __init__(
        self, samples: Iterable[float] = (), *, exact_limit: int = EXACT_LIMIT, grid: Grid = FINE
    ) -> None:
        self._limit = exact_limit
        self._grid = grid
        self.clear()
        self.extend(samples)

    @classmethod
    def for_gaps(cls, grid: Grid = FINE) -> Distribution:
        """An empty distribution for per-chunk gaps: exact up to :data:`GAP_EXACT_LIMIT`."""
        return cls(exact_limit=GAP_EXACT_LIMIT, grid=grid)

    def add(self, value: float) -> None:
        if not isfinite(value):
            raise ValueError(f"a distribution takes finite samples, got {value}")
        self._count += 1
        self._sum += value
        self._sumsq += value * value
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value
        bins = self._bins
        if bins is None:
            exact = self._exact
            assert exact is not None
            exact.append(value)
            self._sorted = False
            if len(exact) > self._limit:
                self._fold()
            return
        # bin_key inlined for values >= 0 (every latency): a call costs as much as the rest.
        if self._grid is not FINE:
            key = self._grid.key(value)
        elif value >= LINEAR_LIMIT:
            key = int(log(value) * LOG_SCALE - LOG_SHIFT)
        elif value >= 0:
            key = int(value * 1e5 + 0.5)
        else:
            key = bin_key(value)
        bins[key] = bins.get(key, 0) + 1
        if self._integral and value % 1:
            self._integral = False

    def extend(self, values: Iterable[float]) -> None:
        """Add many samples at once (a request's ITL gaps): one pass per statistic."""
        batch = values if isinstance(values, list) else list(values)
        if not batch:
            return
        total = sum(batch)
        if not isfinite(total):
            raise ValueError("a distribution takes finite samples")
        self._count += len(batch)
        self._sum += total
        self._sumsq += sum([v * v for v in batch])
        low, high = min(batch), max(batch)
        if low < self._min:
            self._min = low
        if high > self._max:
            self._max = high
        bins = self._bins
        if bins is None:
            exact = self._exact
            assert exact is not None
            exact.extend(batch)
            self._sorted = False
            if len(exact) > self._limit:
                self._fold()
            return
        bins.update(self._keys(batch, low))  # counted in C
        if self._integral and any(v % 1 for v in batch):
            self._integral = False

    def _fold(self) -> None:
        """Move the exact samples into bins (the count passed the exact limit)."""
        exact = self._exact
        assert exact is not None
        self._integral = not any(v % 1 for v in exact)
        self._bins = Counter(self._keys(exact, self._min))
        self._exact = None

    def merge(self, other: Distribution) -> None:
        """Fold ``other`` in: the result is what adding its samples here would give (this
        distribution's exact limit applies)."""
        if other._count == 0:
            return
        if other._grid is not self._grid:
            raise ValueError(
                f"a distribution of the {other._grid.name} grid does not merge into one of "
                f"the {self._grid.name} grid"
            )
        self._count += other._count
        self._sum += other._sum
        self._sumsq += other._sumsq
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        if self._exact is not None and other._exact is not None:
            self._exact.extend(other._exact)
            self._sorted = False
            if len(self._exact) > self._limit:
                self._fold()
            return
        if self._exact is not None:
            self._fold()
        bins = self._bins
        assert bins is not None
        if other._bins is not None:
            other_bins = dict(other._bins) if other is self else other._bins
            add_counts(bins, other_bins.keys(), other_bins.values())
            self._integral = self._integral and other._integral
        else:
            assert other._exact is not None
            bins.update(self._keys(other._exact, other._min))
            self._integral = self._integral and not any(v % 1 for v in other._exact)

    def clear(self) -> None:
        self._exact = array("d")
        self._bins = None
        self._ranked = None
        self._integral = True
        self._sorted = True
        self._count = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._min = inf
        self._max = -inf

    @property
    def count(self) -> int:
        return self._count

    @property
    def is_exact(self) -> bool:
        """True while every sample is kept exactly (percentiles are then exact too)."""
        return self._exact is not None

    def exact_samples(self) -> list[float] | None:
        """The samples themselves while the distribution is exact, else None."""
        return None if self._exact is None else self._exact.tolist()

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
        return sqrt(max(0.0, self._sumsq / n - mean * mean))

    @property
    def min(self) -> float | None:
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        return self._max if self._count else None

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100): numpy's default ("linear") interpolation between
        the two closest ranks, clamped between them so it never leaves [min, max] and
        never decreases as ``p`` grows."""
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be within 0..100, got {p}")
        n = self._count
        if n == 0:
            return None
        rank = (n - 1) * p / 100
        low = int(rank)
        high = min(low + 1, n - 1)
        exact = self._exact
        if exact is not None:
            if not self._sorted:
                self._exact = exact = array("d", sorted(exact))
                self._sorted = True
            lo_value, hi_value = exact[low], exact[high]
        else:
            lo_value, hi_value = self._value_at(low), self._value_at(high)
        value = lo_value + (hi_value - lo_value) * (rank - low)
        return min(hi_value, max(lo_value, value))

    def _rank(self) -> tuple[list[int], list[int]]:
        """Sorted bin keys and the samples in bins up to each, built once per change."""
        ranked = self._ranked
        if ranked is None or ranked[0] != self._count:
            bins = self._bins
            assert bins is not None
            keys = sorted(bins)
            ranked = self._ranked = (self._count, keys, list(accumulate(bins[k] for k in keys)))
        return ranked[1], ranked[2]

    def _value_at(self, index: int) -> float:
        """The ``index``-th smallest sample (0-based) of a binned distribution."""
        if index == 0:
            return self._min
        if index == self._count - 1:
            return self._max
        keys, running = self._rank()
        return self._bin_value(keys[bisect_right(running, index)])

    def _keys(self, values: Iterable[float], low: float) -> list[int]:
        return batch_keys(values, low) if self._grid is FINE else self._grid.keys(values, low)

    def _bin_value(self, key: int) -> float:
        value = bin_value(key) if self._grid is FINE else self._grid.value(key)
        if self._integral:
            value = float(round(value))
        return min(self._max, max(self._min, value))

    def count_above(self, threshold: float) -> int:
        """How many samples are certainly above ``threshold``: exact while exact; binned,
        the samples in bins wholly above it (a lower bound, never an overcount)."""
        if self._count == 0 or self._max <= threshold:
            return 0
        if self._min > threshold:
            return self._count
        if self._exact is not None:
            return sum(1 for value in self._exact if value > threshold)
        keys, running = self._rank()
        # Keys grow with values: a key above the threshold's holds only larger samples.
        first = bisect_right(keys, self._grid.key(threshold))
        return self._count - (running[first - 1] if first else 0)

    def count_below(self, threshold: float) -> int:
        """How many samples are certainly below ``threshold`` (see :meth:`count_above`)."""
        if self._count == 0 or self._min >= threshold:
            return 0
        if self._max < threshold:
            return self._count
        if self._exact is not None:
            return sum(1 for value in self._exact if value < threshold)
        keys, running = self._rank()
        end = bisect_left(keys, self._grid.key(threshold))
        return running[end - 1] if end else 0

    def counts_at_or_below(self, bounds: list[float]) -> list[int]:
        """How many samples are at or below each of the sorted ``bounds``: a Prometheus
        histogram's cumulative buckets. Exact while exact; binned, each bin counts where its
        value reads (as percentiles read it), so a bound is within the percentile tolerance."""
        if self._count == 0:
            return [0] * len(bounds)
        if self._exact is not None:
            if not self._sorted:
                self._exact = array("d", sorted(self._exact))
                self._sorted = True
            exact = self._exact
            return [bisect_right(exact, bound) for bound in bounds]
        keys, running = self._rank()
        values = [self._bin_value(key) for key in keys]
        return [running[i - 1] if (i := bisect_right(values, bound)) else 0 for bound in bounds]

    def bin_counts(self, edges: list[float]) -> list[int]:
        """Samples per bin ``[edges[i], edges[i+1])`` for a histogram; samples outside the
        edges count in the first or last bin. Exact while exact; binned, each fine bin
        counts where its value reads (so an edge is within the percentile tolerance)."""
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
        assert self._bins is not None
        for key, count in self._bins.items():
            counts[slot(self._bin_value(key))] += count
        return counts

    # -- shipping between processes --------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        """A msgpack- and JSON-friendly form, for worker -> master reports and saved files.
        Binned, the sorted keys travel as differences (mostly 1: one byte in msgpack)."""
        data: dict[str, Any] = {
            "limit": self._limit,
            **({} if self._grid is FINE else {"grid": self._grid.name}),
            "count": self._count,
            "sum": self._sum,
            "sumsq": self._sumsq,
            "min": self._min if self._count else None,
            "max": self._max if self._count else None,
        }
        if self._exact is not None:
            data["exact"] = self._exact.tolist()
        else:
            keys, _running = self._rank()
            bins = self._bins
            assert bins is not None
            steps = [b - a for a, b in pairwise([0, *keys])]
            data["bins"] = {
                "key_steps": steps,
                "counts": [bins[k] for k in keys],
                "integral": self._integral,
            }
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Distribution:
        dist = cls(exact_limit=int(data.get("limit", EXACT_LIMIT)), grid=_grid_of(data))
        dist.merge_wire(data)
        return dist

    def merge_wire(self, data: dict[str, Any]) -> None:
        """Fold in another distribution's :meth:`to_wire` form: what ``merge(from_wire(data))``
        gives, with no distribution or table built in between (a master merges each
        worker's thousands of bins this way every 3 s, into two or three targets)."""
        count = int(data["count"])
        if count == 0:
            return
        grid = _grid_of(data)
        if grid is not self._grid:
            raise ValueError(
                f"a distribution of the {grid.name} grid does not merge into one of the "
                f"{self._grid.name} grid"
            )
        wire_bins = data.get("bins")
        if wire_bins is not None:
            # msgpack and JSON give the steps and counts as ints already: summed at C speed.
            keys = list(accumulate(wire_bins["key_steps"]))
            counts = wire_bins["counts"]
            if len(keys) != len(counts):
                raise ValueError(f"{len(keys)} bin keys but {len(counts)} counts")
        low = float(data["min"])
        self._count += count
        self._sum += float(data["sum"])
        self._sumsq += float(data["sumsq"])
        self._min = min(self._min, low)
        self._max = max(self._max, float(data["max"]))
        exact = self._exact
        if wire_bins is None:
            samples = data["exact"]
            if exact is not None:
                exact.extend(samples)
                self._sorted = False
                if len(exact) > self._limit:
                    self._fold()
                return
            assert self._bins is not None
            self._bins.update(self._keys(samples, low))
            self._integral = self._integral and not any(v % 1 for v in samples)
            return
        if exact is not None:
            self._fold()
        bins = self._bins
        assert bins is not None
        add_counts(bins, keys, counts)
        self._integral = self._integral and bool(wire_bins["integral"])


def _grid_of(data: dict[str, Any]) -> Grid:
    name = data.get("grid", FINE.name)
    grid = GRIDS.get(name)
    if grid is None:
        raise ValueError(f"unknown bin grid {name!r} (known: {', '.join(GRIDS)})")
    return grid
