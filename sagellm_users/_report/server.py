"""The server-side view in the report: what vLLM's own ``/metrics`` said during the test.

Shown beside the client's view so the two can be compared: the server counts requests and
tokens, and times TTFT, inter-token latency and end-to-end from when it received each
request, without the network and the client. Its percentiles come from coarse histogram
buckets, so each carries the bucket that holds it and the interval the buckets and the sum
prove it lies in (:mod:`sagellm_users._metrics.histogram_bounds`), and is printed as what
that interval supports, in ms to three significant figures:

* ``10.0`` (``value``): the interval is one number at that precision (every inter-token gap
  at the top of its bucket, as the mean shows);
* ``≈ 9.80`` (``approx``): the interval is at most 10% of its upper end wide; the number is
  Prometheus' interpolation moved into it;
* ``250-500`` (``range``): between the two;
* ``≤ 300`` (``at_most``): the lower end is under 1% of the upper one, so it says nothing;
  the upper end is the bucket's bound or, when lower, the sum's (a p50 of queue times whose
  mean is 6 µs is at most 12 µs, whatever the bucket's 300 ms);
* ``> 80,000`` (``above``): beyond the last finite bound, and the sum bounds it no lower
  (vLLM's top bounds are 80 s and more, so this is rare).

A number is only printed where no sample set with these counts and this sum could put the
percentile more than 10% away, so a printed percentile never contradicts the exact mean.
Upper ends are rounded up and lower ends down, so a printed bound still holds. The printed
forms rise with ``p`` as the intervals do. Reports of schema version 1 kept only the
interpolated number: read back, it is bounded by the mean alone (Markov's inequality) and
printed as ``~value``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from sagellm_users._metrics.histogram_bounds import QuantileBounds
from sagellm_users._metrics.server import BucketHistogram
from sagellm_users._metrics.server_series import GaugeTrend, ServerSeries
from sagellm_users._report.labels import percentile_label

__all__ = [
    "GaugeSummary",
    "ServerBucket",
    "ServerHistogram",
    "ServerPercentile",
    "ServerSideReport",
    "describe",
    "figure",
    "render_server_side",
    "upgrade_version_1",
]

Kind = Literal["value", "approx", "range", "at_most", "above", "estimate"]
"""How a percentile is printed; "estimate" only for version 1 reports (bucket unknown)."""

NARROW = 0.1
"""A percentile pinned to within this fraction of its upper bound is printed as a number."""
UNINFORMATIVE = 0.01
"""A lower bound under this fraction of the upper one is left out: "≤ upper"."""
LEGEND = "  (server percentiles from buckets and sum: ≤ at most, A-B between, ≈ within 10%)"

_HISTOGRAM_FIELDS = {  # report field -> series histogram name
    "ttft_ms": "ttft",
    "itl_ms": "itl",
    "tpot_ms": "tpot",
    "e2el_ms": "e2e",
    "queue_ms": "queue",
}
_LABELS = {  # report field -> its name in the printed summary
    "ttft_ms": "TTFT",
    "itl_ms": "ITL",
    "tpot_ms": "TPOT",
    "e2el_ms": "E2E",
    "queue_ms": "queue",
}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _significant(value: float, direction: Literal["nearest", "up", "down"]) -> float:
    """``value`` to three significant figures, rounded towards ``direction``."""
    if value == 0 or not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(abs(value))) - 2)
    scaled = value / step
    if direction == "up":
        digits = math.ceil(scaled - 1e-6)  # 300.00000000000006 is 300, not 301
    elif direction == "down":
        digits = math.floor(scaled + 1e-6)
    else:
        digits = math.floor(scaled + 0.5)
    return digits * step


def figure(value: float, direction: Literal["nearest", "up", "down"] = "nearest") -> str:
    """Three significant figures for people: ``0.006``, ``9.80``, ``33.9``, ``80,000``.

    An upper bound is rounded up and a lower one down, so the printed bound still holds."""
    rounded = _significant(value, direction)
    if rounded == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded)) + 1e-9))
    text = f"{rounded:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if abs(rounded) < 1 else text


def describe(low: float, high: float, estimate: float) -> tuple[Kind, str]:
    """How a percentile known to lie in ``[low, high]`` is printed (see the module)."""
    if math.isinf(high):
        return "above", f"> {figure(low, 'down')}"
    if figure(low) == figure(high):
        return "value", figure(estimate)
    if high - low <= NARROW * high:
        return "approx", f"≈ {figure(estimate)}"
    if low < UNINFORMATIVE * high:
        return "at_most", f"≤ {figure(high, 'up')}"
    return "range", f"{figure(low, 'down')}-{figure(high, 'up')}"


class GaugeSummary(BaseModel):
    last: float
    peak: float
    mean: float | None

    @classmethod
    def of(cls, trend: GaugeTrend | None) -> GaugeSummary | None:
        if trend is None or not trend.samples:
            return None
        return cls(last=trend.last, peak=trend.peak, mean=trend.mean)


class ServerBucket(BaseModel):
    """The histogram bucket ``(lower, upper]`` that holds a percentile's rank, in ms."""

    lower: float
    upper: float | None = Field(description="None: the +Inf bucket, above every bound")


