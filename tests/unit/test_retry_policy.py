"""When ``--retries`` sends a request again, and how long it waits first."""

from __future__ import annotations

import random

import pytest

from sagellm_users._errors import (
    ConnectError,
    ConnectTimeout,
    HTTPStatusError,
    MalformedEventError,
    ReadTimeout,
    ServerErrorEvent,
    StreamCutError,
    TotalTimeout,
)
from sagellm_users._users.retry import RetryPolicy, attempt_label

POLICY = RetryPolicy(retries=2, max_wait=30.0, rng=random.Random(1))


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (ConnectError("refused"), True),
        (ConnectTimeout("slow"), True),
        (HTTPStatusError(429, "Too Many Requests"), True),
        (HTTPStatusError(503, "Service Unavailable"), True),
        (HTTPStatusError(500, "Internal Server Error"), True),
        (HTTPStatusError(408, "Request Timeout"), True),
        (HTTPStatusError(400, "Bad Request"), False),  # the same request fails the same way
        (HTTPStatusError(404, "Not Found"), False),
        (HTTPStatusError(401, "Unauthorized"), False),
        (ReadTimeout("silent"), False),  # the server may still be working on it
        (TotalTimeout("long"), False),
        (StreamCutError("cut"), False),
        (MalformedEventError("bad"), False),
        (ServerErrorEvent("boom"), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_is_retried(exc: BaseException, retried: bool) -> None:
    assert POLICY.should_retry(exc, attempt=1, output_started=False) is retried


def test_no_retry_once_output_arrived_or_the_attempts_are_spent() -> None:
    exc = ConnectError("reset")
    assert POLICY.should_retry(exc, attempt=2, output_started=False)
    assert not POLICY.should_retry(exc, attempt=3, output_started=False)  # 1 + 2 retries
    assert not POLICY.should_retry(exc, attempt=1, output_started=True)
    assert not RetryPolicy().should_retry(exc, attempt=1, output_started=False)  # off


def test_retry_after_is_honoured_and_capped() -> None:
    assert POLICY.wait(HTTPStatusError(429, "", retry_after=2.5), 1) == 2.5
    assert POLICY.wait(HTTPStatusError(429, "", retry_after=0.0), 3) == 0.0
    capped = RetryPolicy(retries=1, max_wait=4.0)
    assert capped.wait(HTTPStatusError(503, "", retry_after=120.0), 1) == 4.0


def test_backoff_is_jittered_and_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(retries=10, rng=random.Random(7))
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        waits = [policy.wait(ConnectError("x"), attempt) for _ in range(300)]
        assert min(waits) >= 0.0 and max(waits) <= ceiling
        assert max(waits) > 0.8 * ceiling  # full jitter spans the range
    short = RetryPolicy(retries=5, max_wait=0.2, rng=random.Random(3))
    assert max(short.wait(ConnectError("x"), 5) for _ in range(100)) <= 0.2


def test_attempts_are_labelled_by_class_and_status() -> None:
    assert attempt_label(HTTPStatusError(429, "Too Many Requests")) == "HTTPStatusError 429"
    assert attempt_label(ConnectError("refused")) == "ConnectError"
