"""What the log says about the requests in flight when the users stop is what is recorded.

Locust kills its users after ``test_stopping`` fires, one kill per user, delivered by the
event loop a little later; a request that ends meanwhile is recorded as it ended (ok or
error), not as cancelled. So the count of requests in flight when stopping starts is not a
count of cancellations: the log says that count as what is in flight, and once the users
have stopped, how many were recorded as cancelled and how many finished meanwhile.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import pytest

from sagellm_users import OpenAIChatUser
from sagellm_users._backends import openai as openai_module
from sagellm_users._backends.exchange import HttpExchange
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun, wait_until


def test_the_stop_log_counts_what_was_recorded(caplog: pytest.LogCaptureFixture) -> None:
    with MockServerProcess(["--ttft-ms", "5", "--tbt-ms", "2"]) as mock:
        assert mock.url is not None
        args = ["--host", mock.url, "--max-tokens", "64", "--server-metrics-interval", "0"]
        run = LocalRun([OpenAIChatUser], args)
        seen_at_stopping: list[int] = []
        run.environment.events.test_stopping.add_listener(
            lambda **_kw: seen_at_stopping.append(len(run.records))
        )
        with caplog.at_level(logging.INFO, logger="sagellm_users"):
            run.run_until(requests=60, users=30, timeout=60)
    messages = caplog.messages
    stopping = [m for m in messages if m.startswith("sagellm: stopping: ")]
    assert len(stopping) == 1, messages
    in_flight = re.search(r"stopping: (\d+) request\(s\) in flight", stopping[0])
    assert in_flight is not None, stopping
    after = Counter(r.status for r in run.records[seen_at_stopping[0] :])
    stopped = [m for m in messages if m.startswith("sagellm: users stopped: ")]
    assert stopped == [
        f"sagellm: users stopped: {after['cancelled']} request(s) recorded as cancelled, "
        f"{after['ok'] + after['error']} finished while the users stopped"
    ], messages
    assert after.total() >= int(in_flight[1]) > 0  # each one in flight ended one way or another


def test_a_stream_answered_at_done_is_ok_when_the_stop_comes_in_its_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy that holds the response open after ``data: [DONE]`` leaves the connection in
    its grace period (see ``end_early``); a stop arriving then finds every token and the
    usage already read. That request was answered in full: it is recorded ok, with its
    tokens, not cancelled."""
    graces: list[float] = []
    end_early = HttpExchange.end_early

    def counted(self: HttpExchange, t_done: float, grace_s: float) -> None:
        graces.append(t_done)
        end_early(self, t_done, grace_s)

    monkeypatch.setattr(HttpExchange, "end_early", counted)
    monkeypatch.setattr(openai_module, "DONE_GRACE_S", 120.0)  # the stop lands in it
    users = 4
    mock_args = ["--ttft-ms", "5", "--tbt-ms", "2", "--error-rate-done-no-end", "1"]
    with MockServerProcess(mock_args) as mock:
        assert mock.url is not None
        args = ["--host", mock.url, "--max-tokens", "8", "--ignore-eos"]
        run = LocalRun([OpenAIChatUser], [*args, "--server-metrics-interval", "0"])
        run.runner.start(users, spawn_rate=users)
        assert wait_until(lambda: len(graces) == users, timeout=30), graces
        run.finish()
    assert [r.status for r in run.records] == ["ok"] * users
    assert all(len(r.t_out) == 8 and r.usage_completion_tokens == 8 for r in run.records)
