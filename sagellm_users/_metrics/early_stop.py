"""Opt-in early stop: which ``--slo`` objectives can no longer be met, whatever comes next.

A CI gate that already knows its verdict should not burn the rest of a 30-minute run. But
stopping on a *currently* failing objective would be wrong: a p99 that is high after the
first 200 requests can still come down. So an objective is *doomed* only when it fails even
in the best case for the rest of the run: every request still to come succeeds, is as fast
as possible (latency 0, or just inside a bound) and, for throughputs, arrives as fast as
the rules below allow.

How much traffic can still come (the horizon) is what makes "best case" finite:

- ``--run-time`` bounds the time left. The rest of the run is assumed to complete requests
  at most :data:`RATE_HEADROOM` times as fast as the measured window did, plus one request
  per user already in flight. Every count (requests, samples, tokens) may grow by that
  factor. Load shapes that ramp far above the measured rate break the assumption, which is
  why early stop is opt-in.
- Without a time limit the horizon is unbounded: only objectives no future traffic can
  repair are doomed: a ``max`` already above its bound or a ``min`` already below.

Percentiles use the report's definition (linear interpolation between closest ranks): with
``B`` samples beyond the bound and ``N`` samples in the best-case final run, the p-th
percentile fails for certain once the lower of its two ranks is among the ``B``. Once a
distribution is binned (past 65,536 samples; ITL 1,024) ``B`` is a lower bound
(:meth:`Distribution.count_above` leaves out the bin that holds the bound), so the verdict
can come late but never wrongly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sagellm_users._metrics.collector import EndpointStats
from sagellm_users._metrics.distribution import Distribution
from sagellm_users._metrics.slo import SLO

__all__ = ["RATE_HEADROOM", "Horizon", "doomed_slos", "why_doomed"]

RATE_HEADROOM = 2.0
"""The rest of a timed run may complete requests at up to this multiple of the rate so far."""

_DISTRIBUTION_OF = {
    "ttft_ms": "ttft",
    "ttst_ms": "ttst",
    "ttfo_ms": "ttfo",
    "tpot_ms": "tpot",
    "itl_ms": "itl",
    "e2el_ms": "e2e",
    "tbt_ms": "tbt",
}
"""SLO metric -> the EndpointStats distribution it is judged on (seconds)."""


@dataclass(frozen=True, slots=True)
class Horizon:
    """What may still happen: seconds left (None: no time limit) and requests in flight."""

    seconds_left: float | None
    in_flight: int = 0

    def growth(self, stats: EndpointStats, window: float) -> float:
        """How many times what was measured the rest of the run can add at most
        (``math.inf`` when unbounded)."""
        if self.seconds_left is None:
            return math.inf
        done = stats.succeeded + stats.failed
        if done == 0 or window <= 0:
            return math.inf
        return RATE_HEADROOM * max(0.0, self.seconds_left) / window + self.in_flight / done


def doomed_slos(
    slos: tuple[SLO, ...], stats: EndpointStats, window: float, horizon: Horizon
) -> list[tuple[SLO, str]]:
    """The objectives that can no longer be met, each with a one-line reason."""
    found = []
    for slo in slos:
        reason = why_doomed(slo, stats, window, horizon)
        if reason is not None:
            found.append((slo, reason))
    return found


def why_doomed(slo: SLO, stats: EndpointStats, window: float, horizon: Horizon) -> str | None:
    """Why ``slo`` cannot be met any more, or None while it still can."""
    growth = horizon.growth(stats, window)
    upper = slo.op in ("<", "<=")
    if slo.stat is not None:
        dist: Distribution = getattr(stats, _DISTRIBUTION_OF[slo.metric])
        return _timing(slo, dist, slo.threshold / 1000, upper, growth)
    if slo.metric == "error_rate":
        return _error_rate(slo, stats, upper, growth)
    return _throughput(slo, stats, window, seconds_left=horizon.seconds_left, growth=growth)


def _fails(slo: SLO, value: float) -> bool:
    return not slo.holds(value)


def _timing(slo: SLO, dist: Distribution, bound: float, upper: bool, growth: float) -> str | None:
    if dist.count == 0:
        return None
    stat = slo.stat
    assert stat is not None
    if stat in ("max", "min"):
        return _extreme(slo, dist, upper)
    if math.isinf(growth):
        return None
    final_n = dist.count + math.ceil(dist.count * growth)
    if stat == "mean":
        return _mean(slo, dist, upper, final_n)
    q = 50.0 if stat == "median" else float(stat[1:])
    return _percentile(dist, q, bound, upper, final_n)


def _extreme(slo: SLO, dist: Distribution, upper: bool) -> str | None:
    """Only a max may rise and a min may fall: an extreme already on the wrong side is final."""
    is_max = slo.stat == "max"
    extreme = dist.max if is_max else dist.min
    assert extreme is not None
    if is_max == upper and _fails(slo, extreme * 1000):
        return f"{slo.stat} is already {extreme * 1000:.4g} ms"
    return None


def _mean(slo: SLO, dist: Distribution, upper: bool, final_n: int) -> str | None:
    if not upper:
        return None  # slower requests could still raise the mean
    best = dist.sum / final_n  # every later sample 0 s
    if _fails(slo, best * 1000):
        return f"mean is {dist.sum / dist.count * 1000:.4g} ms; at best {best * 1000:.4g} ms"
    return None


def _percentile(
    dist: Distribution, q: float, bound: float, upper: bool, final_n: int
) -> str | None:
    rank = (final_n - 1) * q / 100
    if upper:
        beyond = dist.count_above(bound)
        # Best case: every later sample is fast, so the slow ones sort last; lost once the
        # lower of the two interpolated ranks is among them.
        if beyond and math.floor(rank) >= final_n - beyond:
            return (
                f"{beyond} of {dist.count} samples exceed {bound * 1000:g} ms: more than "
                f"{100 - q:g}% of at most {final_n}"
            )
        return None
    below = dist.count_below(bound)
    if below and math.ceil(rank) < below:
        return (
            f"{below} of {dist.count} samples are under {bound * 1000:g} ms: more than "
            f"{q:g}% of at most {final_n}"
        )
    return None


def _error_rate(slo: SLO, stats: EndpointStats, upper: bool, growth: float) -> str | None:
    done = stats.succeeded + stats.failed
    if done == 0 or math.isinf(growth):
        return None
    future = done * growth
    # Best case: every later request succeeds (or, for a floor, fails).
    best = stats.failed / (done + future) if upper else (stats.failed + future) / (done + future)
    if _fails(slo, best):
        return f"{stats.failed} of {done} requests failed; at best {best:.2%}"
    return None


def _throughput(
    slo: SLO, stats: EndpointStats, window: float, *, seconds_left: float | None, growth: float
) -> str | None:
    if window <= 0 or seconds_left is None or math.isinf(growth):
        return None
    amount = _amount(slo.metric, stats)
    if amount is None:
        return None
    final_window = window + max(0.0, seconds_left)
    # A floor: the most that can still arrive, over the longest window. A ceiling: almost
    # nothing more arrives, and the last of it at the very end, stretching the window.
    upper = slo.op in ("<", "<=")
    best = amount / final_window if upper else amount * (1 + growth) / final_window
    if _fails(slo, best):
        return f"{amount / window:.4g}/s so far; at best {best:.4g}/s by the end"
    return None


def _amount(metric: str, stats: EndpointStats) -> float | None:
    if metric == "request_throughput":
        return float(stats.succeeded)
    if metric == "output_throughput":
        return float(stats.total_output_tokens)
    if metric == "total_token_throughput":
        return float(stats.total_input_tokens + stats.total_output_tokens)
    if metric == "goodput":
        return float(stats.good)
    return None
