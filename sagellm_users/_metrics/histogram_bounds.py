"""What a Prometheus histogram can say about a percentile: bounds, not a made-up number.

vLLM exports its timings as histograms with coarse buckets (end-to-end and queue time:
0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10 s ...; inter-token latency: 10, 25, 50 ms ...).
Prometheus' ``histogram_quantile`` interpolates linearly inside the bucket that holds the
rank, as if the samples were spread evenly over it, and starts the first bucket at 0. When
they are not, the number is wrong by up to the bucket's width and can contradict the
histogram's own exact mean (sum / count): all of a fast mock's queue times sit in (0, 0.3 s]
with a mean of 6 µs, yet interpolation says p50 = 150 ms; every inter-token gap is 10 ms
(bucket (0, 10 ms], mean 10.0 ms) and interpolation says p50 = 5 ms, p99 = 9.9 ms.

So each percentile is given as the interval that the histogram proves it lies in, using
everything it holds: the counts of every bucket and the sum, for samples that cannot be
negative (durations). The percentile ``q`` of ``N`` samples is the sample at rank
``k = ceil(q N)`` (the inverted CDF; the bucket Prometheus picks for ``q`` is the one
holding it). With ``n_j`` samples in bucket ``(L_j, U_j]`` (the first starting at 0) and
``S`` their sum:

* the bucket: ``L_i < x_k <= U_i`` for the first bucket ``i`` whose cumulative count
  reaches ``k``;
* an upper bound from the sum: the ``a = C_i - k + 1`` samples of bucket ``i`` at rank
  ``k`` or above are each at least ``x_k``, every other sample exceeds its bucket's lower
  bound, so ``S >= sum(n_j L_j) + a (x_k - L_i)``, i.e.
  ``x_k <= L_i + (S - sum(n_j L_j)) / a``. With no buckets this is Markov's inequality,
  ``x_k <= S / (N - k + 1)``, about ``mean / (1 - q)``: a p50 cannot exceed twice the mean;
* a lower bound from the sum, when no sample is beyond the last finite bound: the
  ``b = k - C_(i-1)`` samples of bucket ``i`` at rank ``k`` or below are each at most
  ``x_k``, every other sample is at most its bucket's upper bound, so
  ``x_k >= U_i - (sum(n_j U_j) - S) / b``. When the mean sits at the top of a bucket that
  holds every sample, every sample is at its top, and so is every percentile.

Each bound is the tightest the counts and the sum allow (a distribution exists with the
percentile arbitrarily close to it), and both rise with ``q``, as percentiles must. The
``estimate`` is Prometheus' interpolation moved into that interval, so it is what Grafana
shows whenever that is possible, and it also rises with ``q``. A sum that the buckets cannot
hold (missing, or outside ``[sum(n_j L_j), sum(n_j U_j)]`` beyond rounding: negative
samples, a counter reset between scrapes) is not used; the bucket alone then bounds the
percentile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["QuantileBounds", "bound_quantile", "interpolate"]

_ROUNDING = 1e-9
"""Relative slack for the float sums of counts times bounds: the scraped sum is a float
total of many floats, so "exactly at the top of the bucket" arrives a hair above it."""


@dataclass(frozen=True, slots=True)
class QuantileBounds:
    """Where the ``q`` quantile lies: ``low <= x <= high`` (``high`` may be +Inf), inside
    the bucket ``(bucket_lower, bucket_upper]``; ``estimate`` is the interpolation moved
    into ``[low, high]`` and ``interpolated`` Prometheus' own ``histogram_quantile``."""

    q: float
    estimate: float
    interpolated: float
    low: float
    high: float
    bucket_lower: float
    bucket_upper: float


def interpolate(bounds: Sequence[float], cumulative: Sequence[float], q: float) -> float | None:
    """Prometheus' ``histogram_quantile(q)``; ``q`` in [0, 1]; ``None`` with no samples."""
    count = cumulative[-1] if cumulative else 0.0
    if not count:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for bound, total in zip(bounds, cumulative, strict=True):
        if total >= rank and total > below:
            if math.isinf(bound):
                return lower  # the highest finite bound: Prometheus' answer too
            return lower + (bound - lower) * (rank - below) / (total - below)
        lower, below = bound, total
    return lower


def _rank(q: float, count: float) -> float:
    """``ceil(q N)``, at least 1; ``q N`` is rounded first so 0.07 x 100 is rank 7, not 8."""
    return max(1.0, float(math.ceil(round(q * count, 9))))


def bound_quantile(
    bounds: Sequence[float], cumulative: Sequence[float], total: float, q: float
) -> QuantileBounds | None:
    """The bounds of the ``q`` quantile (``0 < q <= 1``) of non-negative samples counted in
    cumulative buckets ``bounds`` (the last +Inf) with sum ``total`` (NaN: unknown)."""
    count = cumulative[-1] if cumulative else 0.0
    interpolated = interpolate(bounds, cumulative, q)
    if not count or interpolated is None:
        return None
    k = min(_rank(q, count), count)
    lowers = (0.0, *bounds[:-1])
    index = next(i for i, c in enumerate(cumulative) if c >= k)
    below = cumulative[index - 1] if index else 0.0
    lower, upper = lowers[index], bounds[index]
    counts = [c - (cumulative[i - 1] if i else 0.0) for i, c in enumerate(cumulative)]
    sum_low = math.fsum(n * b for n, b in zip(counts, lowers, strict=True) if n)
    sum_high = math.fsum(n * b for n, b in zip(counts, bounds, strict=True) if n)
    low, high = lower, upper
    slack = _ROUNDING * max(abs(total), sum_low, 1e-300)
    if math.isfinite(total) and sum_low - slack <= total <= sum_high + slack:
        high = min(high, lower + max(0.0, total - sum_low) / (cumulative[index] - k + 1))
        if math.isfinite(sum_high):
            low = max(low, upper - max(0.0, sum_high - total) / (k - below))
    low = min(low, high)
    estimate = min(max(interpolated, low), high)
    return QuantileBounds(q, estimate, interpolated, low, high, lower, upper)
