"""--slo-early-stop: an objective is lost only when a perfect rest of the run cannot save it."""

from __future__ import annotations

import math
import random

import pytest

from sagellm_users._metrics.collector import EndpointStats
from sagellm_users._metrics.distribution import EXACT_LIMIT, Distribution
from sagellm_users._metrics.early_stop import RATE_HEADROOM, Horizon, doomed_slos, why_doomed
from sagellm_users._metrics.slo import parse_slos

UNBOUNDED = Horizon(seconds_left=None)
OVER = Horizon(seconds_left=0.0)
"""The run is over: what was measured is final."""


def stats_with(ttft: list[float], *, failed: int = 0, output_tokens: int = 0) -> EndpointStats:
    stats = EndpointStats(succeeded=len(ttft), failed=failed, requests=len(ttft) + failed)
    stats.ttft.extend(ttft)
    stats.total_output_tokens = output_tokens
    return stats


def one(text: str):  # type: ignore[no-untyped-def]
    (slo,) = parse_slos(text)
    return slo


def test_growth_is_headroom_times_time_left_plus_users_in_flight() -> None:
    stats = stats_with([0.1] * 100)
    assert Horizon(30.0, in_flight=10).growth(stats, 10.0) == RATE_HEADROOM * 3 + 0.1
    assert math.isinf(UNBOUNDED.growth(stats, 10.0))
    assert math.isinf(Horizon(30.0).growth(EndpointStats(), 10.0)), "nothing measured yet"


@pytest.mark.parametrize(
    ("text", "values", "lost"),
    [
        ("ttft_max<=500ms", [0.1, 0.7], True),
        ("ttft_max<=500ms", [0.1, 0.4], False),
        ("ttft_max<500ms", [0.5], True),
        ("ttft_min>=100ms", [0.05, 0.3], True),
        ("ttft_min>=100ms", [0.15, 0.3], False),
        ("ttft_max>=1s", [0.1], False),  # a later slow request may still raise the max
        ("ttft_min<=10ms", [0.5], False),
        ("ttft_p50<=10ms", [1.0] * 1000, False),  # more traffic could bring it down
        ("error_rate<=1%", [0.1], False),
    ],
)  # fmt: skip
def test_without_a_time_limit_only_extremes_are_final(
    text: str, values: list[float], lost: bool
) -> None:
    stats = stats_with(values, failed=500)
    assert (why_doomed(one(text), stats, 10.0, UNBOUNDED) is not None) is lost


def test_percentile_lost_exactly_when_the_best_case_fails() -> None:
    # 100 samples, 10 above 500 ms, run over: p95 (rank 94.05) lands on a slow one.
    stats = stats_with([0.1] * 90 + [0.9] * 10)
    assert why_doomed(one("ttft_p95<=500ms"), stats, 10.0, OVER) is not None
    assert why_doomed(one("ttft_p89<=500ms"), stats, 10.0, OVER) is None
    # With room for 100 more fast requests the slow ten are 5% of 200: p95 may still pass.
    horizon = Horizon(seconds_left=10.0 / RATE_HEADROOM)
    assert horizon.growth(stats, 10.0) == 1.0
    assert why_doomed(one("ttft_p95<=500ms"), stats, 10.0, horizon) is None
    assert why_doomed(one("ttft_p99<=500ms"), stats, 10.0, horizon) is not None


@pytest.mark.parametrize("seed", range(20))
def test_a_lost_percentile_fails_in_every_completion_of_the_run(seed: int) -> None:
    """The verdict is a guarantee: add the best possible rest of the run (fast samples,
    as many as the horizon allows) and the percentile still fails."""
    rng = random.Random(seed)
    n = rng.randint(20, 3000)
    measured = [rng.lognormvariate(-2, 1) for _ in range(n)]
    stats = stats_with(measured)
    q = rng.choice([50, 90, 95, 99])
    bound = rng.choice([0.05, 0.1, 0.3])
    slo = one(f"ttft_p{q}<={bound * 1000:g}ms")
    horizon = Horizon(seconds_left=rng.uniform(0, 5))
    growth = horizon.growth(stats, 10.0)
    reason = why_doomed(slo, stats, 10.0, horizon)
    best_rest = [0.0] * math.ceil(n * growth)
    final = Distribution(measured + best_rest)
    value = final.percentile(q)
    assert value is not None
    if reason is not None:
        assert value > bound, (reason, value)
    else:
        # Not lost: then the best case really meets it (exact counts) or comes within
        # an interpolation toward the first sample past the bound.
        assert value <= bound * 1.011


def test_binned_counts_are_lower_bounds() -> None:
    rng = random.Random(7)
    values = [rng.expovariate(10) for _ in range(EXACT_LIMIT + 1)]
    dist = Distribution(values)
    assert not dist.is_exact
    for bound in (0.01, 0.05, 0.1, 0.3):
        above = sum(v > bound for v in values)
        below = sum(v < bound for v in values)
        assert above * 0.995 <= dist.count_above(bound) <= above
        assert below * 0.995 <= dist.count_below(bound) <= below
    assert dist.count_above(10.0) == 0 and dist.count_below(0.0) == 0
    assert dist.count_above(-1.0) == dist.count_below(10.0) == len(values)


def test_mean_lost_only_for_a_ceiling() -> None:
    stats = stats_with([1.0] * 10)
    assert why_doomed(one("ttft_mean<=500ms"), stats, 10.0, OVER) is not None
    # One more run-length of instant requests halves the mean to exactly 500 ms: met.
    half = Horizon(seconds_left=10.0 / RATE_HEADROOM)
    assert why_doomed(one("ttft_mean<=500ms"), stats, 10.0, half) is None
    assert why_doomed(one("ttft_mean>=2s"), stats, 10.0, OVER) is None


def test_error_rate_lost_when_even_all_successes_cannot_dilute_it() -> None:
    stats = stats_with([0.1] * 90, failed=10)
    assert why_doomed(one("error_rate<=5%"), stats, 10.0, OVER) is not None
    assert why_doomed(one("error_rate<=5%"), stats, 10.0, Horizon(5.0)) is None  # 10 of 300
    reason = why_doomed(one("error_rate<=1%"), stats, 10.0, Horizon(5.0))
    assert reason is not None and "10 of 100 requests failed" in reason


def test_throughput_floor_lost_when_even_double_the_rate_cannot_reach_it() -> None:
    stats = stats_with([0.1] * 100, output_tokens=1000)  # 100 tok/s over 10 s
    # 50 s left at twice the rate: (1000 + 2 * 100 * 50) / 60 = 183 tok/s at best.
    assert why_doomed(one("output_throughput>=150"), stats, 10.0, Horizon(50.0)) is None
    reason = why_doomed(one("output_throughput>=200"), stats, 10.0, Horizon(50.0))
    assert reason is not None and "100/s so far" in reason
    assert why_doomed(one("request_throughput>=11"), stats, 10.0, OVER) is not None
    assert why_doomed(one("output_throughput>=1000000000"), stats, 10.0, UNBOUNDED) is None


def test_doomed_slos_lists_each_lost_objective_with_its_reason() -> None:
    stats = stats_with([0.1] * 90 + [2.0] * 10, failed=50)
    slos = parse_slos("ttft_max<=1s,ttft_p50<=500ms,error_rate<=10%")
    lost = doomed_slos(slos, stats, 10.0, OVER)
    assert [slo.text for slo, _ in lost] == ["ttft_max<=1s", "error_rate<=10%"]
    assert all(reason for _, reason in lost)
    assert doomed_slos(slos, EndpointStats(), 0.0, OVER) == []
