"""The timeline: buckets by each request's end, closed into points, merged across workers.

Output tokens by arrival: see test_timeline_arrival.py.
"""

from __future__ import annotations

import random

import pytest

from sagellm_users._metrics import RequestRecord
from sagellm_users._metrics.distribution import Distribution
from sagellm_users._metrics.timeline import REPORTER_TIMEOUT_S, SETTLE_S, Bucket, Timeline
from tests.records import START, T0, Clock, make_record, steady_record


def ended_at(wall: float, record: RequestRecord | None = None) -> RequestRecord:
    """A record whose wall-clock end is ``wall``."""
    record = record or steady_record(n=5, ttft=0.05, gap=0.01)
    assert record.t_done is not None
    record.wall_start = wall - (record.t_done - T0)
    assert record.wall_done == pytest.approx(wall)
    return record


def ms(seconds: float | None) -> float:
    assert seconds is not None
    return seconds * 1e3


def test_a_point_holds_the_requests_that_ended_in_its_second() -> None:
    timeline = Timeline(clock=Clock())
    for i in range(10):
        timeline.add(ended_at(START + 0.05 + i * 0.09, steady_record(n=5, ttft=0.01 * (i + 1))))
    timeline.add(ended_at(START + 1.2))
    timeline.add(ended_at(START + 0.5, make_record(status="error", error_class="HTTPError 500")))
    timeline.add(ended_at(START + 0.6, make_record(status="cancelled")))
    timeline.close(START + 1.0)

    assert len(timeline.points) == 1
    point = timeline.points[0]
    assert point["t"] == START
    assert (point["requests"], point["completed"], point["failed"]) == (11, 10, 1)
    assert point["errors"] == {"HTTPError 500": 1}
    assert point["output_tokens"] == 50 and point["output_tok_s"] == 50.0
    assert point["completed_output_tokens"] == 50, "every step arrived in the same second"
    assert point["req_s"] == 10.0
    ttfts = Distribution(0.01 * (i + 1) for i in range(10))
    assert point["ttft_p50_ms"] == pytest.approx(ms(ttfts.percentile(50)))
    assert point["ttft_p99_ms"] == pytest.approx(ms(ttfts.percentile(99)))
    assert point["itl_p50_ms"] == pytest.approx(10.0)
    assert point["users"] is None and point["in_flight"] is None
    assert [p["completed"] for p in timeline.open_points()] == [1], "the next second is open"


def test_a_closed_bucket_takes_no_more_requests_and_counts_them_late() -> None:
    timeline = Timeline(clock=Clock())
    timeline.add(ended_at(START + 0.5))
    timeline.close(START + 2.0)
    timeline.add(ended_at(START + 0.7))
    timeline.add(ended_at(START + 1.5))
    timeline.add(ended_at(START + 2.5))
    assert timeline.late == 2
    assert [p["completed"] for p in timeline.points] == [1]
    assert [p["completed"] for p in timeline.open_points()] == [1]


def test_a_second_with_gauges_but_no_completions_is_a_point() -> None:
    timeline = Timeline(clock=Clock())
    timeline.sample(START + 0.2, users=4, in_flight=3)
    timeline.sample(START + 0.9, users=8, in_flight=8)
    timeline.sample(START + 1.1, users=8, in_flight=7)
    timeline.add(ended_at(START + 1.5))
    timeline.close(START + 2.0)
    first, second = timeline.points
    assert (first["users"], first["in_flight"], first["completed"]) == (8, 8, 0)
    assert first["ttft_p50_ms"] is None and first["req_s"] == 0.0
    assert (second["users"], second["in_flight"], second["completed"]) == (8, 7, 1)
    assert [p["t"] for p in timeline.points] == [START, START + 1]


def test_the_client_lag_is_in_its_second() -> None:
    timeline = Timeline(clock=Clock())
    for lag in (0.001, 0.002, 0.050):
        timeline.add_lag(START + 0.3, lag)
    timeline.close(START + 1.0)
    assert timeline.points[0]["lag_p99_ms"] == pytest.approx(
        ms(Distribution([0.001, 0.002, 0.05]).percentile(99))
    )


def test_workers_buckets_merge_into_what_one_process_would_see() -> None:
    rng = random.Random(7)
    clock = Clock(START + 10)
    master, single = Timeline(clock=clock), Timeline(clock=clock)
    workers = [Timeline(clock=clock) for _ in range(3)]
    total_tokens = 0
    for i in range(600):
        record = steady_record(n=rng.randint(2, 20), ttft=rng.uniform(0.01, 0.2), request_id=i)
        ended_at(START + rng.uniform(0, 5), record)
        total_tokens += record.output_tokens
        workers[i % 3].add(record)
        single.add(record)
    for name, worker in zip("abc", workers, strict=True):
        wire = worker.drain(in_flight=2)
        assert worker.drain()["buckets"] == [], "a drain empties the worker"
        master.merge_wire(name, wire)
    master.close(START + 5)
    single.close(START + 5)

    seconds = [p["t"] - START for p in master.points]
    assert seconds == [-1, 0, 1, 2, 3, 4], "the first tokens arrived in the second before"
    for merged, alone in zip(master.points, single.points, strict=True):
        assert merged["completed"] == alone["completed"]
        assert merged["output_tokens"] == alone["output_tokens"]
        assert merged["completed_output_tokens"] == alone["completed_output_tokens"]
        if merged["t"] < START:
            assert merged["completed"] == 0 and merged["output_tokens"] > 0
            continue
        assert merged["completed"] > 0
        for key in ("ttft_p50_ms", "ttft_p99_ms", "itl_p99_ms", "e2el_p50_ms", "tpot_p90_ms"):
            assert merged[key] == pytest.approx(alone[key], rel=0.01), key
    assert sum(p["output_tokens"] for p in master.points) == total_tokens
    assert master.reported_in_flight() == 6


