"""Thousands of users in one process (file descriptors past 1023, the open-files limit),
and a refusing server that must not be hammered."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from locust.runners import STATE_STOPPED

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics import render_summary
from sagellm_users._users import connect_backoff, plugin
from sagellm_users._users import open_files as open_files_module
from sagellm_users._users.ending import build_run_report
from sagellm_users._users.open_files import HEADROOM, OpenFiles
from sagellm_users._users.runtime import runtime_of
from sagellm_users.mock_server import MockServerProcess
from tests.fault_tally import FaultRow, add_row
from tests.locust_harness import LocalRun, capture_submitted, start_cluster, wait_until

USERS = 2000


@pytest.fixture(scope="module")
def slow_mock_url() -> Iterator[str]:
    """Long answers (2 s to the first token), so 2,000 users hold 2,000 connections at once
    while the two processes stay far from busy."""
    server = MockServerProcess(["--ttft-ms", "2000", "--tbt-ms", "10"])
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def test_two_thousand_users_reuse_connections_without_a_client_failure(
    slow_mock_url: str,
) -> None:
    """2,000 concurrent connections put most file descriptors above 1023, where ``select()``
    failed every pooled connection's check (a third of the requests of such a test)."""
    run = LocalRun(
        [OpenAIChatUser],
        ["--host", slow_mock_url, "--max-tokens", "2", "--read-timeout", "60"],
    )
    records = run.run_until(requests=2 * USERS + 200, users=USERS, timeout=120)

    finished = [r for r in records if r.status != "cancelled"]
    failed = [r for r in finished if not r.ok]
    assert not failed, f"{len(failed)} failed, e.g. {failed[0].error_message}"
    reused = sum(r.connect_s is None for r in finished)
    assert reused >= USERS // 2, f"only {reused} requests went out on a pooled connection"
    assert run.environment.stats.total.num_failures == 0
    assert run.runtime.options_error is None


def test_a_user_count_the_limit_cannot_hold_is_refused_before_any_user_starts(
    monkeypatch: pytest.MonkeyPatch, unused_port: int
) -> None:
    """Users asked for after start (the web UI's form, a load shape) are checked too."""
    limit = OpenFiles(limit=300, hard=300, in_use=36)
    monkeypatch.setattr(plugin, "raise_limit", lambda: limit)
    run = LocalRun(
        [OpenAIChatUser],
        ["--host", f"http://127.0.0.1:{unused_port}", "--model", "m", "--skip-host-check"],
    )
    run.runner.start(500, spawn_rate=500)
    assert wait_until(lambda: run.runner.state == STATE_STOPPED)
    run.finish()
    error = run.runtime.options_error or ""
    assert "500 users in this process need about 600 open files" in error
    assert f"enough for {300 - 36 - HEADROOM} users" in error
    assert "ulimit -n" in error
    assert run.records == [], "no user was spawned, so nothing was sent"
    assert run.environment.process_exit_code == 1


def test_the_soft_limit_is_raised_to_the_hard_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 512:
        pytest.skip("the hard limit leaves nothing to raise")
    said: list[str] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    try:
        files = open_files_module.raise_limit(said.append)
        again = open_files_module.raise_limit(said.append)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, files.limit), hard))
    assert files.limit > 512 and hard in (resource.RLIM_INFINITY, files.limit)
    assert said == [f"sagellm: open files limit raised from 512 to {files.limit}"]
    assert again.limit == files.limit  # said once: nothing left to raise


