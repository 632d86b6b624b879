"""The fixed fine bins a :class:`~sagellm_users._metrics.distribution.Distribution` counts
its samples in once it holds too many to keep one by one.

Why fixed bins and not a sketch: the contract is that every percentile equals numpy's
linear percentile over all samples within ``max(0.1% of the value, 0.05 ms)``. A grid that
is the same in every process makes merging trivial and lossless (add the counts of equal
keys), so a distribution merged from any number of workers is, bin for bin, the one a
single process would have built. The grid only has to be fine enough that reading a bin's
midpoint instead of the sample moves each order statistic by a tenth of that tolerance:

* ``|v| < LINEAR_LIMIT`` (0.05): bins :data:`LINEAR_WIDTH` (1e-5, 10 us when the unit is
  seconds) wide, centred on multiples of the width, so 0 is a bin of its own and
  reads back as exactly 0. Half a bin is 5 us: a tenth of 0.05 ms.
* ``|v| >= LINEAR_LIMIT``: bins from ``LINEAR_LIMIT * GROWTH**j`` to
  ``LINEAR_LIMIT * GROWTH**(j + 1)`` with ``GROWTH = 1 + RELATIVE_WIDTH`` (2e-4), so half a
  bin is 0.01% of the value: a tenth of 0.1%.

At 0.05 a relative bin is 1e-5 wide, the linear width, and 0.1% of 0.05 is 0.05 ms: both
the grid and the tolerance change form at the same point. Negative values use the mirror
image (key ``-key(-v)``). Keys grow with the value (``v <= w`` implies ``key(v) <=
key(w)``), which is what lets counts of whole bins bound the count of samples above or
below a threshold, and lets sorted keys stand for sorted samples.

Memory: one dictionary entry (about 60-90 bytes) per bin that holds a sample. The key
space is bounded by the range of the values, not by their number: 5,001 linear bins per
sign, then 11,514 bins per decade. Timings in seconds up to an hour can touch at most
5,001 + 4.86 decades x 11,514 = about 61,000 bins (about 5 MiB, the worst case of a
distribution smeared evenly over ten microseconds to an hour); a latency spread over
5-30 ms touches about 2,500 (200 KiB), an E2E spread over 1-5 s about 8,000 (600 KiB),
token counts one bin per distinct count.

A second, coarse grid (:data:`COARSE`, ten times wider: 100 us, then 0.2%) reads within the
tolerance itself rather than a tenth of it. The per-second timeline counts its gaps between
tokens there: a chart point needs no finer, and a worker's report then carries a tenth of
the bins for them, which is what a master pays for per report (see _metrics.timeline).
Distributions of different grids never merge.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from itertools import repeat
from operator import add

__all__ = [
    "COARSE",
    "FINE",
    "GRIDS",
    "LINEAR_LIMIT",
    "LINEAR_WIDTH",
    "LOG_SCALE",
    "LOG_SHIFT",
    "RELATIVE_WIDTH",
    "Grid",
    "add_counts",
    "batch_keys",
    "bin_key",
    "bin_value",
]

LINEAR_WIDTH = 1e-5
"""Width of the bins below :data:`LINEAR_LIMIT` (10 us for times in seconds)."""
LINEAR_LIMIT = 0.05
"""Where bins turn from fixed to relative width (0.1% of it is 0.05 ms)."""
RELATIVE_WIDTH = 2e-4
"""Width of a bin above :data:`LINEAR_LIMIT`, relative to its lower edge."""

_SCALE = 1e5
"""``1 / LINEAR_WIDTH``, written as the literal the batch comprehension below uses."""
_LAST_LINEAR = round(LINEAR_LIMIT * _SCALE)
"""The highest linear key (5,000): values just under the limit round to it."""
_FIRST_RELATIVE = _LAST_LINEAR + 1
LOG_SCALE = 1 / math.log1p(RELATIVE_WIDTH)
"""Relative bins per unit of natural logarithm."""
LOG_SHIFT = math.log(LINEAR_LIMIT) * LOG_SCALE - _FIRST_RELATIVE
"""``int(log(v) * LOG_SCALE - LOG_SHIFT)`` is the key of ``v >= LINEAR_LIMIT``: the j-th
relative bin's is ``5,001 + j``, in one multiply, one subtract and one truncation (public so
a hot path can compute it inline)."""
_MID = 1 + RELATIVE_WIDTH / 2
"""A relative bin's midpoint over its lower edge."""


def bin_key(value: float) -> int:
    """The key of the bin that holds ``value`` (a finite number)."""
    if value < 0:
        return -bin_key(-value)
    if value < LINEAR_LIMIT:
        return int(value * 1e5 + 0.5)
    return int(math.log(value) * LOG_SCALE - LOG_SHIFT)


