"""Records finished requests when the event loop has nothing to read, not in the middle of reads.

Recording one 256-token request (distributions, the records file's JSON line, Locust's three
request events) costs about 0.3 ms of CPU. Done inline, in the user's greenlet, it blocks the
event loop for that long, and requests that finish together (users spawned in one clump
finish in one clump, request after request) block it for the sum: 256 streams finishing
within a few milliseconds held every other stream's chunks unread for 30-50 ms, and those
late timestamps were the run's ITL p99 (``bench/load_bench.py``, scenario "stream").

Here a finished request is only queued; one greenlet records queued requests one at a
time, each when the loop is idle (a libev idle watcher: no I/O, timer or callback pending),
so a chunk that arrives meanwhile waits for at most one recording. Nothing is dropped or
reordered: the queue is bounded (:data:`BACKLOG_LIMIT`; past it the finishing greenlet
records the oldest one itself, as if nothing were deferred), and :meth:`flush` records
everything still queued, which is called before anything reads the results (test stop,
a stats reset, a worker's report to the master, ``/llm/stats``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import gevent
from gevent import Greenlet
from gevent.event import Event
from gevent.hub import get_hub

from sagellm_users._metrics.record import RequestRecord
from sagellm_users._users.service import Service

__all__ = ["BACKLOG_LIMIT", "DeferredRecorder"]

log = logging.getLogger("sagellm_users")

BACKLOG_LIMIT = 1024
"""Finished requests queued at most (about 10 MB of 256-token records); a client that
never idles records inline past it, so memory and the delay to the results stay bounded."""

Recorder = Callable[[RequestRecord, BaseException | None], None]


class DeferredRecorder(Service):
    """Queues finished requests and records them one at a time when the loop is idle."""

    def __init__(self, record: Recorder, backlog_limit: int = BACKLOG_LIMIT) -> None:
        self._record = record
        self._limit = backlog_limit
        self._pending: deque[tuple[RequestRecord, BaseException | None]] = deque()
        self._wake = Event()
        self._greenlet: Greenlet[[], None] | None = None

    @property
    def running(self) -> bool:
        return self._greenlet is not None

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Record everything queued, then record inline until started again."""
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None:
            greenlet.kill(block=True)
        self.flush()

    def submit(self, record: RequestRecord, exception: BaseException | None = None) -> None:
        if self._greenlet is None:
            self._record(record, exception)
            return
        pending = self._pending
        while len(pending) >= self._limit:
            self._record_safely(*pending.popleft())
        pending.append((record, exception))
        self._wake.set()

    def flush(self) -> None:
        pending = self._pending
        while pending:
            self._record_safely(*pending.popleft())

    def _run(self) -> None:
        hub = get_hub()
        idle = hub.loop.idle()
        pending = self._pending
        while True:
            while not pending:
                self._wake.clear()
                self._wake.wait()
            hub.wait(idle)
            if pending:
                self._record_safely(*pending.popleft())

    def _record_safely(self, record: RequestRecord, exception: BaseException | None) -> None:
        """A failure to record one request (a full disk, a listener's bug) is logged and
        does not stop the requests queued behind it from being recorded."""
        try:
            self._record(record, exception)
        except Exception:
            log.exception("sagellm: recording request %s failed", record.request_id)