def test_a_user_backs_off_after_connection_errors_in_a_row(
    monkeypatch: pytest.MonkeyPatch,
    unused_port: int,
    caplog: pytest.LogCaptureFixture,
    pytestconfig: pytest.Config,
) -> None:
    """A refused port fails in microseconds: without a wait, one user alone sent tens of
    thousands of requests a second at full CPU. Each failure still counts."""
    monkeypatch.setattr(connect_backoff, "FIRST_WAIT_S", 0.01)
    monkeypatch.setattr(connect_backoff, "MAX_WAIT_S", 0.04)
    monkeypatch.setitem(connect_backoff._warned, "at", -connect_backoff.WARN_AGAIN_S)
    host = f"http://127.0.0.1:{unused_port}"
    run = LocalRun([OpenAIChatUser], ["--host", host, "--model", "m", "--skip-host-check"])
    with caplog.at_level(logging.WARNING, logger="sagellm_users"):
        every = run.run_until(requests=9, users=1)
    records = [r for r in every if r.status != "cancelled"]
    refused = len(records)  # every connection attempt was refused: one per finished request
    add_row(
        pytestconfig, FaultRow("refused", len(every), refused, len(every) - refused, refused, 0)
    )
    assert all(r.error_class == "ConnectError" for r in records)
    waits = [r.backoff_s for r in records[:9]]
    free = connect_backoff.FREE_ERRORS
    assert waits[:free] == [0.0] * free
    assert 0.0075 <= waits[free] <= 0.01  # the first wait, jittered down by at most 25%
    assert waits[free] < waits[free + 1] < waits[free + 2]  # doubling ...
    assert all(0.03 <= w <= 0.04 for w in waits[free + 3 :])  # ... up to the longest
    total = run.runtime.collector.total()
    assert total.failed == len(records), "every failure counts"
    assert total.backoffs == len(records) - free
    report = build_run_report(run.runtime)
    assert report.total.backoffs == total.backoffs
    assert report.total.backoff_s == pytest.approx(total.backoff_ms / 1e3)
    summary = render_summary(run.runtime.collector.by_name, total)
    assert f"backed off {total.backoffs} times after connection errors in a row" in summary
    lines = [r.getMessage() for r in caplog.records if "connection errors in a row" in r.message]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"sagellm: {free + 1} connection errors in a row to {host}")


def test_a_worker_checks_the_host_when_the_test_starts(
    fast_reports: None,
) -> None:
    """A worker learns its host when the master starts the test (the master checked it
    at its own start; here the server is gone since): it checks it then, and stops with one
    line instead of failing every request."""
    with MockServerProcess(["--ttft-ms", "5", "--tbt-ms", "2"]) as mock:
        assert mock.url is not None
        _env, master, workers = start_cluster(["--host", mock.url, "--max-tokens", "4"], 1)
    [worker] = workers
    seen = capture_submitted(worker.environment)
    runtime = runtime_of(worker.environment)
    try:
        master.start(4, spawn_rate=4)
        assert wait_until(lambda: runtime.options_error is not None)
        assert wait_until(lambda: worker.state == STATE_STOPPED)
    finally:
        master.quit()
        worker.quit()
    assert seen == [], "nothing was sent"
    error = runtime.options_error or ""
    assert error.startswith(f"--host {mock.url}: ") and "refused" in error.lower()


def test_a_worker_refuses_a_share_its_limit_cannot_hold(
    monkeypatch: pytest.MonkeyPatch, slow_mock_url: str, fast_reports: None
) -> None:
    monkeypatch.setattr(plugin, "raise_limit", lambda: OpenFiles(300, 300, 36))
    master_env, master, [worker] = start_cluster(["--host", slow_mock_url, "--max-tokens", "2"], 1)
    seen = capture_submitted(worker.environment)
    runtime = runtime_of(worker.environment)
    try:
        master.start(500, spawn_rate=500)
        assert wait_until(lambda: runtime.options_error is not None)
        assert wait_until(lambda: worker.state == STATE_STOPPED)
        assert wait_until(lambda: runtime_of(master_env).options_error is not None)
    finally:
        master.quit()
        worker.quit()
    assert seen == [], "nothing was sent"
    assert "500 users on worker 0 need about 600 open files" in (runtime.options_error or "")
    # The master learns it: its run ends with exit code 1, not 0 with nothing sent.
    master_runtime = runtime_of(master_env)
    assert master_runtime.options_error == runtime.options_error
