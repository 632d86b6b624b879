"""Server percentiles from vLLM's coarse histograms: bounds, never an impossible number.

Interpolating inside the buckets printed, from fast servers: queue time mean 0.006 ms beside
p50 150 ms, E2E mean 16.9 ms beside p50 150 ms, ITL mean 10.0 beside p99 9.9 (the embedded
mock with ``--tbt-ms 10`` still shows that one). Each is rebuilt here as the Prometheus
text vLLM 0.32 writes, with its bucket bounds, and must now print bounds the mean allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from sagellm_users._metrics.histogram_bounds import QuantileBounds
from sagellm_users._metrics.server import BucketHistogram, parse_vllm_metrics
from sagellm_users._metrics.server_series import ServerSeries
from sagellm_users._report.server import (
    ServerPercentile,
    ServerSideReport,
    render_server_side,
)
from sagellm_users.mock_server.metrics import ITL_BUCKETS, REQUEST_BUCKETS

PERCENTILES = [50.0, 90.0, 95.0, 99.0]
INF = float("inf")


def _family(name: str, bounds: Sequence[float], counts: Sequence[int], total: float) -> str:
    """One histogram as vLLM 0.32 exports it: cumulative buckets, +Inf, count and sum."""
    assert len(counts) == len(bounds) + 1, "one count per bucket, the last one +Inf"
    labels = 'engine="0",model_name="tiny"'
    lines = [f"# TYPE {name} histogram"]
    cumulative = 0
    for bound, n in zip((*bounds, INF), counts, strict=True):
        cumulative += n
        le = "+Inf" if math.isinf(bound) else repr(float(bound))
        lines.append(f'{name}_bucket{{{labels},le="{le}"}} {float(cumulative)}')
    lines.append(f"{name}_count{{{labels}}} {float(cumulative)}")
    lines.append(f"{name}_sum{{{labels}}} {total!r}")
    return "\n".join(lines) + "\n"


def _all_in_first(bounds: Sequence[float], n: int) -> list[int]:
    return [n] + [0] * len(bounds)


QUEUE = _family(
    "vllm:request_queue_time_seconds", REQUEST_BUCKETS, _all_in_first(REQUEST_BUCKETS, 156),
    156 * 0.006e-3,
)  # fmt: skip
E2E = _family(
    "vllm:e2e_request_latency_seconds", REQUEST_BUCKETS, _all_in_first(REQUEST_BUCKETS, 152),
    152 * 16.9e-3,
)  # fmt: skip
# The sum as the mock's float additions left it: a hair above 2300 x 10 ms, which no
# sample at or below 10 ms can reach; rounding must not turn that into a contradiction.
ITL = _family(
    "vllm:inter_token_latency_seconds", ITL_BUCKETS, _all_in_first(ITL_BUCKETS, 2300),
    23.000000000000796,
)  # fmt: skip


def _measured() -> ServerSideReport:
    series = ServerSeries("http://127.0.0.1:8000")
    series.add(parse_vllm_metrics("", 0.0))
    series.add(parse_vllm_metrics(QUEUE + E2E + ITL, 10.0))
    return ServerSideReport.of(series, PERCENTILES)


def _shown(report: ServerSideReport, field: str) -> dict[str, str]:
    histogram = getattr(report, field)
    assert histogram is not None
    return {k: "-" if p is None else p.display for k, p in histogram.percentiles.items()}


# -- the three measured cases ---------------------------------------------------------------


def test_queue_time_p50_is_not_150_ms_beside_a_mean_of_6_microseconds() -> None:
    report = _measured()
    queue = report.queue_ms
    assert queue is not None and queue.mean is not None
    assert queue.mean == pytest.approx(0.006)
    for label, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        p = queue.percentiles[label]
        assert p is not None and p.bucket is not None
        assert p.bucket.lower == 0.0 and p.bucket.upper == pytest.approx(300.0)
        assert p.kind == "at_most" and p.display.startswith("≤ ")
        assert p.upper is not None and p.upper <= queue.mean / (1 - q) * (1 + 1e-9)  # Markov
        assert p.estimate <= p.upper
        assert p.histogram_quantile == pytest.approx(300.0 * q)  # what Grafana would say
    assert _shown(report, "queue_ms")["p50"] == "≤ 0.0119"


def test_e2e_p50_is_not_150_ms_beside_a_mean_of_16_9_ms() -> None:
    report = _measured()
    e2e = report.e2el_ms
    assert e2e is not None and e2e.mean == pytest.approx(16.9)
    shown = _shown(report, "e2el_ms")
    assert shown["p50"] == "≤ 33.4"  # 77 of the 152 samples are at least p50: 77 p50 <= sum
    # Higher up, the sum also bounds them from below: 145 samples at most p95 and the
    # other 7 at most 300 ms must still add up to 152 x 16.9 ms.
    assert shown == {"p50": "≤ 33.4", "p90": "≤ 161", "p95": "3.23-300", "p99": "15.0-300"}
    p99 = e2e.percentiles["p99"]
    assert p99 is not None and p99.bucket is not None and p99.bucket.upper == pytest.approx(300)


def test_itl_p99_is_not_9_9_beside_a_mean_of_10_0() -> None:
    """Every sample is at most 10 ms (the first bucket) and their mean is 10 ms: every
    sample is 10 ms, so is every percentile; interpolation's 5.0 and 9.9 cannot be."""
    itl = _measured().itl_ms
    assert itl is not None and itl.mean == pytest.approx(10.0)
    for p in itl.percentiles.values():
        assert p is not None and p.bucket is not None
        assert p.bucket.lower == 0.0 and p.bucket.upper == pytest.approx(10.0)
        assert p.kind == "value" and p.display == "10.0"
        assert p.lower == pytest.approx(10.0, abs=1e-6) and p.upper == pytest.approx(10.0)