class ServerPercentile(BaseModel):
    """One server-side percentile in ms: what the histogram proves, and what to show."""

    estimate: float = Field(description="histogram_quantile moved into [lower, upper]")
    lower: float = Field(description="the percentile is at least this")
    upper: float | None = Field(description="the percentile is at most this; None: unbounded")
    bucket: ServerBucket | None = Field(description="None: not known (a version 1 report)")
    histogram_quantile: float = Field(description="Prometheus' interpolation, as Grafana shows")
    kind: Kind
    display: str = Field(description="how it is printed: a number only when it is pinned")

    @classmethod
    def of(cls, bounds: QuantileBounds, scale: float) -> ServerPercentile:
        """``bounds`` (in seconds) scaled by ``scale`` (1e3: ms), with its printed form."""
        low, high = bounds.low * scale, bounds.high * scale
        estimate = bounds.estimate * scale
        kind, display = describe(low, high, estimate)
        return cls(
            estimate=estimate,
            lower=low,
            upper=_finite(high),
            bucket=ServerBucket(
                lower=bounds.bucket_lower * scale, upper=_finite(bounds.bucket_upper * scale)
            ),
            histogram_quantile=bounds.interpolated * scale,
            kind=kind,
            display=display,
        )

    @classmethod
    def from_version_1(cls, value: float, mean: float | None, q: float) -> ServerPercentile:
        """A version 1 report's bare interpolation: its bucket is lost, but the mean still
        bounds it (Markov: at most mean / (1 - q)); within that it is shown as "~value"."""
        markov = mean / (1.0 - q) if mean is not None and q < 1.0 else math.inf
        if value > markov:
            kind: Kind = "at_most"
            display = f"≤ {figure(markov, 'up')}"
        else:
            kind, display = "estimate", f"~{figure(value)}"
        return cls(
            estimate=min(value, markov),
            lower=0.0,
            upper=_finite(markov),
            bucket=None,
            histogram_quantile=value,
            kind=kind,
            display=display,
        )


