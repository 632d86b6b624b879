"""The soak benchmark's arithmetic: the least-squares line, the warm-up cut and the verdict."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak_bench", ROOT / "bench" / "soak_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


soak = _load()


def test_fit_line_recovers_an_exact_line() -> None:
    xs = [0.0, 1.0, 2.0, 5.0, 9.0]
    slope, intercept, stderr = soak.fit_line(xs, [3.0 - 0.5 * x for x in xs])
    assert slope == pytest.approx(-0.5)
    assert intercept == pytest.approx(3.0)
    assert stderr == pytest.approx(0.0, abs=1e-12)


def test_fit_line_matches_hand_computed_least_squares() -> None:
    # mean x 1.5, mean y 2.5, Sxx 5, Sxy 4: slope 0.8, intercept 1.3;
    # residuals -0.3, 0.9, -0.9, 0.3 (sum of squares 1.8): s.e. sqrt(1.8 / 2 / 5)
    slope, intercept, stderr = soak.fit_line([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 2.0, 4.0])
    assert slope == pytest.approx(0.8)
    assert intercept == pytest.approx(1.3)
    assert stderr == pytest.approx(math.sqrt(0.18))


def test_fit_line_has_no_error_estimate_from_two_points() -> None:
    slope, intercept, stderr = soak.fit_line([10.0, 20.0], [1.0, 2.0])
    assert (slope, intercept) == (pytest.approx(0.1), pytest.approx(0.0, abs=1e-12))
    assert math.isnan(stderr)


@pytest.mark.parametrize(
    ("xs", "ys", "message"),
    [
        ([1.0], [1.0], "at least two"),
        ([1.0, 2.0], [1.0], "2 x values but 1"),
        ([3.0, 3.0, 3.0], [1.0, 2.0, 3.0], "all x values are equal"),
    ],
)
def test_fit_line_rejects_what_has_no_line(xs: list[float], ys: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        soak.fit_line(xs, ys)


def test_after_warmup_keeps_samples_from_the_cut_on() -> None:
    times, values = soak.after_warmup([0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0], 2.0)
    assert times == [2.0, 3.0]
    assert values == [12.0, 13.0]


def test_fit_rss_leaves_warmup_growth_out() -> None:
    series = soak.Series("locust", 1)
    for t in range(0, 301, 5):
        # +50 MiB in the first minute (imports, pools), then 1 MiB a minute
        series.times.append(float(t))
        series.rss_mib.append(70 + 50 * min(t, 60) / 60 + max(0, t - 60) / 60)
    fit = soak.fit_rss(series, 90.0)
    assert fit.samples == len(range(90, 301, 5))
    assert fit.slope_mib_h == pytest.approx(60.0)
    assert fit.slope_kib_min == pytest.approx(1024.0)
    assert fit.start_mib == pytest.approx(120.5)
    assert fit.end_mib == pytest.approx(124.0)
    assert fit.peak_mib == pytest.approx(124.0)
    with_warmup = soak.fit_rss(series, 0.0)
    assert with_warmup.slope_mib_h > 300  # the warm-up's jump would dominate the slope


def test_second_half_tells_a_filled_buffer_from_a_leak() -> None:
    # a buffer filling for the first 30 minutes then full, beside a steady leak
    filled = soak.Series("locust", 1)
    leaking = soak.Series("worker 1", 2)
    for t in range(0, 3601, 10):
        filled.times.append(float(t))
        filled.rss_mib.append(70 + 3 * min(t, 1800) / 1800)
        leaking.times.append(float(t))
        leaking.rss_mib.append(70 + 3 * t / 3600)
    start = soak.second_half_start(720.0, 3600.0)
    assert start == 2160.0
    assert soak.fit_rss(filled, 720.0).slope_mib_h > 1.0  # the whole line sees the filling
    assert soak.fit_rss(filled, start).slope_mib_h == pytest.approx(0.0, abs=1e-9)
    assert soak.fit_rss(leaking, start).slope_mib_h == pytest.approx(3.0)


def test_fit_rss_needs_two_samples_after_warmup() -> None:
    series = soak.Series("worker 1", 2, times=[0.0, 50.0, 100.0], rss_mib=[60.0, 61.0, 61.0])
    assert soak.fit_rss(series, 60.0) is None


def test_verdict_judges_the_fastest_growing_process() -> None:
    def fit(slope: float) -> object:
        return soak.Fit(slope, 0.1, 100, 70.0, 70.0, 71.0)

    flat, line = soak.verdict({"master": fit(1.0), "worker 1": fit(5.5)}, 8.0)
    assert flat
    assert line == "flat: slope 5.50 MiB/h < bound 8 MiB/h (worker 1)"
    flat, line = soak.verdict({"master": fit(1.0), "worker 2": fit(8.0)}, 8.0)
    assert not flat
    assert line == "GROWS: slope 8.00 MiB/h >= bound 8 MiB/h (worker 2)"


def test_verdict_fails_what_was_not_measured() -> None:
    assert soak.verdict({"locust": None}, 8.0) == (False, "not measured: locust")
    assert soak.verdict({}, 8.0) == (False, "not measured: no load-generating process")


def test_default_warmup_covers_the_first_full_collection_or_a_fifth() -> None:
    assert soak.default_warmup(300.0) == 90.0
    assert soak.default_warmup(1000.0) == 200.0
    # 15 minutes short of measuring 15 minutes past the timeline's filling: a fifth still
    assert soak.default_warmup(2759.0) == pytest.approx(551.8)


def test_a_long_run_leaves_the_timeline_filling_out_and_gets_no_allowance() -> None:
    full = soak.MAX_POINTS + 60.0
    assert soak.default_warmup(3600.0) == soak.default_warmup(full + 900.0) == full
    assert soak.filling_allowance(soak.default_warmup(3600.0)) == 0.0
    assert soak.filling_allowance(soak.default_warmup(300.0)) == soak.TIMELINE_FILL_MIB_H


def test_verdict_adds_the_filling_allowance_and_says_so() -> None:
    fit = soak.Fit(12.0, 0.1, 100, 70.0, 71.0, 71.0)
    assert soak.verdict({"locust": fit}, 8.0, 10.0) == (
        True,
        "flat: slope 12.00 MiB/h < bound 8 + 10 MiB/h (locust, the timeline filling)",
    )
    flat, line = soak.verdict({"locust": fit}, 8.0)
    assert not flat and line.startswith("GROWS: slope 12.00 MiB/h >= bound 8 MiB/h")
