"""The last-N-seconds view: one-second slices that merge and expire."""

from __future__ import annotations

from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.live import RecentMetrics
from sagellm_users._metrics.record import RequestRecord


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=i, user="U", backend="openai", api="chat", name="/v1/chat/completions",
        model="m", stream=True, wall_start=1000.0 + i, t_start=5.0, t_send=5.0,
        t_out=[5.05, 5.06], t_done=5.06, usage_completion_tokens=2,
    )  # fmt: skip


def test_last_seconds_merge_recent_slices_only() -> None:
    clock = FakeClock()
    recent = RecentMetrics(keep=30, clock=clock)
    for i in range(20):  # one request per second for 20 s
        recent.add(record(i))
        clock.now += 1.0
    merged, span = recent.last(10)
    assert merged.total().succeeded == 10
    assert 9.0 <= span <= 10.0
    everything, _ = recent.last(60)
    assert everything.total().succeeded == 20


def test_old_slices_expire_and_reset_clears() -> None:
    clock = FakeClock()
    recent = RecentMetrics(keep=5, clock=clock)
    for i in range(12):
        recent.add(record(i))
        clock.now += 1.0
    merged, _ = recent.last(60)
    assert merged.total().succeeded <= 6, "memory is bounded by the horizon"
    recent.reset()
    cleared, span = recent.last(60)
    assert cleared.total().requests == 0 and span == 0.0


def test_worker_deltas_land_in_the_current_slice() -> None:
    clock = FakeClock()
    recent = RecentMetrics(clock=clock)
    worker = MetricsCollector()
    worker.add(record(1))
    worker.add(record(2))
    recent.merge_wire(worker.drain())
    merged, span = recent.last(10)
    assert merged.total().succeeded == 2 and span >= 1.0
