"""The report's data for pictures: the run over time, and the shape of each distribution.

Kept in the JSON report itself, so an HTML page can be rendered from any saved report
(``sagellm-report run.json``) and several runs can be drawn on one chart, without the
requests' records.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sagellm_users._metrics.collector import EndpointStats
from sagellm_users._metrics.distribution import Distribution
from sagellm_users._metrics.timeline import Timeline

__all__ = [
    "CDF_PERCENTILES",
    "HISTOGRAM_BINS",
    "PLOTTED",
    "DistributionPlot",
    "TimelinePoint",
    "TimelineReport",
    "distribution_plots",
    "per_user",
    "upgrade_timeline_version_2",
]

HISTOGRAM_BINS = 40
CDF_PERCENTILES = (*range(0, 100), 99.5, 99.9, 100.0)
PLOTTED = {"ttft_ms": "ttft", "itl_ms": "itl", "tpot_ms": "tpot", "e2el_ms": "e2e"}
"""Report metric -> the EndpointStats distribution (seconds) it is drawn from."""


class TimelinePoint(BaseModel):
    """The requests that ended in ``[t, t + width_s)`` and the output tokens that arrived
    in it; gauges as sampled at its end."""

    t: float = Field(description="wall-clock start of the bucket (epoch seconds)")
    users: int | None
    in_flight: int | None
    requests: int
    completed: int
    failed: int
    errors: dict[str, int]
    input_tokens: int = Field(description="of the successful requests that ended in it")
    output_tokens: int = Field(
        description="tokens that arrived in it, each decode step in the second it arrived "
        "(reconciled with usage at its request's end), of every request: failed and "
        "cancelled ones too"
    )
    completed_output_tokens: int = Field(
        description="tokens of the successful requests that ended in it: what the report's "
        "total counts"
    )
    itl_count: int
    req_s: float
    output_tok_s: float = Field(description="output_tokens / width_s: tokens as they arrived")
    total_tok_s: float = Field(description="(input_tokens + output_tokens) / width_s")
    ttft_p50_ms: float | None
    ttft_p90_ms: float | None
    ttft_p99_ms: float | None
    itl_p50_ms: float | None
    itl_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p90_ms: float | None
    e2el_p50_ms: float | None
    e2el_p99_ms: float | None
    lag_p99_ms: float | None = Field(description="the client's event-loop lag")


class TimelineReport(BaseModel):
    width_s: float
    merged_points: bool = Field(
        description="points were merged in pairs to bound memory; their percentiles are "
        "count-weighted means of the merged points' percentiles"
    )
    late_requests: int = Field(description="requests that arrived after their point closed")
    late_tokens: int = Field(description="output tokens that arrived after their point closed")
    output_by_arrival: bool = Field(
        description="points count output tokens in the second they arrived; false in "
        "reports older than schema version 3, which counted them at each request's end"
    )
    points: list[TimelinePoint]

    @classmethod
    def of(cls, timeline: Timeline) -> TimelineReport:
        raw = [*timeline.points, *timeline.open_points()]
        return cls(
            width_s=timeline.width,
            merged_points=timeline.width > timeline.base_width,
            late_requests=timeline.late,
            late_tokens=timeline.late_tokens,
            output_by_arrival=True,
            points=[TimelinePoint.model_validate(point) for point in raw],
        )


def upgrade_timeline_version_2(timeline: dict[str, Any]) -> dict[str, Any]:
    """A version 2 report's timeline as version 3 holds it: its points counted output
    tokens at each successful request's end, which is what ``completed_output_tokens``
    holds now; the tokens' arrival was not recorded, so ``output_tokens`` stays the same
    count and ``output_by_arrival`` says so."""
    points = timeline.get("points")
    if isinstance(points, list):  # else the model says what is wrong with it
        points = [
            {**p, "completed_output_tokens": p.get("output_tokens")} if isinstance(p, dict) else p
            for p in points
        ]
    return {**timeline, "late_tokens": 0, "output_by_arrival": False, "points": points}


class DistributionPlot(BaseModel):
    """One metric's distribution, drawn as a histogram and a CDF (milliseconds)."""

    scope: str = Field(description="'all', or the User class")
    metric: str
    count: int
    cdf: list[tuple[float, float]] = Field(description="(value, fraction at or below)")
    bins: list[tuple[float, float, int]] = Field(description="(low, high, count)")
    above: int = Field(description="samples beyond the last bin's edge, counted in it")

    @classmethod
    def of(cls, scope: str, metric: str, dist: Distribution, scale: float) -> DistributionPlot:
        cdf = []
        for p in CDF_PERCENTILES:
            value = dist.percentile(p)
            assert value is not None
            cdf.append((value * scale, p / 100.0))
        low, high = float(dist.min or 0.0), float(dist.max or 0.0)
        # A long tail would squeeze the body into a few bins: past 3x p99 it is cut at
        # p99.5 and counted in the last bin (``above`` says how many).
        p99, p995 = dist.percentile(99.0) or high, dist.percentile(99.5) or high
        top = high if high <= 3 * p99 else p995
        if top <= low:
            top = low + max(abs(low) * 1e-3, 1e-9)
        step = (top - low) / HISTOGRAM_BINS
        edges = [low + i * step for i in range(HISTOGRAM_BINS)] + [top]
        counts = dist.bin_counts(edges)
        return cls(
            scope=scope,
            metric=metric,
            count=dist.count,
            cdf=cdf,
            bins=[(edges[i] * scale, edges[i + 1] * scale, counts[i]) for i in range(len(counts))],
            above=dist.count_above(top) if top < high else 0,
        )


def distribution_plots(
    total: EndpointStats, by_user: dict[str, EndpointStats]
) -> list[DistributionPlot]:
    """Plots of every timing for the whole run, and per User class when there are several."""
    scopes: list[tuple[str, EndpointStats]] = [("all", total)]
    if len(by_user) > 1:
        scopes += sorted(by_user.items())
    plots = []
    for scope, stats in scopes:
        for metric, attr in PLOTTED.items():
            dist: Distribution = getattr(stats, attr)
            if dist.count:
                plots.append(DistributionPlot.of(scope, metric, dist, 1e3))
    return plots


def per_user(by_key: dict[tuple[str, str], EndpointStats]) -> dict[str, EndpointStats]:
    """The stats of each User class, its request names merged."""
    merged: dict[str, EndpointStats] = {}
    for (user, _name), stats in by_key.items():
        target = merged.setdefault(user, EndpointStats())
        target.merge(stats)
    return merged
