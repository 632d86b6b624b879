"""Parsing vLLM's /metrics, differencing scrapes, Prometheus-style quantiles and the bounds
the buckets and the sum put on each percentile."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import pytest

from sagellm_users._metrics.histogram_bounds import QuantileBounds
from sagellm_users._metrics.server import (
    BucketHistogram,
    ServerMetricsError,
    parse_vllm_metrics,
)
from sagellm_users.mock_server.metrics import ITL_BUCKETS, REQUEST_BUCKETS, TTFT_BUCKETS

INF = float("inf")

# Lines as vLLM 0.32's OpenAI server wrote them (two engines of a data-parallel server
# here, so sums over label sets are exercised).
VLLM_TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 3.0
vllm:num_requests_running{engine="1",model_name="tiny"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.25
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="tiny"} 0.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="tiny"} 4.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny"} 1.0
vllm:request_success_total{engine="1",finished_reason="length",model_name="tiny"} 2.0
vllm:request_success_total{engine="1",finished_reason="abort",model_name="tiny"} 3.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="tiny"} 50.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.02",model_name="tiny"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="tiny"} 3.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="tiny"} 4.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="tiny"} 4.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny"} 0.5
vllm:time_to_first_token_seconds_bucket{engine="1",le="0.02",model_name="tiny"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="0.1",model_name="tiny"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="+Inf",model_name="tiny"} 1.0
vllm:time_to_first_token_seconds_count{engine="1",model_name="tiny"} 1.0
vllm:time_to_first_token_seconds_sum{engine="1",model_name="tiny"} 0.01
"""


def test_parse_sums_label_sets() -> None:
    snap = parse_vllm_metrics(VLLM_TEXT, 12.0)
    assert snap.t == 12.0 and snap.recognized
    assert snap.gauges == {"running": 5.0, "kv_cache_usage": 0.25}
    assert snap.counters == {
        "requests": 7.0,  # aborted requests are counted apart
        "aborted": 3.0,
        "generation_tokens": 50.0,
        "preemptions": 0.0,
    }
    ttft = snap.histograms["ttft"]
    assert ttft.bounds == (0.02, 0.1, float("inf"))
    assert ttft.cumulative == (2.0, 4.0, 5.0)
    assert ttft.count == 5 and ttft.mean == pytest.approx(0.51 / 5)


def test_older_names_are_read_too() -> None:
    text = (
        "# TYPE vllm:gpu_cache_usage_perc gauge\n"
        'vllm:gpu_cache_usage_perc{model_name="m"} 0.5\n'
        "# TYPE vllm:time_per_output_token_seconds histogram\n"
        'vllm:time_per_output_token_seconds_bucket{le="0.01",model_name="m"} 2.0\n'
        'vllm:time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 2.0\n'
        'vllm:time_per_output_token_seconds_sum{model_name="m"} 0.01\n'
    )
    snap = parse_vllm_metrics(text, 0.0)
    assert snap.gauges["kv_cache_usage"] == 0.5 and snap.histograms["itl"].count == 2


def test_a_server_without_vllm_metrics_is_recognised_as_such() -> None:
    text = "# TYPE http_requests_total counter\nhttp_requests_total 3\n"
    assert not parse_vllm_metrics(text, 0.0).recognized


