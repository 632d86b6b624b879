"""A run in which requests went out and none finished must not exit 0.

Locust decides its exit code by failures; a run whose streams never end (a proxy holding
them open, pings forever) has none, and used to exit 0 with 0 completed. The mock's
``stall`` fault holds every stream open; the run is stopped with all of them in flight.
"""

from __future__ import annotations

import pytest

from sagellm_users import OpenAIChatUser
from sagellm_users._users.ending import NOTHING_FINISHED_EXIT
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun, wait_until

USERS = 3


@pytest.mark.parametrize("slo", [[], ["--slo", "ttft_p99<=500ms"]], ids=["plain", "slo"])
def test_a_run_where_no_request_finished_exits_with_its_own_code(
    slo: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with MockServerProcess(["--ttft-ms", "1", "--error-rate-stall", "1"]) as mock:
        assert mock.url is not None
        args = ["--host", mock.url, "--max-tokens", "8", "--read-timeout", "60", *slo]
        args += ["--server-metrics-interval", "0"]
        run = LocalRun([OpenAIChatUser], args)
        run.runner.start(USERS, spawn_rate=USERS)
        assert wait_until(lambda: run.runtime.in_flight == USERS)
        run.finish()
    assert len(run.records) == USERS
    assert {r.status for r in run.records} == {"cancelled"}
    assert run.environment.process_exit_code == NOTHING_FINISHED_EXIT == 4
    assert "no request finished (3 sent" in caplog.text


def test_a_run_that_finished_requests_keeps_its_exit_code() -> None:
    with MockServerProcess(["--ttft-ms", "1", "--tbt-ms", "1"]) as mock:
        assert mock.url is not None
        args = ["--host", mock.url, "--max-tokens", "4", "--server-metrics-interval", "0"]
        run = LocalRun([OpenAIChatUser], args)
        run.run_until(requests=4, users=2)
    assert any(r.ok for r in run.records)
    assert run.environment.process_exit_code in (None, 0)
