"""Retried attempts stay visible without turning a run that ended well into a failed one.

A 429 that ``--retries`` sends again is not a failed request: the request's own row counts
its final attempt. Locust still shows each retried attempt (the RETRY row), but neither its
Aggregated row, its error table nor the exit code (Locust's ``--exit-code-on-error`` fires
on any entry in that table) may count it.
"""

from __future__ import annotations

from pathlib import Path

from sagellm_users import OpenAIChatUser
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun, start_cluster, stats_row, wait_until

ENDPOINT = "/v1/chat/completions"


def test_retried_429s_are_not_failures_in_locusts_stats(tmp_path: Path) -> None:
    mock_args = ["--ttft-ms", "2", "--tbt-ms", "1", "--error-rate-429", "0.3"]
    mock_args += ["--retry-after-s", "0", "--seed", "5"]
    with MockServerProcess(mock_args) as mock:
        assert mock.url is not None
        args = ["--host", mock.url, "--max-tokens", "4", "--retries", "20"]
        args += ["--server-metrics-interval", "0", "--llm-records", str(tmp_path / "r.jsonl")]
        run = LocalRun([OpenAIChatUser], args)
        run.run_until(requests=60, users=4, timeout=60)
    finished = [r for r in run.records if r.status != "cancelled"]
    assert all(r.ok for r in finished), "20 retries of a 30% 429 rate: every request ends ok"
    retries = sum(r.retries for r in run.records)
    assert retries > 0
    stats = run.environment.stats
    retry_row = stats_row(run.environment, "RETRY", ENDPOINT)
    assert retry_row.num_requests == retry_row.num_failures == retries  # still visible
    assert stats.total.num_failures == 0
    assert stats.total.num_requests == len(finished)
    assert stats.errors == {}, "a retried attempt is not in Locust's error table"
    assert run.runner.errors == {}  # what --exit-code-on-error looks at
    assert run.runtime.collector.total().retries == retries


def test_retried_attempts_stay_out_of_the_masters_failures(fast_reports: None) -> None:
    """Each worker keeps them out of its Aggregated row and error table, so the master's
    merge of the workers' stats (entries, totals, errors) has none either."""
    mock_args = ["--ttft-ms", "2", "--tbt-ms", "1", "--error-rate-429", "0.3"]
    with MockServerProcess([*mock_args, "--retry-after-s", "0", "--seed", "9"]) as mock:
        assert mock.url is not None
        args = ["--host", mock.url, "--max-tokens", "4", "--retries", "20"]
        master_env, master, workers = start_cluster(args, workers=2)
        master.start(4, spawn_rate=4)
        stats = master_env.stats
        assert wait_until(lambda: stats.get(ENDPOINT, "RETRY").num_requests >= 10, timeout=60)
        master.quit()
        for worker in workers:
            worker.quit()
    retry_row = stats.get(ENDPOINT, "RETRY")
    assert retry_row.num_failures == retry_row.num_requests >= 10
    assert stats.total.num_failures == 0 and stats.total.num_requests > 0
    assert stats.errors == {} and master.errors == {}