GATEWAY_TEXT = """\
# HELP sagellm_gateway_http_requests_total Total HTTP requests
# TYPE sagellm_gateway_http_requests_total counter
sagellm_gateway_http_requests_total{method="GET",path="/info",status="200"} 3.0
sagellm_gateway_http_requests_total{method="POST",path="/v1/chat/completions",status="200"} 41.0
sagellm_gateway_http_requests_total{method="POST",path="/v1/chat/completions",status="503"} 2.0
sagellm_gateway_http_requests_total{method="POST",path="/v1/completions",status="400"} 1.0
# HELP sagellm_gateway_http_request_duration_seconds HTTP request duration
# TYPE sagellm_gateway_http_request_duration_seconds histogram
DURATION_bucket{le="0.01",method="GET",path="/info"} 0.0
DURATION_bucket{le="0.1",method="GET",path="/info"} 3.0
DURATION_bucket{le="+Inf",method="GET",path="/info"} 3.0
DURATION_count{method="GET",path="/info"} 3.0
DURATION_sum{method="GET",path="/info"} 0.2
DURATION_bucket{le="0.01",CHAT} 21.0
DURATION_bucket{le="0.1",CHAT} 43.0
DURATION_bucket{le="+Inf",CHAT} 43.0
DURATION_count{CHAT} 43.0
DURATION_sum{CHAT} 0.6
""".replace("DURATION", "sagellm_gateway_http_request_duration_seconds").replace(
    "CHAT", 'method="POST",path="/v1/chat/completions"'
)


def test_sagellm_gateway_metrics_are_read_for_the_generation_routes_only() -> None:
    """Its own counters and duration (as `sagellm serve` 0.5.4 exports them): requests on
    the generation routes by outcome, and their duration; /info and the rest left out."""
    snap = parse_vllm_metrics(GATEWAY_TEXT, 0.0)
    assert snap.recognized
    assert snap.counters == {"gateway_ok": 41.0, "gateway_failed": 3.0}
    start = snap.histograms["gateway_start"]
    assert start.count == 43.0 and start.total == pytest.approx(0.6)
    assert start.cumulative == (21.0, 43.0, 43.0)


def test_a_gateway_that_has_answered_nothing_yet_is_recognised() -> None:
    text = (
        "# HELP sagellm_gateway_http_requests_total Total HTTP requests\n"
        "# TYPE sagellm_gateway_http_requests_total counter\n"
    )
    snap = parse_vllm_metrics(text, 0.0)
    assert snap.recognized and snap.counters == {"gateway_ok": 0.0, "gateway_failed": 0.0}


def test_text_that_is_not_prometheus_is_an_error() -> None:
    with pytest.raises(ServerMetricsError, match="not Prometheus text format"):
        parse_vllm_metrics('{"detail": "Not Found"}', 0.0)


def test_quantile_follows_prometheus_histogram_quantile() -> None:
    h = BucketHistogram((0.1, 0.2, 0.4, float("inf")), (10.0, 30.0, 40.0, 40.0), 8.0)
    assert h.quantile(0.25) == pytest.approx(0.1)  # rank 10: the first bucket's top
    assert h.quantile(0.5) == pytest.approx(0.15)  # rank 20: half-way through (0.1, 0.2]
    assert h.quantile(0.125) == pytest.approx(0.05)  # the first bucket starts at 0
    assert h.quantile(1.0) == pytest.approx(0.4)
    beyond = BucketHistogram((0.1, float("inf")), (1.0, 3.0), 1.0)
    assert beyond.quantile(0.99) == pytest.approx(0.1)  # +Inf bucket: the last finite bound
    assert BucketHistogram((1.0, float("inf")), (0.0, 0.0), 0.0).quantile(0.5) is None


def test_minus_gives_what_happened_between_two_scrapes() -> None:
    early = BucketHistogram((0.1, float("inf")), (1.0, 2.0), 0.3)
    late = BucketHistogram((0.1, float("inf")), (4.0, 6.0), 1.0)
    diff = late.minus(early)
    assert diff.cumulative == (3.0, 4.0) and diff.total == pytest.approx(0.7)
    restarted = BucketHistogram((0.1, float("inf")), (1.0, 1.0), 0.05)
    assert restarted.minus(late) is restarted  # counts fell: the server restarted
    assert late.minus(None) is late


