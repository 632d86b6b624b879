"""The deferred recorder: nothing lost or reordered, recorded between reads, bounded."""

from __future__ import annotations

import logging

import gevent
import pytest
from gevent.event import Event

from sagellm_users._metrics import RequestRecord
from sagellm_users._users.recorder import DeferredRecorder
from tests.records import make_record


def _record(n: int) -> RequestRecord:
    return make_record(request_id=n)


class _Log:
    def __init__(self, expect: int = 0) -> None:
        self.ids: list[int] = []
        self.errors: list[BaseException | None] = []
        self.expect = expect
        self.all_in = Event()

    def __call__(self, record: RequestRecord, exception: BaseException | None) -> None:
        self.ids.append(record.request_id)
        self.errors.append(exception)
        if len(self.ids) >= self.expect:
            self.all_in.set()


def test_records_inline_until_started() -> None:
    log = _Log()
    recorder = DeferredRecorder(log)
    recorder.submit(_record(1))
    assert log.ids == [1]
    assert not recorder.running


def test_started_recorder_queues_then_records_in_order() -> None:
    log = _Log(expect=5)
    recorder = DeferredRecorder(log)
    recorder.start()
    try:
        error = ValueError("x")
        for n in range(1, 6):
            recorder.submit(_record(n), error if n == 3 else None)
        assert log.ids == []  # nothing recorded inside the finishing greenlet
        assert recorder.backlog == 5
        assert log.all_in.wait(timeout=10)
        assert log.ids == [1, 2, 3, 4, 5]
        assert log.errors[2] is error
        assert recorder.backlog == 0
    finally:
        recorder.stop()


def test_ready_greenlets_run_between_two_recordings() -> None:
    """A chunk that arrives while requests are being recorded waits for one recording,
    not for all of them."""
    order: list[str] = []
    done = Event()

    def record(record: RequestRecord, exception: BaseException | None) -> None:
        order.append(f"record {record.request_id}")
        if record.request_id == 1:
            gevent.spawn(order.append, "reader")
        if record.request_id == 2:
            done.set()

    recorder = DeferredRecorder(record)
    recorder.start()
    try:
        recorder.submit(_record(1))
        recorder.submit(_record(2))
        assert done.wait(timeout=10)
        assert order == ["record 1", "reader", "record 2"]
    finally:
        recorder.stop()


def test_backlog_is_bounded_by_recording_the_oldest_inline() -> None:
    log = _Log()
    recorder = DeferredRecorder(log, backlog_limit=2)
    recorder.start()
    try:
        for n in range(1, 5):  # no yield in between: the recorder greenlet never runs
            recorder.submit(_record(n))
        assert log.ids == [1, 2]
        assert recorder.backlog == 2
    finally:
        recorder.stop()
    assert log.ids == [1, 2, 3, 4]


def test_stop_records_everything_queued_then_records_inline() -> None:
    log = _Log()
    recorder = DeferredRecorder(log)
    recorder.start()
    for n in range(1, 4):
        recorder.submit(_record(n))
    recorder.stop()
    assert log.ids == [1, 2, 3]
    recorder.submit(_record(4))
    assert log.ids == [1, 2, 3, 4]
    assert not recorder.running


def test_flush_records_the_queue_now_and_keeps_running() -> None:
    log = _Log()
    recorder = DeferredRecorder(log)
    recorder.start()
    try:
        recorder.submit(_record(1))
        recorder.submit(_record(2))
        recorder.flush()
        assert log.ids == [1, 2]
        assert recorder.running
    finally:
        recorder.stop()


def test_a_failing_recording_is_logged_and_the_rest_still_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = _Log()

    def record(record: RequestRecord, exception: BaseException | None) -> None:
        if record.request_id == 2:
            raise OSError("No space left on device")
        log(record, exception)

    recorder = DeferredRecorder(record)
    recorder.start()
    for n in range(1, 4):
        recorder.submit(_record(n))
    with caplog.at_level(logging.ERROR, logger="sagellm_users"):
        recorder.stop()
    assert log.ids == [1, 3]
    assert "recording request 2 failed" in caplog.text
    assert "No space left on device" in caplog.text
