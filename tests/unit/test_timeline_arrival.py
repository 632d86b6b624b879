"""Output tokens over time: each decode step counts in the second it arrived.

A request is watched while it streams; every close (the timeline's tick), drain (a
worker's report) and read of the open points counts the steps that arrived since the last
one, and the request's end reconciles the steps with its usage.
"""

from __future__ import annotations

from sagellm_users._metrics import RequestRecord
from sagellm_users._metrics.timeline import SETTLE_S, Timeline
from tests.records import START, T0, Clock, make_record


def started(status: str = "ok") -> RequestRecord:
    """A request sent at START (wall) = T0 (perf), nothing arrived yet."""
    record = make_record([], t_send=T0 + 0.001, status=status)
    record.wall_start, record.t_done = START, None
    return record


def arrive(record: RequestRecord, second: int, steps: int) -> None:
    """``steps`` decode steps arriving spread over wall second ``START + second``."""
    base = record.t_start + second
    record.t_out.extend(base + 0.05 + 0.9 * k / steps for k in range(steps))


def end(record: RequestRecord, usage: int | None) -> RequestRecord:
    record.t_done = record.t_out[-1] + 0.001 if record.t_out else record.t_start + 0.01
    record.usage_completion_tokens = usage
    return record


def stream(timeline: Timeline, clock: Clock, record: RequestRecord, seconds: list[int]) -> None:
    """The request streams ``seconds[i]`` steps in second i; the timeline ticks after each
    second (it closes what ended a settle time ago)."""
    timeline.watch(record)
    for second, steps in enumerate(seconds):
        arrive(record, second, steps)
        clock.now = START + second + 1.0
        timeline.close_due()


def tokens(timeline: Timeline, key: str = "output_tokens") -> list[int]:
    return [p[key] for p in [*timeline.points, *timeline.open_points()]]


def test_each_step_counts_in_the_second_it_arrived_while_the_request_streams() -> None:
    clock = Clock()
    timeline = Timeline(clock=clock)
    record = started()
    timeline.watch(record)
    for second, steps in enumerate((10, 7, 12)):
        arrive(record, second, steps)
        clock.now = START + second + 1.0
        timeline.close_due()
        live = timeline.open_points()[-1]
        assert (live["t"], live["output_tokens"]) == (START + second, steps), "live already"
    assert [p["output_tokens"] for p in timeline.points] == [10, 7], "closed while streaming"

    timeline.add(end(record, usage=30))  # one token more than the 29 steps
    clock.now = START + 3.0 + SETTLE_S
    timeline.close_due()
    assert [p["t"] for p in timeline.points] == [START, START + 1, START + 2]
    assert tokens(timeline) == [10, 7, 13], "usage's extra token in the last step's second"
    assert [p["output_tok_s"] for p in timeline.points] == [10.0, 7.0, 13.0]
    assert tokens(timeline, "completed_output_tokens") == [0, 0, 30], "by the request's end"
    assert sum(tokens(timeline)) == record.output_tokens == 30
    assert timeline.late == timeline.late_tokens == 0


def test_usage_above_the_steps_lands_in_the_last_steps_second() -> None:
    clock = Clock()
    timeline = Timeline(clock=clock)
    record = started()
    stream(timeline, clock, record, [10, 10, 10])
    timeline.add(end(record, usage=60))  # two tokens per step (speculative decoding)
    timeline.close(START + 10)
    assert tokens(timeline) == [10, 10, 40]
    assert sum(tokens(timeline)) == 60


def test_usage_below_the_steps_comes_off_the_last_second_never_below_its_steps() -> None:
    clock = Clock()
    timeline = Timeline(clock=clock)
    fewer = started()
    stream(timeline, clock, fewer, [10, 10, 3])
    timeline.add(end(fewer, usage=21))  # two steps carried no token (e.g. finish_reason)
    timeline.close(START + 10)
    assert tokens(timeline) == [10, 10, 1]

    clock, timeline = Clock(), Timeline(clock=Clock())
    far_fewer = started()
    stream(timeline, clock, far_fewer, [10, 10, 3])
    timeline.add(end(far_fewer, usage=5))
    timeline.close(START + 10)
    assert tokens(timeline)[:2] == [10, 10], "closed seconds keep their steps"
    assert tokens(timeline)[2] == 0, "the last second gives up its own steps at most"