def _bucketed(bounds: Sequence[float], samples: Sequence[float]) -> BucketHistogram:
    """Samples counted the way prometheus_client counts them (``le``: at most the bound)."""
    edges = (*bounds, INF)
    counts = [0] * len(edges)
    for x in samples:
        counts[next(i for i, b in enumerate(edges) if x <= b)] += 1
    cumulative = [float(sum(counts[: i + 1])) for i in range(len(counts))]
    return BucketHistogram(edges, tuple(cumulative), math.fsum(samples))


DRAWS: dict[str, Callable[[random.Random], float]] = {
    "lognormal": lambda r: r.lognormvariate(-4.0, 1.0),
    "constant": lambda _r: 0.01,
    "near zero": lambda r: r.uniform(0.0, 1e-4),
    "bimodal": lambda r: r.choice((0.002, 0.7)) * r.uniform(0.9, 1.1),
    "heavy tail": lambda r: r.paretovariate(1.5) * 0.01,
    "beyond the last bucket": lambda r: r.choice((0.05, 4000.0)),
}


@pytest.mark.parametrize("draw", DRAWS, ids=list(DRAWS))
@pytest.mark.parametrize("bounds", [TTFT_BUCKETS, ITL_BUCKETS, REQUEST_BUCKETS])
def test_each_percentile_lies_within_its_bounds_and_they_rise_with_p(
    draw: str, bounds: tuple[float, ...]
) -> None:
    rng = random.Random(f"{draw}-{len(bounds)}")
    qs = (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
    for n in (1, 2, 7, 100, 1000):
        samples = sorted(DRAWS[draw](rng) for _ in range(n))
        h = _bucketed(bounds, samples)
        mean = math.fsum(samples) / n
        previous: QuantileBounds | None = None
        for q in qs:
            b = h.quantile_bounds(q)
            assert b is not None
            exact = samples[max(1, math.ceil(q * n)) - 1]  # the sample at rank ceil(qN)
            assert b.bucket_lower < exact <= b.bucket_upper, (q, n, b, exact)
            assert b.low * (1 - 1e-9) <= exact <= b.high * (1 + 1e-9), (q, n, b, exact)
            assert b.low <= b.estimate <= b.high
            assert b.bucket_lower <= b.low and b.high <= b.bucket_upper
            if q < 1:
                assert b.high <= mean / (1 - q) * (1 + 1e-9), "Markov's inequality holds"
            if previous is not None:
                assert previous.low <= b.low and previous.high <= b.high
                assert previous.estimate <= b.estimate
            previous = b


def test_without_a_sum_only_the_buckets_bound_a_percentile() -> None:
    text = (
        "# TYPE vllm:time_to_first_token_seconds histogram\n"
        'vllm:time_to_first_token_seconds_bucket{le="0.1"} 4.0\n'
        'vllm:time_to_first_token_seconds_bucket{le="0.25"} 10.0\n'
        'vllm:time_to_first_token_seconds_bucket{le="+Inf"} 10.0\n'
    )
    ttft = parse_vllm_metrics(text, 0.0).histograms["ttft"]
    assert ttft.mean is None, "no _sum line: the mean is unknown, not 0"
    b = ttft.quantile_bounds(0.9)
    assert b is not None and (b.low, b.high) == (0.1, 0.25)


def test_a_sum_the_buckets_cannot_hold_is_ignored() -> None:
    """Negative observations (or a sum from another reset) break the non-negative bound:
    the buckets alone then say what is known."""
    h = BucketHistogram((0.1, 0.25, INF), (4.0, 10.0, 10.0), -1.0)
    b = h.quantile_bounds(0.9)
    assert b is not None and (b.low, b.high) == (0.1, 0.25)


def test_the_top_bucket_is_bounded_by_the_sum_when_it_can_be() -> None:
    h = BucketHistogram((1.0, INF), (1.0, 2.0), 0.5 + 3.0)
    b = h.quantile_bounds(1.0)
    assert b is not None and b.bucket_upper == INF
    assert b.low == 1.0 and b.high == pytest.approx(3.5), "at most the whole sum"
    assert h.quantile_bounds(0.99) is not None
