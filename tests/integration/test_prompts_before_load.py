"""Synthetic prompts are built before the measured window: the server under test answers
no ``/tokenize`` request once the users send, on one process and on several.

Each test starts its own mock, whose ``/metrics`` counts the ``/tokenize`` requests it
answered, so the counts are this test's alone."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from sagellm_users import GenerationRequest, OpenAICompletionsUser
from sagellm_users._report.workload import render_workload, render_workload_parts
from sagellm_users._users import runtime_of
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun, start_cluster, wait_until
from tests.mock_http import call

START_CALLS_BOUND = 16
"""The most /tokenize calls one process may make at the start, whatever the run's length."""

_TOKENIZE = re.compile(r"^sagellm_mock:tokenize_requests_total\{.*\} ([0-9.e+]+)$", re.M)


def tokenize_requests(url: str) -> int:
    """The /tokenize requests the mock has answered so far."""
    found = _TOKENIZE.search(call(url, "GET", "/metrics")[2].decode())
    return 0 if found is None else int(float(found.group(1)))


@pytest.fixture
def own_mock() -> Iterator[str]:
    with MockServerProcess(["--ttft-ms", "5", "--tbt-ms", "1"]) as mock:
        assert mock.url is not None
        yield mock.url


class FirstRequestWatch(OpenAICompletionsUser):
    """Reads the mock's /tokenize count just before the run's first generation request."""

    url = ""
    at_first_request: int | None = None

    @classmethod
    def watch(cls, url: str) -> None:
        cls.url, cls.at_first_request = url, None

    def build_request(self) -> GenerationRequest:
        cls = type(self)
        if cls.at_first_request is None:
            cls.at_first_request = -1  # taken: other users do not read it again
            cls.at_first_request = tokenize_requests(cls.url)
        return super().build_request()


def test_no_tokenize_call_reaches_the_server_during_the_window(own_mock: str) -> None:
    FirstRequestWatch.watch(own_mock)
    args = ["--host", own_mock, "--input-tokens", "16:64", "--max-tokens", "2", "--seed", "3"]
    run = LocalRun([FirstRequestWatch], args)
    records = run.run_until(40, users=4)
    before = FirstRequestWatch.at_first_request
    after = tokenize_requests(own_mock)
    assert before is not None and before > 0, "the prompts were measured at the start"
    assert after == before, f"{after - before} /tokenize calls during the measured window"
    ok = [r for r in records if r.ok]
    assert len(ok) >= 40
    assert all(r.prompt_tokens == r.usage_prompt_tokens for r in ok), "lengths stay exact"
    info = run.runtime.workload_info
    assert info is not None
    assert info["tokenize_calls"] == before <= START_CALLS_BOUND, "every call is reported"
    assert info["prompt_lengths"] == "exact"
    report = run.runtime.final_report
    assert report is not None and report.workload is not None
    assert report.workload["tokenize_calls"] == before, "in the JSON report"
    assert (  # and in the terminal summary
        "  prompts: exact, from 254 one-token words (4 checked as first words) measured with "
        f"the server's /tokenize; {before} /tokenize calls, all before the load\n"
    ) in render_workload_parts(report) + "\n"


def test_each_worker_measures_once_and_the_master_sums_the_calls(
    own_mock: str, fast_reports: None
) -> None:
    args = ["--host", own_mock, "--input-tokens", "16:64", "--max-tokens", "2"]
    master_env, master, workers = start_cluster(args)
    runtime = runtime_of(master_env)
    try:
        master.start(8, spawn_rate=8)  # four users a worker: measured by each, not per user
        assert wait_until(lambda: runtime.collector.total().succeeded >= 60, timeout=30)
        assert wait_until(
            lambda: (runtime.workload_info or {}).get("processes") == len(workers), timeout=10
        )
    finally:
        master.quit()
        for worker in workers:
            worker.quit()
    per_worker = [runtime_of(w.environment).workload_info for w in workers]
    calls = [info["tokenize_calls"] for info in per_worker if info is not None]
    assert len(calls) == 2 and calls[0] == calls[1] <= START_CALLS_BOUND
    merged = runtime.workload_info
    assert merged is not None and merged["tokenize_calls"] == sum(calls)
    assert f"; {sum(calls)} /tokenize calls from 2 processes, all before the load" in (
        render_workload(merged)
    )
    assert tokenize_requests(own_mock) == sum(calls), "none beyond those made at the start"