class ServerHistogram(BaseModel):
    """A server histogram over the test window, in milliseconds."""

    count: int
    mean: float | None = Field(description="exact: the histogram's sum over its count")
    percentiles: dict[str, ServerPercentile | None] = Field(
        description="each bounded by its bucket and the sum; None when nothing was observed"
    )

    @classmethod
    def of(cls, histogram: BucketHistogram, percentiles: list[float]) -> ServerHistogram:
        def shown(p: float) -> ServerPercentile | None:
            bounds = histogram.quantile_bounds(p / 100.0)
            return None if bounds is None else ServerPercentile.of(bounds, 1e3)

        mean = histogram.mean
        return cls(
            count=int(histogram.count),
            mean=None if mean is None else mean * 1e3,
            percentiles={percentile_label(p): shown(p) for p in percentiles},
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
    prefix_cache_queries: int | None = None
    """Prompt tokens the server looked up in its prefix cache (vLLM counts in tokens)."""
    prefix_cache_hits: int | None = None
    """Of them, those it found there."""
    spec_decode_drafts: int | None = None
    """Speculative decoding: draft proposals (one per sequence per step)."""
    spec_decode_draft_tokens: int | None = None
    spec_decode_accepted_tokens: int | None = None
    running: GaugeSummary | None
    waiting: GaugeSummary | None
    kv_cache_usage: GaugeSummary | None
    ttft_ms: ServerHistogram | None = None
    itl_ms: ServerHistogram | None = None
    tpot_ms: ServerHistogram | None = None
    e2el_ms: ServerHistogram | None = None
    queue_ms: ServerHistogram | None = None
    gateway_ok: int | None = None
    """sageLLM's gateway: generation requests it answered 2xx (None: not a gateway)."""
    gateway_failed: int | None = None
    """sageLLM's gateway: generation requests it answered otherwise."""
    gateway_response_start_ms: ServerHistogram | None = None
    """sageLLM's gateway's own request duration on the generation routes: for a streamed
    answer it ends when the response starts, not when the stream ends."""
    last_error: str | None = None

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        """The server's prefix-cache hit rate over the test, in tokens."""
        if not self.prefix_cache_queries or self.prefix_cache_hits is None:
            return None
        return self.prefix_cache_hits / self.prefix_cache_queries

    @property
    def spec_acceptance_rate(self) -> float | None:
        """Accepted draft tokens over proposed ones (vLLM's own definition)."""
        if not self.spec_decode_draft_tokens or self.spec_decode_accepted_tokens is None:
            return None
        return self.spec_decode_accepted_tokens / self.spec_decode_draft_tokens

    @property
    def spec_acceptance_length(self) -> float | None:
        """Tokens per draft step: 1 + accepted per draft (vLLM's mean acceptance length)."""
        if not self.spec_decode_drafts or self.spec_decode_accepted_tokens is None:
            return None
        return 1 + self.spec_decode_accepted_tokens / self.spec_decode_drafts

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
            prefix_cache_queries=count("prefix_cache_queries"),
            prefix_cache_hits=count("prefix_cache_hits"),
            spec_decode_drafts=count("spec_decode_drafts"),
            spec_decode_draft_tokens=count("spec_decode_draft_tokens"),
            spec_decode_accepted_tokens=count("spec_decode_accepted_tokens"),
            running=GaugeSummary.of(series.gauges.get("running")),
            waiting=GaugeSummary.of(series.gauges.get("waiting")),
            kv_cache_usage=GaugeSummary.of(series.gauges.get("kv_cache_usage")),
            gateway_ok=count("gateway_ok"),
            gateway_failed=count("gateway_failed"),
            gateway_response_start_ms=(
                ServerHistogram.of(histograms["gateway_start"], percentiles)
                if "gateway_start" in histograms
                else None
            ),
            last_error=series.last_error,
            **timing,
        )


def _quantile(label: str) -> float | None:
    """``p99.9`` -> 0.999; None for a label :func:`percentile_label` cannot have made."""
    try:
        p = float(label.removeprefix("p"))
    except ValueError:
        return None
    return p / 100.0 if 0.0 < p <= 100.0 else None


