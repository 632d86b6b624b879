"""The report's pictures' data: histograms and CDFs of each timing, and the timeline."""

from __future__ import annotations

import itertools
import random

import pytest

from sagellm_users._metrics import MetricsCollector
from sagellm_users._metrics.distribution import EXACT_LIMIT, Distribution
from sagellm_users._report import build_report
from sagellm_users._report.plots import HISTOGRAM_BINS, DistributionPlot, distribution_plots
from tests.records import steady_record


def test_bin_counts_are_exact_while_exact_and_close_once_binned() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(-3, 0.5) for _ in range(EXACT_LIMIT + 20_000)]
    edges = [0.0, 0.02, 0.04, 0.06, 0.08, 10.0]
    expected = [sum(1 for v in values if lo <= v < hi) for lo, hi in itertools.pairwise(edges)]
    exact = Distribution(values[:EXACT_LIMIT])
    assert exact.is_exact
    assert exact.bin_counts(edges) == [
        sum(1 for v in values[:EXACT_LIMIT] if lo <= v < hi) for lo, hi in itertools.pairwise(edges)
    ]
    binned = Distribution(values)
    assert not binned.is_exact
    counts = binned.bin_counts(edges)
    assert sum(counts) == len(values)
    for got, want in zip(counts, expected, strict=True):
        assert got == pytest.approx(want, rel=0.001, abs=5)


def test_values_outside_the_edges_fall_in_the_end_bins() -> None:
    assert Distribution([-1.0, 0.5, 7.0]).bin_counts([0.0, 1.0, 2.0]) == [2, 1]
    with pytest.raises(ValueError, match="two edges"):
        Distribution([1.0]).bin_counts([1.0])


def test_a_plot_has_a_monotone_cdf_and_bins_that_hold_every_sample() -> None:
    dist = Distribution(0.001 * i for i in range(1, 501))
    plot = DistributionPlot.of("all", "ttft_ms", dist, 1e3)
    assert plot.count == 500 and len(plot.bins) == HISTOGRAM_BINS
    assert sum(count for _lo, _hi, count in plot.bins) == 500 and plot.above == 0
    values = [v for v, _q in plot.cdf]
    fractions = [q for _v, q in plot.cdf]
    assert values == sorted(values) and fractions == sorted(fractions)
    assert plot.cdf[0][0] == pytest.approx(1.0) and plot.cdf[0][1] == 0.0
    assert plot.cdf[-1][0] == pytest.approx(500.0) and plot.cdf[-1][1] == 1.0
    assert plot.bins[0][0] == pytest.approx(1.0) and plot.bins[-1][1] == pytest.approx(500.0)


def test_a_long_tail_is_cut_at_p99_5_and_counted() -> None:
    dist = Distribution([0.05] * 990 + [0.051] * 5 + [5.0] * 5)
    plot = DistributionPlot.of("all", "e2el_ms", dist, 1e3)
    assert plot.bins[-1][1] < 5000.0, "the body is not squeezed into one bin by the tail"
    assert plot.above == 5
    assert sum(count for _lo, _hi, count in plot.bins) == 1000


def test_a_constant_distribution_still_has_a_bin() -> None:
    plot = DistributionPlot.of("all", "ttft_ms", Distribution([0.02] * 10), 1e3)
    assert sum(c for _lo, _hi, c in plot.bins) == 10
    assert all(hi > lo for lo, hi, _c in plot.bins)


def test_plots_per_user_class_only_when_several_ran() -> None:
    collector = MetricsCollector()
    for i in range(20):
        record = steady_record(n=4, request_id=i)
        record.user = "VLLMUser" if i % 2 else "LMDeployUser"
        collector.add(record)
    plots = distribution_plots(collector.total(), {})
    assert {p.scope for p in plots} == {"all"}
    report = build_report(
        collector,
        percentiles=[50, 99],
        host="http://127.0.0.1:1",
        user_classes=["VLLMUser", "LMDeployUser"],
        options={},
        warmup="0",
        measure_after_spawn=False,
    )
    scopes = {(p.scope, p.metric): p.count for p in report.distributions}
    assert scopes[("all", "ttft_ms")] == 20
    assert scopes[("VLLMUser", "ttft_ms")] == 10 and scopes[("LMDeployUser", "itl_ms")] == 30
    assert report.timeline is None, "no timeline was given"