def batch_keys(values: Iterable[float], low: float) -> list[int]:
    """:func:`bin_key` of each value, in one comprehension when none is below zero (a
    function call per value was most of the cost of recording a request's gaps). ``low``
    is at most the smallest value; the keys equal :func:`bin_key`'s, a test holds them so."""
    if low < 0:
        return [bin_key(v) for v in values]
    log, scale, shift = math.log, LOG_SCALE, LOG_SHIFT
    return [int(v * 1e5 + 0.5) if v < 0.05 else int(log(v) * scale - shift) for v in values]


def bin_value(key: int) -> float:
    """The value bin ``key`` reads back as: its midpoint, strictly increasing with the key."""
    if key < 0:
        return -bin_value(-key)
    if key <= _LAST_LINEAR:
        return key * LINEAR_WIDTH
    return LINEAR_LIMIT * math.exp((key - _FIRST_RELATIVE) / LOG_SCALE) * _MID


def add_counts(into: dict[int, int], keys: Collection[int], counts: Collection[int]) -> None:
    """Add ``counts[i]`` to ``into[keys[i]]``, key by key, with no Python bytecode per key.

    A master adds every worker's bins into the run's every 3 s: thousands of keys per
    report, straight from the wire's key and count lists (no table built in between).
    ``Counter.update`` adds them in a Python loop (most of the master's CPU per merged
    report); here ``map`` reads and adds in C and ``dict.update`` writes in C. ``keys`` are
    distinct and iterated twice; each is read from ``into`` before it is written, and
    written once (a table added to itself is read from a copy: pass a copy's keys). Lists
    of unequal length (a damaged report) are refused before anything is added."""
    if len(keys) != len(counts):
        raise ValueError(f"{len(keys)} bin keys but {len(counts)} counts")
    added = map(add, counts, map(into.get, keys, repeat(0)))
    dict.update(into, zip(keys, added, strict=True))


@dataclass(frozen=True, slots=True)
class Grid:
    """A grid of bins: ``linear_width`` wide below :data:`LINEAR_LIMIT`, then
    ``relative_width`` of each bin's lower edge (the two meet at the limit)."""

    name: str
    linear_width: float
    relative_width: float
    _scale: float = field(init=False)
    _log_scale: float = field(init=False)
    _log_shift: float = field(init=False)
    _last_linear: int = field(init=False)
    _mid: float = field(init=False)

    def __post_init__(self) -> None:
        scale = float(round(1 / self.linear_width))
        log_scale = 1 / math.log1p(self.relative_width)
        last_linear = round(LINEAR_LIMIT * scale)
        object.__setattr__(self, "_scale", scale)
        object.__setattr__(self, "_log_scale", log_scale)
        object.__setattr__(self, "_log_shift", math.log(LINEAR_LIMIT) * log_scale - last_linear - 1)
        object.__setattr__(self, "_last_linear", last_linear)
        object.__setattr__(self, "_mid", 1 + self.relative_width / 2)

    def key(self, value: float) -> int:
        """The key of the bin that holds ``value`` (a finite number)."""
        if value < 0:
            return -self.key(-value)
        if value < LINEAR_LIMIT:
            return int(value * self._scale + 0.5)
        return int(math.log(value) * self._log_scale - self._log_shift)

    def keys(self, values: Iterable[float], low: float) -> list[int]:
        """:meth:`key` of each value; ``low`` is at most the smallest."""
        if low < 0:
            return [self.key(v) for v in values]
        log, scale, log_scale, shift = math.log, self._scale, self._log_scale, self._log_shift
        limit = LINEAR_LIMIT
        return [
            int(v * scale + 0.5) if v < limit else int(log(v) * log_scale - shift) for v in values
        ]

    def value(self, key: int) -> float:
        """The value bin ``key`` reads back as: its midpoint, strictly increasing with the key."""
        if key < 0:
            return -self.value(-key)
        if key <= self._last_linear:
            return key * self.linear_width
        first = self._last_linear + 1
        return LINEAR_LIMIT * math.exp((key - first) / self._log_scale) * self._mid


FINE = Grid("fine", LINEAR_WIDTH, RELATIVE_WIDTH)
"""The default grid: a tenth of the tolerance (:func:`bin_key` and friends are its inlined
form, which a test holds equal)."""
COARSE = Grid("coarse", 1e-4, 2e-3)
"""Ten times wider: within the tolerance itself (the timeline's gaps between tokens)."""
GRIDS = {grid.name: grid for grid in (FINE, COARSE)}
