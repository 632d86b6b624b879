"""Open-loop arrivals: gap statistics, the schedule's pacing and plans, and lag accounting."""

from __future__ import annotations

import itertools
import random
import statistics

import gevent
import pytest

from sagellm_users._metrics.arrivals import LATE_SECONDS, ArrivalStats
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._workloads.arrivals import ArrivalPlan, ArrivalSchedule, gap_sampler
from tests.records import T0, make_record

N = 40_000


def _gaps(kind: str, rate: float, burstiness: float = 1.0, seed: int = 1) -> list[float]:
    sample = gap_sampler(kind, rate, burstiness, random.Random(seed))  # type: ignore[arg-type]
    return [sample() for _ in range(N)]


def test_constant_gaps_are_exact() -> None:
    assert set(_gaps("constant", 8.0)) == {0.125}


@pytest.mark.parametrize("rate", [2.0, 50.0])
def test_poisson_gaps_are_exponential(rate: float) -> None:
    gaps = _gaps("poisson", rate)
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / rate, rel=0.02)  # ~4 standard errors at N=40,000
    assert statistics.pstdev(gaps) / mean == pytest.approx(1.0, abs=0.03)  # CV of 1
    median = statistics.median(gaps)
    assert median == pytest.approx(0.6931 / rate, rel=0.03)  # ln 2 / rate


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_gamma_gaps_keep_the_rate_and_set_the_burstiness(burstiness: float) -> None:
    gaps = _gaps("gamma", 10.0, burstiness)
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(0.1, rel=0.03)
    cv = statistics.pstdev(gaps) / mean
    assert cv == pytest.approx(1 / burstiness**0.5, rel=0.05)


def test_gamma_of_shape_one_is_poisson_and_the_seed_reproduces() -> None:
    assert _gaps("gamma", 5.0, 1.0, seed=3)[:5] != _gaps("gamma", 5.0, 1.0, seed=4)[:5]
    assert _gaps("poisson", 5.0, seed=3)[:100] == _gaps("poisson", 5.0, seed=3)[:100]
    cv = statistics.pstdev(_gaps("gamma", 5.0, 1.0)) / statistics.fmean(_gaps("gamma", 5.0))
    assert cv == pytest.approx(1.0, abs=0.03)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        gap_sampler("poisson", 0.0, 1.0, random.Random())
    with pytest.raises(ValueError, match="burstiness"):
        gap_sampler("gamma", 1.0, 0.0, random.Random())


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_schedule_keeps_its_pace_when_claims_come_late() -> None:
    clock = FakeClock()
    schedule = ArrivalSchedule("constant", 1.0, seed="s", clock=clock)
    schedule.set_plan(ArrivalPlan(rate=4.0))
    assert [schedule.claim() for _ in range(3)] == [100.0, 100.25, 100.5]
    clock.now = 110.0  # every user was busy for ten seconds
    assert schedule.claim() == 100.75, "a late claim gets the time it was due, not 'now'"


def test_a_new_plan_restarts_the_schedule_at_its_rate() -> None:
    clock = FakeClock()
    schedule = ArrivalSchedule("constant", 1.0, seed="s", clock=clock)
    schedule.set_plan(ArrivalPlan(rate=1.0))
    schedule.claim()
    clock.now = 105.0
    schedule.set_plan(ArrivalPlan(rate=10.0))
    assert schedule.claim() == 105.0
    assert schedule.claim() == pytest.approx(105.1)


def test_workers_share_the_rate_and_interleave_constant_arrivals() -> None:
    clock = FakeClock()
    times: list[float] = []
    for rank in range(4):
        schedule = ArrivalSchedule("constant", 1.0, seed=f"w{rank}", clock=clock)
        plan = ArrivalPlan(rate=40.0, workers=4, rank=rank)
        assert plan.share == 10.0
        schedule.set_plan(plan)
        times += [schedule.claim() for _ in range(10)]
    times.sort()
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(times)}
    assert gaps == {0.025}, "four workers at 10/s each make one stream at 40/s"


def test_claim_waits_for_a_plan_without_polling() -> None:
    schedule = ArrivalSchedule("poisson", 1.0, seed="s")
    claimer = gevent.spawn(schedule.claim)
    gevent.sleep(0)
    assert not claimer.ready(), "a worker sends nothing before the master's plan"
    schedule.set_plan(ArrivalPlan(rate=5.0))
    assert isinstance(claimer.get(timeout=5), float)


def _record(intended: float | None, start: float) -> RequestRecord:
    record = make_record([T0 + 0.01])
    record.wall_start, record.intended_wall = start, intended
    return record


def test_arrival_stats_measure_rates_and_lag_and_merge() -> None:
    a, b = ArrivalStats(), ArrivalStats()
    for i in range(10):  # intended every 0.1 s; the odd ones start 20 ms late
        lag = 0.02 if i % 2 else 0.0
        (a if i < 5 else b).add(_record(1000 + i * 0.1, 1000 + i * 0.1 + lag))
    a.add(_record(None, 5000.0))  # closed-loop requests are not counted
    merged = ArrivalStats.from_wire(a.to_wire())
    merged.merge(ArrivalStats.from_wire(b.to_wire()))
    assert merged.requests == 10
    assert merged.late == 5 and LATE_SECONDS < 0.02
    assert merged.intended_rate == pytest.approx(10.0)
    assert merged.achieved_rate == pytest.approx(9 / 0.92)
    assert merged.lag.max == pytest.approx(0.02)
    assert merged.lag.percentile(50) == pytest.approx(0.01)
    assert ArrivalStats().achieved_rate is None


def test_constant_grid_is_shared_by_workers_whenever_the_plan_arrives() -> None:
    clock = FakeClock()
    wall = [5000.0]
    slots: list[set[int]] = []
    for rank, arrives_after in enumerate((0.013, 0.4)):  # the plan reaches them apart
        wall[0] = 5000.0 + arrives_after
        clock.now = 100.0 + arrives_after
        schedule = ArrivalSchedule("constant", 1.0, seed="s", clock=clock, wall=lambda: wall[0])
        schedule.set_plan(ArrivalPlan(rate=20.0, workers=2, rank=rank, start_wall=5000.0))
        times = [schedule.claim() - 100.0 for _ in range(5)]  # seconds after start_wall
        assert times[0] >= arrives_after, "nothing is scheduled before the plan arrived"
        slots.append({round(t / 0.05) for t in times})
        assert all(abs(t / 0.05 - round(t / 0.05)) < 1e-6 for t in times), "on the grid"
    assert all(k % 2 == 0 for k in slots[0]) and all(k % 2 == 1 for k in slots[1])
    assert max(slots[0]) - min(slots[0]) == 8, "each worker every 0.1 s: together 20/s"