def test_a_master_closes_a_bucket_once_every_worker_reported_past_it() -> None:
    clock = Clock(START + 20)
    master = Timeline(clock=clock)
    master.merge_wire("fast", {"now": START + 19.5, "buckets": []})
    master.merge_wire("slow", {"now": START + 14.0, "buckets": []})
    assert master.complete_until() == START + 14.0 - SETTLE_S, "waits for the slowest"

    clock.now += REPORTER_TIMEOUT_S + 1  # "slow" went silent: it no longer holds buckets
    master.merge_wire("fast", {"now": clock.now - 0.5, "buckets": []})
    assert master.complete_until() == clock.now - 0.5 - SETTLE_S
    assert master.reported_in_flight() == 0


def test_with_no_workers_a_bucket_closes_a_settle_time_after_its_end() -> None:
    clock = Clock(START + 3.5)
    timeline = Timeline(clock=clock)
    timeline.add(ended_at(START + 1.9))
    timeline.add(ended_at(START + 2.1))
    timeline.close_due()  # complete until 2.5: the second [2, 3) is still open
    assert [p["t"] for p in timeline.points] == [START + 1]
    assert [p["t"] for p in timeline.open_points()] == [START + 2]


def test_past_max_points_the_width_doubles_and_counts_stay_exact() -> None:
    timeline = Timeline(max_points=4, clock=Clock())
    completed = 0
    for second in range(12):
        for i in range(second + 1):
            timeline.add(ended_at(START + second + 0.1 + i * 0.01, steady_record(n=3)))
            completed += 1
        timeline.sample(START + second + 0.5, users=second, in_flight=second)
        timeline.close(START + second + 1)
    assert timeline.width == 4.0
    assert len(timeline.points) <= 4
    assert [p["t"] for p in timeline.points] == [START, START + 4, START + 8]
    assert sum(p["completed"] for p in timeline.points) == completed
    first = timeline.points[0]
    assert first["completed"] == 1 + 2 + 3 + 4 and first["req_s"] == 10 / 4
    assert first["users"] == 3, "gauges are the last sample of the merged span"
    assert first["ttft_p50_ms"] == pytest.approx(50.0)


def test_points_after_a_time_are_found_by_start() -> None:
    timeline = Timeline(clock=Clock())
    for second in range(5):
        timeline.add(ended_at(START + second + 0.5))
    timeline.close(START + 5)
    assert [p["t"] for p in timeline.after(START + 2)] == [START + 3, START + 4]
    assert len(timeline.after(0)) == 5 and timeline.after(START + 10) == []


def test_a_bucket_crosses_the_wire_whole() -> None:
    bucket = Bucket()
    bucket.add(steady_record(n=8))
    bucket.add(make_record(status="error", error_class="ReadTimeout"))
    bucket.lag.add(0.004)
    again = Bucket.from_wire(bucket.to_wire())
    assert again.point(START, 1.0, (3, 2)) == bucket.point(START, 1.0, (3, 2))


def test_a_worker_yet_to_report_holds_what_ends_after_it_was_seen() -> None:
    clock = Clock(START + 5)
    master = Timeline(clock=clock)
    master.expect("w1")
    clock.now += 2.5  # its first report comes with Locust's report interval
    assert master.complete_until() == START + 5 - SETTLE_S
    master.merge_wire("w1", {"now": START + 7.4, "buckets": []})
    master.expect("w1")  # known: nothing changes
    assert master.complete_until() == START + 7.4 - SETTLE_S


def test_live_open_points_on_a_master_leave_unreported_seconds_unknown_not_zero() -> None:
    """A master samples its gauges each second, but its workers' requests and tokens come
    with their reports, seconds later: until every worker has reported into a second, the
    live page gets no request figures for it (None), not a throughput of 0 that would draw
    the chart falling to nothing at each poll, or flat at zero before the first report."""
    clock = Clock(START)
    master = Timeline(clock=clock)
    master.expect("a")  # they joined; the test starts
    master.expect("b")
    for second in range(5):
        master.sample(START + second + 0.5, users=4, in_flight=4)
    clock.now = START + 5
    before = master.open_points(live=True)
    assert [(p["t"] - START, p["users"]) for p in before] == [(s, 4) for s in range(5)]
    assert all(p["output_tok_s"] is None and p["req_s"] is None for p in before)
    assert all(p["failed"] is None and p["errors"] is None for p in before)

    for name, reported_until in (("a", 4.5), ("b", 2.5)):
        worker = Timeline(clock=clock)
        for second in range(int(reported_until)):
            worker.add(ended_at(START + second + 0.6))
        master.merge_wire(name, {**worker.drain(), "now": START + reported_until})
    live = {p["t"] - START: p for p in master.open_points(live=True)}
    assert [live[s]["completed"] for s in (0, 1)] == [2, 2], "both workers reported them"
    assert live[2]["completed"] == 1, "b reported to 2.5: the second it is in, as it goes"
    for second in (3, 4):  # b has not reported into them: a's one request is not all
        assert live[second]["users"] == 4
        assert live[second]["output_tok_s"] is live[second]["req_s"] is None
        assert live[second]["completed"] is live[second]["ttft_p50_ms"] is None
    whole = {p["t"] - START: p for p in master.open_points()}
    assert (whole[3]["completed"], whole[4]["completed"]) == (1, 0), "the report takes all"