def test_a_non_streamed_reply_counts_all_at_once_and_no_reply_counts_nothing() -> None:
    timeline = Timeline(clock=Clock())
    whole = started()
    arrive(whole, 1, 1)  # the whole reply is one step
    timeline.add(end(whole, usage=64))
    timeline.add(end(started(status="error"), usage=None))
    timeline.close(START + 10)
    assert tokens(timeline) == [0, 64]


def test_failed_and_cancelled_requests_tokens_arrived_but_did_not_complete() -> None:
    clock = Clock()
    timeline = Timeline(clock=clock)
    failed, cancelled = started(status="error"), started(status="cancelled")
    for record, steps in ((failed, 5), (cancelled, 4)):
        timeline.watch(record)
        arrive(record, 0, steps)
    clock.now = START + 1.0
    timeline.close_due()
    timeline.add(end(failed, usage=None))
    timeline.add(end(cancelled, usage=None))
    timeline.close(START + 10)
    (point,) = timeline.points
    assert point["output_tokens"] == 9, "every token that arrived"
    assert point["completed_output_tokens"] == 0
    assert (point["requests"], point["failed"], point["completed"]) == (1, 1, 0)


def test_steps_for_a_closed_second_are_counted_late() -> None:
    timeline = Timeline(clock=Clock())
    unwatched = started()
    for second in range(3):
        arrive(unwatched, second, 10)
    timeline.close(START + 2.0)  # nobody scanned it: its first two seconds closed empty
    timeline.add(end(unwatched, usage=31))
    assert timeline.late_tokens == 20 and timeline.late == 0, "the request itself is in time"
    assert tokens(timeline) == [11]


def test_a_reset_forgets_the_steps_that_arrived_before_it() -> None:
    clock = Clock()
    timeline = Timeline(clock=clock)
    record = started()
    stream(timeline, clock, record, [10])
    timeline.reset()
    arrive(record, 1, 6)
    timeline.add(end(record, usage=16))
    timeline.close(START + 10)
    assert [p["t"] for p in timeline.points] == [START + 1]
    assert tokens(timeline) == [6]


def test_coarsening_keeps_the_arrived_and_completed_sums() -> None:
    clock = Clock()
    timeline = Timeline(max_points=4, clock=clock)
    records = [started() for _ in range(4)]
    for record in records:
        timeline.watch(record)
    for second in range(12):
        for i, record in enumerate(records):
            if second // 3 == i:  # one request per three seconds, 5 + i steps a second
                arrive(record, second, 5 + i)
        if second % 3 == 2:
            timeline.add(end(records[second // 3], usage=3 * (5 + second // 3) + 1))
        clock.now = START + second + 1.0
        timeline.close_due()
    timeline.close(START + 20)
    assert timeline.width == 4.0
    total = sum(r.output_tokens for r in records)
    assert sum(tokens(timeline)) == sum(tokens(timeline, "completed_output_tokens")) == total
    assert all(p["output_tok_s"] == p["output_tokens"] / 4 for p in timeline.points)
    assert all(
        p["total_tok_s"] == (p["input_tokens"] + p["output_tokens"]) / 4 for p in timeline.points
    )


def test_workers_ship_arrival_buckets_the_master_merges_by_second() -> None:
    clock = Clock()
    master, single = Timeline(clock=clock), Timeline(clock=clock)
    workers = {"a": Timeline(clock=clock), "b": Timeline(clock=clock)}
    plans = {"a": [8, 8, 8, 8], "b": [3, 0, 5, 9]}
    records = {name: started() for name in workers}
    for name, worker in workers.items():
        worker.watch(records[name])
    single_records = {name: started() for name in workers}
    for record in single_records.values():
        single.watch(record)
    for second in range(4):
        for name, worker in workers.items():
            arrive(records[name], second, plans[name][second])
            arrive(single_records[name], second, plans[name][second])
            clock.now = START + second + 0.99
            if second == 3:
                worker.add(end(records[name], usage=sum(plans[name]) + 2))
                single.add(end(single_records[name], usage=sum(plans[name]) + 2))
            master.merge_wire(name, worker.drain(in_flight=1))  # its report: scans first
        clock.now = START + second + 1.0
        master.close_due()
        single.close_due()
    clock.now = START + 10
    for name, worker in workers.items():
        master.merge_wire(name, worker.drain())
    master.close_due()
    single.close_due()
    assert tokens(master) == [11, 8, 13, 21] == tokens(single)
    assert master.late_tokens == 0 and master.late == 0