def upgrade_version_1(server: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A version 1 report's ``server`` section in version 2's shape (each percentile was a
    bare number; see :meth:`ServerPercentile.from_version_1`)."""
    out = []
    for read in server:
        host = dict(read)
        for field in _HISTOGRAM_FIELDS:
            old = host.get(field)
            if not isinstance(old, dict) or not isinstance(old.get("percentiles"), dict):
                continue
            mean = old.get("mean") if isinstance(old.get("mean"), int | float) else None
            percentiles: dict[str, Any] = {}
            for label, value in old["percentiles"].items():
                q = _quantile(label)
                percentiles[label] = (
                    None
                    if q is None or not isinstance(value, int | float)
                    else ServerPercentile.from_version_1(float(value), mean, q).model_dump(
                        mode="json"
                    )
                )
            host[field] = {**old, "percentiles": percentiles}
        out.append(host)
    return out


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _software(version: str | None) -> str:
    """`` (vLLM 0.32.0)``; a version that names its software (``sageLLM Gateway 0.1.0``)
    as it is."""
    if not version:
        return ""
    return f" ({version})" if not version[0].isdigit() else f" (vLLM {version})"


def _histogram_line(h: ServerHistogram) -> tuple[str, bool]:
    """``mean M, p50 ..., ... (n=N)``, and whether a percentile is shown as bounds."""
    mean = "-" if h.mean is None else figure(h.mean)
    shown = [f"{k} {'-' if p is None else p.display}" for k, p in h.percentiles.items()]
    approximate = any(p is not None and p.kind != "value" for p in h.percentiles.values())
    return f"{', '.join([f'mean {mean}', *shown])} (n={h.count})", approximate


def render_server_side(reports: list[ServerSideReport]) -> str:
    """The printed summary's server section: counts, then timings beside each other."""
    lines: list[str] = []
    bounded = False
    for r in reports:
        lines.append(
            f"Server metrics from {r.host}/metrics{_software(r.version)}, {r.scrapes} scrapes:"
        )
        counts = (r.requests, r.prompt_tokens, r.generation_tokens, r.preemptions)
        if any(c is not None for c in counts):
            lines.append(
                f"  requests {_count(r.requests)}, prompt tokens {_count(r.prompt_tokens)}, "
                f"generation tokens {_count(r.generation_tokens)}, "
                f"preemptions {_count(r.preemptions)}"
            )
        hit_rate = r.prefix_cache_hit_rate
        if hit_rate is not None:
            lines.append(
                f"  prefix cache: {r.prefix_cache_hits} of {r.prefix_cache_queries} prompt "
                f"tokens looked up were hits ({hit_rate:.1%})"
            )
        accepted = r.spec_acceptance_rate
        if accepted is not None:
            lines.append(
                f"  speculative decoding: {r.spec_decode_accepted_tokens} of "
                f"{r.spec_decode_draft_tokens} draft tokens accepted ({accepted:.1%}), "
                f"{r.spec_acceptance_length or 0.0:.2f} tokens per draft step"
            )
        if r.gateway_ok is not None:
            lines.append(
                f"  gateway: generation requests answered 2xx {r.gateway_ok}, "
                f"otherwise {_count(r.gateway_failed)}"
            )
        gauges = [
            f"{name} peak {g.peak:,.{2 if name == 'KV cache' else 0}f}"
            for name, g in (
                ("running", r.running),
                ("waiting", r.waiting),
                ("KV cache", r.kv_cache_usage),
            )
            if g is not None
        ]
        if gauges:
            lines.append("  " + ", ".join(gauges))
        for field, label in _LABELS.items():
            h: ServerHistogram | None = getattr(r, field)
            if h is None or not h.count:
                continue
            line, approximate = _histogram_line(h)
            bounded = bounded or approximate
            lines.append(f"  server {label} ms: {line}")
        start = r.gateway_response_start_ms
        if start is not None and start.count:
            line, approximate = _histogram_line(start)
            bounded = bounded or approximate
            lines.append(f"  gateway time to response start ms (not to the stream's end): {line}")
        if r.last_error:
            lines.append(f"  last scrape error: {r.last_error}")
    if bounded:
        lines.append(LEGEND)
    return "\n".join(lines)
