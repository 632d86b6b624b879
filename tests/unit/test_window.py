"""Warm-up parsing and the measurement window's decisions."""

from __future__ import annotations

import pytest

from sagellm_users._errors import ConfigError
from sagellm_users._metrics.window import MeasurementWindow, Warmup, parse_warmup


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Warmup()),
        ("30s", Warmup(seconds=30)),
        ("45", Warmup(seconds=45)),
        ("2m", Warmup(seconds=120)),
        ("1.5h", Warmup(seconds=5400)),
        ("200req", Warmup(requests=200)),
        ("200 requests", Warmup(requests=200)),
        ("1 request", Warmup(requests=1)),
        (" 10S ", Warmup(seconds=10)),
    ],
)
def test_parse_warmup(text: str, expected: Warmup) -> None:
    assert parse_warmup(text) == expected


@pytest.mark.parametrize("text", ["-5s", "ten", "5 minutes", "1.5req", "5x"])
def test_parse_warmup_rejects_with_the_fix(text: str) -> None:
    with pytest.raises(ConfigError, match="--warmup"):
        parse_warmup(text)


def start_of(window: MeasurementWindow) -> float | None:
    """Read through a call, so each assert sees the window's current state."""
    return window.start


def test_no_warmup_admits_everything() -> None:
    window = MeasurementWindow(Warmup())
    assert not window.active
    assert window.admits(1.0, 2.0, cancelled=False)
    assert window.start is None


def test_time_warmup_starts_after_the_test_start() -> None:
    window = MeasurementWindow(Warmup(seconds=5))
    assert not window.admits(100.0, 101.0, cancelled=False), "nothing counts before the start"
    window.test_started(100.0)
    assert window.start == 105.0
    assert not window.admits(104.9, 110.0, cancelled=False), "sent during warm-up"
    assert window.admits(105.0, 106.0, cancelled=False)


def test_request_warmup_excludes_the_first_finished_requests() -> None:
    window = MeasurementWindow(Warmup(requests=2))
    window.test_started(0.0)
    assert not window.admits(1.0, 2.0, cancelled=False)
    assert not window.admits(1.5, 3.0, cancelled=True), "cancelled during warm-up"
    assert start_of(window) is None, "a cancelled request does not count down"
    assert not window.admits(1.2, 4.0, cancelled=False)
    assert window.start == 4.0, "measuring starts when the last warm-up request finished"
    assert not window.admits(3.5, 5.0, cancelled=False), "in flight during warm-up"
    assert window.admits(4.5, 6.0, cancelled=False)


def test_after_spawn_waits_for_spawning_complete_then_the_warmup() -> None:
    window = MeasurementWindow(Warmup(seconds=1), after_spawn=True)
    window.test_started(10.0)
    assert start_of(window) is None
    assert not window.admits(11.0, 12.0, cancelled=False)
    window.spawning_complete(20.0)
    assert window.start == 21.0
    assert not window.admits(20.5, 22.0, cancelled=False)
    assert window.admits(21.0, 22.0, cancelled=False)


def test_measuring_follows_the_window() -> None:
    always = MeasurementWindow(Warmup())
    assert always.measuring(0.0)

    timed = MeasurementWindow(Warmup(seconds=5))
    assert not timed.measuring(100.0), "before the test starts"
    timed.test_started(100.0)
    assert not timed.measuring(104.9)
    assert timed.measuring(105.0)

    spawned = MeasurementWindow(Warmup(), after_spawn=True)
    spawned.test_started(10.0)
    assert not spawned.measuring(15.0), "still spawning"
    spawned.spawning_complete(20.0)
    assert spawned.measuring(20.0)

    counted = MeasurementWindow(Warmup(requests=1))
    counted.test_started(0.0)
    assert not counted.measuring(1.0)
    counted.admits(0.5, 2.0, cancelled=False)
    assert counted.measuring(2.0)
