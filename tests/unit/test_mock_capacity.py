"""Admission control: concurrency limit, FIFO order, cancelled waiters skipped."""

from __future__ import annotations

import pytest

from sagellm_users.mock_server.capacity import Admission


class Waiter:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.cancelled = False

    def admit(self) -> None:
        self.log.append(self.name)


def test_unlimited_admits_everyone_at_once() -> None:
    log: list[str] = []
    adm = Admission(0)
    for name in "abcde":
        adm.submit(Waiter(name, log))
    assert log == list("abcde")
    assert adm.running == 5 and adm.waiting == 0


def test_excess_waits_and_is_admitted_in_fifo_order() -> None:
    log: list[str] = []
    adm = Admission(2)
    for name in "abcde":
        adm.submit(Waiter(name, log))
    assert log == ["a", "b"] and adm.running == 2 and adm.waiting == 3
    adm.release()
    assert log == ["a", "b", "c"] and adm.running == 2
    adm.release()
    adm.release()
    assert log == list("abcde") and adm.waiting == 0
    for _ in range(2):
        adm.release()
    assert adm.running == 0


def test_cancelled_waiters_are_skipped() -> None:
    log: list[str] = []
    adm = Admission(1)
    waiters = [Waiter(name, log) for name in "abcd"]
    for w in waiters:
        adm.submit(w)
    waiters[1].cancelled = True
    waiters[2].cancelled = True
    adm.release()
    assert log == ["a", "d"] and adm.running == 1 and adm.waiting == 0


def test_a_newcomer_does_not_overtake_the_queue() -> None:
    log: list[str] = []
    adm = Admission(1)
    adm.submit(Waiter("a", log))
    adm.submit(Waiter("b", log))
    adm.release()  # b is admitted
    adm.submit(Waiter("c", log))
    assert log == ["a", "b"] and adm.waiting == 1


def test_release_without_admission_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        Admission(1).release()
    with pytest.raises(ValueError):
        Admission(-1)
