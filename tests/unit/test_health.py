"""The load generator's self-measurements: merging, the verdict and the advice."""

from __future__ import annotations

import logging

import gevent
import pytest

from sagellm_users._metrics.health import (
    CPU_LIMIT,
    LAG_LIMIT_S,
    TARGET_CPU,
    ClientHealth,
    ProcessHealth,
)
from sagellm_users._report import ClientHealthReport, render_client_health
from sagellm_users._users import health_probe
from sagellm_users._users.health_probe import HealthProbe


def process(lag_s: float, cpu: float, seconds: float = 10.0, n: int = 200) -> ProcessHealth:
    health = ProcessHealth()
    for _ in range(n):
        health.loop_lag.add(lag_s)
    for _ in range(int(seconds)):
        health.add_cpu(cpu, 1.0)
    return health


def test_a_healthy_client_is_trustworthy_and_needs_nothing_more() -> None:
    health = ClientHealth()
    health.processes["local"] = process(0.0005, 0.4)
    verdict = health.verdict()
    assert verdict.trustworthy
    assert verdict.warnings == ()
    assert verdict.processes == verdict.processes_needed == 1


def test_a_cpu_bound_worker_is_named_and_the_advice_sizes_for_the_target_share() -> None:
    health = ClientHealth()
    health.processes["w1"] = process(0.030, 1.0)  # saturated
    health.processes["w2"] = process(0.0005, 0.5)
    verdict = health.verdict()
    assert not verdict.trustworthy
    assert "on worker w1" in verdict.warnings[0]
    assert "30.0 ms" in verdict.warnings[0] and "short of CPU" in verdict.warnings[0]
    needed = max(3, -(-1.5 // TARGET_CPU))
    assert verdict.processes_needed == needed == 3
    assert "run 3 load-generating processes instead of 2" in verdict.warnings[-1]


def test_lag_without_cpu_points_at_blocking_code_not_at_more_workers() -> None:
    health = ClientHealth()
    health.processes["local"] = process(0.050, 0.1)
    verdict = health.verdict()
    assert not verdict.trustworthy
    assert "blocking calls" in verdict.warnings[0]
    assert verdict.processes_needed == 1
    assert len(verdict.warnings) == 1


def test_a_cpu_peak_alone_is_a_warning() -> None:
    health = ClientHealth()
    p = process(0.0005, 0.3)
    p.add_cpu(0.95, 1.0)
    health.processes["local"] = p
    assert p.cpu_peak > CPU_LIMIT
    verdict = health.verdict()
    assert not verdict.trustworthy and "CPU at 95%" in verdict.warnings[0]
    assert verdict.processes_needed == 2


def test_wire_round_trip_and_merge_keep_every_sample() -> None:
    a, b = process(0.001, 0.5, seconds=4, n=30), process(0.003, 0.7, seconds=6, n=50)
    a.start_lag.add(0.002)
    merged = ClientHealth()
    merged.merge_wire("w", a.to_wire())
    merged.merge_wire("w", b.to_wire())
    w = merged.processes["w"]
    assert w.loop_lag.count == 80 and w.start_lag.count == 1
    assert w.cpu_s == pytest.approx(4 * 0.5 + 6 * 0.7)
    assert w.wall_s == pytest.approx(10.0)
    assert w.cpu_peak == pytest.approx(0.7)
    assert w.cpu_mean == pytest.approx(0.62)


def test_add_cpu_ignores_an_empty_interval() -> None:
    p = ProcessHealth()
    p.add_cpu(1.0, 0.0)
    assert p.cpu_mean is None and p.cpu_peak == 0.0


def test_the_report_line_says_trustworthy_or_lists_the_warnings() -> None:
    good, bad = ClientHealth(), ClientHealth()
    good.processes["local"] = process(0.0004, 0.2)
    bad.processes["local"] = process(LAG_LIMIT_S * 3, 1.0)
    good_text = render_client_health(ClientHealthReport.of(good))
    bad_text = render_client_health(ClientHealthReport.of(bad))
    assert "timings trustworthy" in good_text and "WARNING" not in good_text
    assert "TIMINGS NOT TRUSTWORTHY" in bad_text
    assert bad_text.count("WARNING") == 2


def test_the_probe_measures_lag_when_the_loop_is_blocked(caplog: pytest.LogCaptureFixture) -> None:
    """A greenlet that hogs the loop shows up as lag, and the live check warns about it."""
    target = ProcessHealth()
    probe = HealthProbe(lambda: target, name="test")
    checks = []
    original = probe._judge

    def judge(stretch: ProcessHealth, now: float) -> None:
        checks.append(stretch.loop_lag.max)
        original(stretch, now)

    probe._judge = judge  # type: ignore[method-assign]

    def hog() -> None:
        import time as real_time  # the unpatched sleep would block; spin instead

        end = real_time.perf_counter() + 0.03
        while real_time.perf_counter() < end:
            pass

    old = health_probe.CHECK_EVERY_S
    health_probe.CHECK_EVERY_S = 0.2
    try:
        with caplog.at_level(logging.WARNING, logger="sagellm_users"):
            probe.start()
            for _ in range(12):
                gevent.sleep(0.025)
                hog()
            probe.stop()
    finally:
        health_probe.CHECK_EVERY_S = old
    assert not probe.running
    assert target.loop_lag.count > 5
    lag_max = target.loop_lag.max
    assert lag_max is not None and lag_max > LAG_LIMIT_S
    assert checks, "the live check never ran"
    warnings = [r.getMessage() for r in caplog.records]
    assert any("the load generator is behind on worker test" in m for m in warnings), warnings


def test_the_probe_samples_only_while_the_window_measures() -> None:
    """Spawning thousands of users during a warm-up stalls the loop; the report leaves
    that stretch out of the numbers, and so of the verdict on the client."""
    target = ProcessHealth()
    open_window = False
    probe = HealthProbe(lambda: target, name="test", measuring=lambda: open_window)
    probe.start()
    try:
        gevent.sleep(0.1)  # five probe intervals with the window closed
        assert target.loop_lag.count == 0
        assert target.cpu_s == 0
        open_window = True
        with gevent.Timeout(10, False):
            while target.loop_lag.count < 3:
                gevent.sleep(0.02)
        assert target.loop_lag.count >= 3
    finally:
        probe.stop()
