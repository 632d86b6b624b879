"""The server-side view in the report: what vLLM's own ``/metrics`` said during the test.

Shown beside the client's view so the two can be compared: the server counts requests and
tokens, and times TTFT, inter-token latency and end-to-end from when it received each
request, without the network and the client. Its percentiles come from histogram buckets
(Prometheus' ``histogram_quantile``), so they are coarser than the client's exact ones.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from sagellm_users.metrics.server import BucketHistogram
from sagellm_users.metrics.server_series import GaugeTrend, ServerSeries
from sagellm_users.report.labels import percentile_label

__all__ = ["GaugeSummary", "ServerHistogram", "ServerSideReport", "render_server_side"]

_HISTOGRAM_FIELDS = {  # report field -> series histogram name
    "ttft_ms": "ttft",
    "itl_ms": "itl",
    "tpot_ms": "tpot",
    "e2el_ms": "e2e",
    "queue_ms": "queue",
}


class GaugeSummary(BaseModel):
    last: float
    peak: float
    mean: float | None

    @classmethod
    def of(cls, trend: GaugeTrend | None) -> GaugeSummary | None:
        if trend is None or not trend.samples:
            return None
        return cls(last=trend.last, peak=trend.peak, mean=trend.mean)


class ServerHistogram(BaseModel):
    """A server histogram over the test window, in milliseconds."""

    count: int
    mean: float | None
    percentiles: dict[str, float | None] = Field(description="from bucket interpolation")

    @classmethod
    def of(cls, histogram: BucketHistogram, percentiles: list[float]) -> ServerHistogram:
        def ms(value: float | None) -> float | None:
            return None if value is None else value * 1e3

        return cls(
            count=int(histogram.count),
            mean=ms(histogram.mean),
            percentiles={
                percentile_label(p): ms(histogram.quantile(p / 100.0)) for p in percentiles
            },
        )


class ServerSideReport(BaseModel):
    """One server's own counters, gauges and timing histograms over the test."""

    host: str
    version: str | None
    scrapes: int
    failed_scrapes: int
    seconds: float
    requests: int | None
    prompt_tokens: int | None
    generation_tokens: int | None
    preemptions: int | None
    running: GaugeSummary | None
    waiting: GaugeSummary | None
    kv_cache_usage: GaugeSummary | None
    ttft_ms: ServerHistogram | None = None
    itl_ms: ServerHistogram | None = None
    tpot_ms: ServerHistogram | None = None
    e2el_ms: ServerHistogram | None = None
    queue_ms: ServerHistogram | None = None
    last_error: str | None = None

    @classmethod
    def of(cls, series: ServerSeries, percentiles: list[float]) -> ServerSideReport:
        counters = series.counters()
        histograms = series.histograms()

        def count(name: str) -> int | None:
            value = counters.get(name)
            return None if value is None else round(value)

        timing = {
            field: ServerHistogram.of(histograms[name], percentiles)
            for field, name in _HISTOGRAM_FIELDS.items()
            if name in histograms
        }
        return cls(
            host=series.host,
            version=series.version,
            scrapes=series.scrapes,
            failed_scrapes=series.failures,
            seconds=series.seconds,
            requests=count("requests"),
            prompt_tokens=count("prompt_tokens"),
            generation_tokens=count("generation_tokens"),
            preemptions=count("preemptions"),
            running=GaugeSummary.of(series.gauges.get("running")),
            waiting=GaugeSummary.of(series.gauges.get("waiting")),
            kv_cache_usage=GaugeSummary.of(series.gauges.get("kv_cache_usage")),
            last_error=series.last_error,
            **timing,
        )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_server_side(reports: list[ServerSideReport]) -> str:
    """The printed summary's server section: counts, then timings beside each other."""
    lines: list[str] = []
    for r in reports:
        version = f" (vLLM {r.version})" if r.version else ""
        lines.append(f"Server metrics from {r.host}/metrics{version}, {r.scrapes} scrapes:")
        lines.append(
            f"  requests {r.requests if r.requests is not None else '-'}, "
            f"prompt tokens {r.prompt_tokens if r.prompt_tokens is not None else '-'}, "
            f"generation tokens {r.generation_tokens if r.generation_tokens is not None else '-'}"
            f", preemptions {r.preemptions if r.preemptions is not None else '-'}"
        )
        gauges = [
            f"{name} peak {_fmt(g.peak, 2 if name == 'KV cache' else 0)}"
            for name, g in (
                ("running", r.running),
                ("waiting", r.waiting),
                ("KV cache", r.kv_cache_usage),
            )
            if g is not None
        ]
        if gauges:
            lines.append("  " + ", ".join(gauges))
        for label, h in (("TTFT", r.ttft_ms), ("ITL", r.itl_ms), ("E2E", r.e2el_ms)):
            if h is None or not h.count:
                continue
            pcts = " ".join(f"{k} {_fmt(v)}" for k, v in h.percentiles.items())
            lines.append(f"  server {label} ms: mean {_fmt(h.mean)} {pcts} (n={h.count})")
        if r.last_error:
            lines.append(f"  last scrape error: {r.last_error}")
    return "\n".join(lines)
