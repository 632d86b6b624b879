"""A master gathers worker reports into one batch and folds it into the run's, live and
stage numbers at most a second later and whenever they are read: the numbers must be what
merging each report into each of them gives, and each report must land where it did."""

from __future__ import annotations

import random

from locust.env import Environment
from locust.event import Events

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics.batch import ReportBatch
from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.live import RecentMetrics
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._users.options import LLMOptions
from sagellm_users._users.runtime import LLMRuntime


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _report(seed: int, requests: int = 40) -> dict[str, object]:
    """One worker's drained statistics: requests with a few hundred gaps each."""
    rng = random.Random(seed)
    worker = MetricsCollector()
    for i in range(requests):
        send = rng.uniform(0, 3)
        t_out = [send + rng.uniform(0.02, 0.2)]
        for _ in range(rng.randint(20, 300)):
            t_out.append(t_out[-1] + rng.expovariate(1 / 0.015))
        record = RequestRecord(
            request_id=i, user="U", backend="openai", api="chat", name="/v1/chat/completions",
            model="m", stream=True, wall_start=1.7e9 + send, t_start=send, t_send=send,
            t_out=t_out, t_done=t_out[-1], usage_completion_tokens=len(t_out),
        )  # fmt: skip
        worker.add(record)
    return worker.drain()


def _master(clock: FakeClock, *, live: bool = True) -> LLMRuntime:
    environment = Environment(user_classes=[OpenAIChatUser], events=Events())
    runtime = LLMRuntime(environment, LLMOptions())
    runtime.live = live
    runtime._batch = ReportBatch(clock=clock)
    runtime._recent = RecentMetrics(clock=clock)
    return runtime


def _pending(master: LLMRuntime) -> bool:
    return master._batch.pending


def _due(master: LLMRuntime) -> bool:
    return master._batch.due


def _readings(collector: MetricsCollector) -> list[object]:
    total = collector.total()
    return [
        total.requests,
        total.total_output_tokens,
        *(total.itl.percentile(p) for p in (1, 50, 99, 99.9)),
        *(total.e2e.percentile(p) for p in (50, 99)),
    ]


def test_gathered_reports_read_as_if_each_was_merged() -> None:
    reports = [_report(seed) for seed in range(12)]
    direct = MetricsCollector()
    for report in reports:
        direct.merge_wire(report)
    master = _master(FakeClock())
    for report in reports:
        master.gather(report)
    assert _pending(master), "nothing is folded before it is due or read"
    assert _readings(master.collector) == _readings(direct)
    assert not _pending(master), "reading the run's numbers settles the batch"
    merged, _span = master.recent.last(10)
    assert _readings(merged) == _readings(direct)


def test_a_batch_is_due_after_a_second_and_settles_before_the_next_report() -> None:
    clock = FakeClock()
    master = _master(clock)
    master.gather(_report(1))
    clock.now += 0.5
    master.gather(_report(2))
    assert not _due(master)
    clock.now += 0.6
    assert _due(master)
    master.gather(_report(3))  # the first two fold in now, into the slice of now
    assert master._collector.total().requests == 80
    clock.now += 30
    last_10_s, _span = master.recent.last(10)
    assert last_10_s.total().requests == 40, "only the last report is recent"
    assert master.collector.total().requests == 120


def test_what_arrived_before_a_stage_ends_belongs_to_that_stage() -> None:
    master = _master(FakeClock())
    first, second = MetricsCollector(), MetricsCollector()
    master.stage = first
    master.gather(_report(1))
    master.stage = second
    master.gather(_report(2, requests=10))
    assert master.stage is second and second.total().requests == 10
    assert first.total().requests == 40
    assert master.collector.total().requests == 50


def test_a_master_without_a_web_ui_keeps_no_live_view() -> None:
    master = _master(FakeClock(), live=False)
    master.gather(_report(1))
    assert master.collector.total().requests == 40
    merged, span = master.recent.last(60)
    assert merged.total().requests == 0 and span == 0.0