def test_the_terminal_prints_bounds_and_never_the_impossible_numbers() -> None:
    text = render_server_side([_measured()])
    lines = {line.split(" ms:")[0].strip(): line for line in text.splitlines() if " ms:" in line}
    assert lines["server queue"] == (
        "  server queue ms: mean 0.006, p50 ≤ 0.0119, p90 ≤ 0.0585, p95 ≤ 0.117, "
        "p99 ≤ 0.468 (n=156)"
    )
    assert lines["server E2E"].startswith("  server E2E ms: mean 16.9, p50 ≤ 33.4, ")
    assert lines["server ITL"] == (
        "  server ITL ms: mean 10.0, p50 10.0, p90 10.0, p95 10.0, p99 10.0 (n=2300)"
    )
    assert "150" not in text and "9.9" not in text
    assert "≤ at most" in text, "a legend says what the signs mean"


# -- what is shown for a bound --------------------------------------------------------------


def _percentile(low: float, high: float, estimate: float, bucket: tuple[float, float]) -> str:
    b = QuantileBounds(
        q=0.5, estimate=estimate, interpolated=estimate, low=low, high=high,
        bucket_lower=bucket[0], bucket_upper=bucket[1],
    )  # fmt: skip
    p = ServerPercentile.of(b, 1.0)
    return f"{p.kind} {p.display}"


@pytest.mark.parametrize(
    ("low", "high", "estimate", "bucket", "shown"),
    [
        (10.0, 10.0, 10.0, (7.5, 10.0), "value 10.0"),
        (9.996, 10.0, 9.996, (0.0, 10.0), "value 10.0"),
        (9.5, 10.0, 9.8, (7.5, 10.0), "approx ≈ 9.80"),
        (250.0, 500.0, 300.0, (250.0, 500.0), "range 250-500"),
        (8.9899, 10.0, 9.975, (7.5, 10.0), "range 8.98-10.0"),  # outward: still a bound
        (0.0, 300.0, 150.0, (0.0, 300.0), "at_most ≤ 300"),
        (0.0, 33.84, 33.84, (0.0, 300.0), "at_most ≤ 33.9"),  # rounded up, never down
        (0.0, 0.011848, 0.011848, (0.0, 300.0), "at_most ≤ 0.0119"),
        (80_000.0, INF, 80_000.0, (80_000.0, INF), "above > 80,000"),
        (2_000.0, 2_500.0, 2_400.0, (1_000.0, 2_500.0), "range 2,000-2,500"),
    ],
)
def test_a_bound_is_shown_by_how_much_it_pins_down(
    low: float, high: float, estimate: float, bucket: tuple[float, float], shown: str
) -> None:
    assert _percentile(low, high, estimate, bucket) == shown


def test_the_json_carries_numbers_bounds_and_what_to_show() -> None:
    data = _measured().model_dump(mode="json")
    p50 = data["queue_ms"]["percentiles"]["p50"]
    assert set(p50) == {
        "estimate", "lower", "upper", "bucket", "histogram_quantile", "kind", "display",
    }  # fmt: skip
    assert p50["bucket"] == {"lower": 0.0, "upper": pytest.approx(300.0)}
    assert p50["display"] == "≤ 0.0119" and p50["lower"] == 0.0
    top = BucketHistogram((1.0, INF), (0.0, 3.0), INF)  # no usable sum, all beyond 1 s
    b = top.quantile_bounds(0.5)
    assert b is not None
    shown = ServerPercentile.of(b, 1e3).model_dump(mode="json")
    assert shown["upper"] is None and shown["bucket"] == {"lower": 1000.0, "upper": None}
    assert shown["display"] == "> 1,000"
