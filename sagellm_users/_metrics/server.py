"""The server's own view: vLLM's Prometheus ``/metrics``, parsed and differenced.

A scrape is parsed with ``prometheus_client``'s reference parser into a
:class:`ServerSnapshot`: gauges (requests running / waiting, KV-cache usage), counters
(requests finished, aborted ones apart; prompt and generation tokens; preemptions) and
histograms (TTFT, inter-token latency, TPOT, end-to-end, queue time), each summed over its
label sets (engines of a data-parallel server, finish reasons). The difference of two
snapshots is what the server did between them, so a test's window on the server lines up
with the client's.

vLLM's buckets are coarse, so a percentile is read off a histogram as the interval the
counts and the sum prove it lies in (:meth:`BucketHistogram.quantile_bounds`; the rule is
in :mod:`sagellm_users._metrics.histogram_bounds`), not as Prometheus' interpolated
``histogram_quantile`` alone, which can contradict the histogram's own mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from sagellm_users._metrics.histogram_bounds import QuantileBounds, bound_quantile, interpolate

__all__ = [
    "COUNTERS",
    "GAUGES",
    "HISTOGRAMS",
    "BucketHistogram",
    "ServerMetricsError",
    "ServerSnapshot",
    "parse_vllm_metrics",
]

# Our name -> vLLM's sample names, newest first (older releases used the later names).
GAUGES: dict[str, tuple[str, ...]] = {
    "running": ("vllm:num_requests_running",),
    "waiting": ("vllm:num_requests_waiting",),
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
}
COUNTERS: dict[str, tuple[str, ...]] = {
    "requests": ("vllm:request_success_total",),
    "prompt_tokens": ("vllm:prompt_tokens_total",),
    "generation_tokens": ("vllm:generation_tokens_total",),
    "preemptions": ("vllm:num_preemptions_total",),
    "prefix_cache_queries": ("vllm:prefix_cache_queries_total",),
    "prefix_cache_hits": ("vllm:prefix_cache_hits_total",),
    "spec_decode_drafts": ("vllm:spec_decode_num_drafts_total",),
    "spec_decode_draft_tokens": ("vllm:spec_decode_num_draft_tokens_total",),
    "spec_decode_accepted_tokens": ("vllm:spec_decode_num_accepted_tokens_total",),
}
HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "ttft": ("vllm:time_to_first_token_seconds",),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    "tpot": ("vllm:request_time_per_output_token_seconds",),
    "e2e": ("vllm:e2e_request_latency_seconds",),
    "queue": ("vllm:request_queue_time_seconds",),
}


GATEWAY_REQUESTS = "sagellm_gateway_http_requests_total"
GATEWAY_DURATION = "sagellm_gateway_http_request_duration_seconds"
GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
"""sageLLM's gateway counts every route; its view of the load is these."""


class ServerMetricsError(ValueError):
    """The text is not Prometheus exposition format."""


@dataclass(frozen=True, slots=True)
class BucketHistogram:
    """Cumulative bucket counts by upper bound (the last bound is +Inf) and the sum (NaN
    when the server sent none: then the mean is unknown, not 0)."""

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    total: float

    @property
    def count(self) -> float:
        return self.cumulative[-1] if self.cumulative else 0.0

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count and math.isfinite(self.total) else None

    def minus(self, earlier: BucketHistogram | None) -> BucketHistogram:
        """What was observed since ``earlier`` (a server restart shows as a reset: all)."""
        if earlier is None or earlier.bounds != self.bounds or earlier.count > self.count:
            return self
        cumulative = tuple(a - b for a, b in zip(self.cumulative, earlier.cumulative, strict=True))
        return BucketHistogram(self.bounds, cumulative, self.total - earlier.total)

    def quantile(self, q: float) -> float | None:
        """Prometheus' ``histogram_quantile(q)``; ``q`` in [0, 1]."""
        return interpolate(self.bounds, self.cumulative, q)

    def quantile_bounds(self, q: float) -> QuantileBounds | None:
        """Where the ``q`` quantile (0 < q <= 1) lies, by the buckets and the sum."""
        return bound_quantile(self.bounds, self.cumulative, self.total, q)


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    """One scrape: what the server had counted at wall-clock time ``t``."""

    t: float
    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, BucketHistogram] = field(default_factory=dict)

    @property
    def recognized(self) -> bool:
        """Whether any metric of vLLM or of sageLLM's gateway was found."""
        return bool(self.gauges or self.counters or self.histograms)


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
    try:
        for family in text_string_to_metric_families(text):
            by_name.setdefault(family.name, [])  # a family with no samples yet is there too
            for sample in family.samples:
                by_name.setdefault(sample.name, []).append((sample.labels, sample.value))
    except (ValueError, TypeError, IndexError) as exc:
        raise ServerMetricsError(f"not Prometheus text format: {exc}") from None
    return by_name


