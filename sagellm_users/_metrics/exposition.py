"""The load test's own measurements in Prometheus' format, for ``/llm/metrics``.

An engineer who already charts a vLLM server in Grafana can scrape the load generator
beside it and draw the client's TTFT next to the server's. Counters and histograms are
the run's so far (as ``/llm/stats``'s cumulative view; a new run of the web session starts
them again, which Prometheus reads as a counter reset), per User class and endpoint, with
vLLM's own bucket bounds so the two line up. Written by prometheus_client's exposition
code from a collector read at each scrape: nothing is counted twice and nothing is kept
between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from sagellm_users._metrics.collector import EndpointStats, MetricsCollector
from sagellm_users._metrics.distribution import Distribution

__all__ = ["HISTOGRAMS", "LoadTestCollector", "registry_for"]

PREFIX = "sagellm_client"

_TTFT_BOUNDS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]  # fmt: skip
"""vLLM's ``vllm:time_to_first_token_seconds`` buckets."""
_TOKEN_BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
                 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]  # fmt: skip
"""vLLM's ``vllm:inter_token_latency_seconds`` buckets, with three below 10 ms (a fast
server's gaps)."""
_E2E_BOUNDS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
               60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]  # fmt: skip
"""vLLM's ``vllm:e2e_request_latency_seconds`` buckets."""

HISTOGRAMS: tuple[tuple[str, str, str, list[float]], ...] = (
    ("ttft", "ttft_seconds", "Time to first token of each successful request", _TTFT_BOUNDS),
    ("itl", "itl_seconds", "Gaps between a request's decode steps", _TOKEN_BOUNDS),
    ("tpot", "tpot_seconds", "Time per output token after the first, per request", _TOKEN_BOUNDS),
    ("e2e", "e2e_seconds", "End-to-end latency of each successful request", _E2E_BOUNDS),
)
"""(EndpointStats distribution, metric name, help, bucket bounds)."""

_LABELS = ["user", "endpoint"]


def _buckets(dist: Distribution, bounds: list[float]) -> list[tuple[str, float]]:
    cumulative = dist.counts_at_or_below(bounds)
    return [(repr(b), float(c)) for b, c in zip(bounds, cumulative, strict=True)] + [
        ("+Inf", float(dist.count))
    ]


class LoadTestCollector(Collector):
    """Reads the run's numbers at each scrape (``collector()`` gives the current ones)."""

    def __init__(
        self,
        collector: Callable[[], MetricsCollector],
        gauges: Callable[[], tuple[int, int, int]],
    ) -> None:
        self._collector = collector
        self._gauges = gauges

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        stats = self._collector().by_key
        yield from self._counters(stats)
        for attribute, name, doc, bounds in HISTOGRAMS:
            family = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=_LABELS, unit="")
            for (user, endpoint), s in stats.items():
                dist: Distribution = getattr(s, attribute)
                family.add_metric([user, endpoint], _buckets(dist, bounds), dist.sum)
            yield family
        users, in_flight, run = self._gauges()
        yield GaugeMetricFamily(f"{PREFIX}_users", "Users running now", value=users)
        yield GaugeMetricFamily(
            f"{PREFIX}_requests_in_flight", "Requests sent and not finished", value=in_flight
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_run", "The web session's current run (each test is one)", value=run
        )

    @staticmethod
    def _counters(stats: dict[tuple[str, str], EndpointStats]) -> Iterator[CounterMetricFamily]:
        requests = CounterMetricFamily(
            f"{PREFIX}_requests", "Requests that ended, by outcome", labels=[*_LABELS, "outcome"]
        )
        failures = CounterMetricFamily(
            f"{PREFIX}_failures", "Failed requests by error class", labels=[*_LABELS, "error"]
        )
        output = CounterMetricFamily(
            f"{PREFIX}_output_tokens", "Output tokens of successful requests", labels=_LABELS
        )
        prompt = CounterMetricFamily(
            f"{PREFIX}_prompt_tokens", "Prompt tokens of successful requests", labels=_LABELS
        )
        for (user, endpoint), s in stats.items():
            for outcome, count in (("ok", s.succeeded), ("failed", s.failed),
                                   ("cancelled", s.cancelled)):  # fmt: skip
                requests.add_metric([user, endpoint, outcome], count)
            for error, count in sorted(s.failures.items()):
                failures.add_metric([user, endpoint, error], count)
            output.add_metric([user, endpoint], s.total_output_tokens)
            prompt.add_metric([user, endpoint], s.total_input_tokens)
        yield from (requests, failures, output, prompt)


def registry_for(load_test: LoadTestCollector) -> CollectorRegistry:
    """A registry of its own (never prometheus_client's global one, which a locustfile or
    another library may fill)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(load_test)
    return registry
