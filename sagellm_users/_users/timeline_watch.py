"""Feeds the timeline where the report is built (local runner or master) while a test runs.

Once a second it samples the gauges no request carries (users, requests in flight) and
closes the buckets that can no longer grow (see :mod:`sagellm_users._metrics.timeline`);
closing first counts the output tokens that arrived since the last tick, so the requests
still streaming have theirs in the right seconds. (A worker counts them before each
report instead: its timeline ships its buckets, it closes none.)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import gevent
from gevent import Greenlet

from sagellm_users._users.service import Service

if TYPE_CHECKING:
    from sagellm_users._users.runtime import LLMRuntime

__all__ = ["TICK_S", "TimelineWatch"]

TICK_S = 1.0


class TimelineWatch(Service):
    """Closes the timeline's seconds as they pass, with the users and requests in flight."""

    def __init__(self, runtime: LLMRuntime, tick: float = TICK_S) -> None:
        self._runtime = runtime
        self._tick = tick
        self._greenlet: Greenlet[[], None] | None = None

    def start(self) -> None:
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None:
            greenlet.kill(block=False)
        self.tick()  # the last second's gauges

    def tick(self) -> None:
        runtime = self._runtime
        runner = runtime.environment.runner
        timeline = runtime.timeline
        users = 0 if runner is None else runner.user_count
        for worker in getattr(runner, "clients", {}):  # a master: workers yet to report
            timeline.expect(str(worker))
        timeline.sample(time.time(), users, runtime.requests_in_flight())
        runtime.recorder.flush()  # a request that ended is in its bucket before it closes
        timeline.close_due()

    def _run(self) -> None:
        while True:
            self.tick()
            gevent.sleep(self._tick)
