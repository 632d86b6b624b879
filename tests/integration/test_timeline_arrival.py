"""Output tok/s over time by arrival: closed-loop users whose requests last seconds.

Users started together finish together; counted at each request's end their tokens
would draw a square wave (0 tok/s in the seconds between the ends). Counted where each
decode step arrived, every second in which requests stream carries tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics import RequestRecord
from sagellm_users._users import runtime_of
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun, capture_submitted, start_cluster, wait_until

TOKENS = 24
TBT_MS = 100.0
"""A request streams TOKENS steps TBT_MS apart: about 2.4 s."""


@pytest.fixture(scope="module")
def slow_mock() -> Iterator[str]:
    with MockServerProcess(["--ttft-ms", "50", "--tbt-ms", str(TBT_MS)]) as mock:
        assert mock.url is not None
        yield mock.url


def _args(url: str) -> list[str]:
    return ["--host", url, "--max-tokens", str(TOKENS), "--ignore-eos"]


def _wall(record: RequestRecord, t: float) -> float:
    return record.wall_start + (t - record.t_start)


def _check_arrivals(points: list[dict[str, Any]], records: list[RequestRecord]) -> None:
    """Every full second between the first step and the last successful request's last
    step carries tokens (no square wave), and the points hold every token that arrived."""
    ok = [r for r in records if r.ok]
    assert ok and all(r.output_tokens == TOKENS == len(r.t_out) for r in ok)
    first = min(_wall(r, r.t_out[0]) for r in records if r.t_out)
    last = max(_wall(r, r.t_out[-1]) for r in ok)
    full = range(math.ceil(first), math.floor(last))
    assert len(full) >= 3, "requests streamed over several seconds"
    by_second = {int(p["t"]): p["output_tokens"] for p in points}
    flow = [by_second.get(second, 0) for second in full]
    assert min(flow) > 0, f"a second without tokens while requests streamed: {flow}"
    assert min(flow) >= max(flow) / 4, f"tokens flow steadily, not in waves: {flow}"
    ends = {int(r.wall_done) for r in ok}
    assert len(ends) < len(full), "the requests ended in fewer seconds than tokens flowed"
    arrived = sum(r.output_tokens for r in records)
    assert sum(p["output_tokens"] for p in points) == arrived


def test_output_tokens_count_in_the_second_they_arrived(slow_mock: str) -> None:
    run = LocalRun([OpenAIChatUser], _args(slow_mock))
    records = run.run_until(requests=12, users=4, timeout=30)
    report = run.runtime.final_report  # the JSON report's (and the HTML report's) timeline
    assert report is not None and report.timeline is not None
    timeline = report.timeline
    assert timeline.late_requests == timeline.late_tokens == 0
    assert timeline.output_by_arrival
    points = [p.model_dump() for p in timeline.points]
    _check_arrivals(points, records)
    stopped = sum(r.output_tokens for r in records if not r.ok)
    total = report.total.total_output_tokens
    assert sum(p["output_tokens"] for p in points) == total + stopped, "and the stopped ones"
    assert sum(p["completed_output_tokens"] for p in points) == total


def test_workers_ship_each_token_in_the_second_it_arrived(
    slow_mock: str, fast_reports: None
) -> None:
    master_env, master, workers = start_cluster(_args(slow_mock), workers=2)
    seen = [capture_submitted(worker.environment) for worker in workers]
    master.start(4, spawn_rate=4)
    assert wait_until(lambda: sum(len(s) for s in seen) >= 12, timeout=30)
    master.quit()  # workers stop, send their final reports, the master merges them
    for worker in workers:
        worker.quit()
    timeline = runtime_of(master_env).timeline
    assert timeline.late == 0 and timeline.late_tokens == 0
    points = [*timeline.points, *timeline.open_points()]
    _check_arrivals(points, [r for s in seen for r in s])