def _first(by_name: dict[str, list[tuple[dict[str, str], float]]], names: tuple[str, ...]) -> str:
    return next((n for n in names if n in by_name), "")


def _histogram(
    by_name: dict[str, list[tuple[dict[str, str], float]]],
    name: str,
    paths: frozenset[str] | None = None,
) -> BucketHistogram | None:
    """The histogram ``name`` summed over its label sets (those of ``paths`` only, when
    given)."""
    buckets: dict[float, float] = {}
    for labels, value in by_name.get(f"{name}_bucket", ()):
        if paths is not None and labels.get("path") not in paths:
            continue
        try:
            bound = float(labels.get("le", ""))
        except ValueError:
            continue
        buckets[bound] = buckets.get(bound, 0.0) + value
    if not buckets:
        return None
    bounds = tuple(sorted(buckets))
    sums = [
        v
        for labels, v in by_name.get(f"{name}_sum", ())
        if paths is None or labels.get("path") in paths
    ]
    total = math.fsum(sums) if sums else math.nan
    return BucketHistogram(bounds, tuple(buckets[b] for b in bounds), total)


def parse_vllm_metrics(text: str, t: float) -> ServerSnapshot:
    """The vLLM metrics in ``text``, summed over label sets, stamped ``t``."""
    by_name = _samples(text)
    snapshot = ServerSnapshot(t)
    for ours, names in GAUGES.items():
        if name := _first(by_name, names):
            snapshot.gauges[ours] = sum(v for _labels, v in by_name[name])
    for ours, names in COUNTERS.items():
        if name := _first(by_name, names):
            snapshot.counters[ours] = sum(v for _labels, v in by_name[name])
    finished = by_name.get(COUNTERS["requests"][0], ())
    aborted = [v for labels, v in finished if labels.get("finished_reason") == "abort"]
    if aborted:  # requests the client gave up on are not completions: count them apart
        snapshot.counters["aborted"] = sum(aborted)
        snapshot.counters["requests"] -= snapshot.counters["aborted"]
    for ours, names in HISTOGRAMS.items():
        for name in names:
            histogram = _histogram(by_name, name)
            if histogram is not None:
                snapshot.histograms[ours] = histogram
                break
    _read_gateway(by_name, snapshot)
    return snapshot


def _read_gateway(
    by_name: dict[str, list[tuple[dict[str, str], float]]], snapshot: ServerSnapshot
) -> None:
    """sageLLM's gateway (``sagellm_gateway_*``): its generation requests by outcome, and
    its own request duration, which for a streamed answer ends when the response starts
    (headers sent), not when the stream ends."""
    if GATEWAY_REQUESTS in by_name or GATEWAY_REQUESTS.removesuffix("_total") in by_name:
        ok = failed = 0.0
        for labels, value in by_name.get(GATEWAY_REQUESTS, ()):
            if labels.get("path") in GENERATION_PATHS:
                if labels.get("status", "").startswith("2"):
                    ok += value
                else:
                    failed += value
        snapshot.counters["gateway_ok"] = ok
        snapshot.counters["gateway_failed"] = failed
    histogram = _histogram(by_name, GATEWAY_DURATION, GENERATION_PATHS)
    if histogram is not None:
        snapshot.histograms["gateway_start"] = histogram
