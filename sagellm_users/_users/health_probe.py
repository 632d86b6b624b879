"""Measures a load-generating process's own lag and CPU while a test runs.

One greenlet per process (local runner or worker): it sleeps :data:`PROBE_INTERVAL_S` at a
time and records how late it woke (the event-loop lag every read and send also waits
through), and once a second the process's CPU share. Every :data:`CHECK_EVERY_S` it judges
the last stretch on its own and logs a warning while the process is behind, so a user
watching the console learns it during the run, not from the report afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from time import perf_counter

import gevent
from gevent import Greenlet

from sagellm_users._metrics.health import PROBE_INTERVAL_S, ClientHealth, ProcessHealth
from sagellm_users._users.service import Service

__all__ = ["CHECK_EVERY_S", "HealthProbe"]

log = logging.getLogger("sagellm_users")

CHECK_EVERY_S = 10.0
"""Length of the stretch judged for live warnings."""
WARN_AGAIN_S = 60.0
"""While a process stays behind, repeat the warning this often."""
_CPU_EVERY_S = 1.0


class HealthProbe(Service):
    """Feeds ``target()`` (looked up at every sample, so a worker can swap it when it ships
    a delta to the master) with loop lag and CPU samples."""

    def __init__(
        self,
        target: Callable[[], ProcessHealth],
        name: str = "local",
        measuring: Callable[[], bool] = lambda: True,
        lag_sink: Callable[[float], None] | None = None,
    ) -> None:
        self._target = target
        self._lag_sink = lag_sink
        """Gets every lag sample, in or out of the measurement window (the timeline shows
        the whole run)."""
        self._name = name
        self._measuring = measuring
        """Whether samples count now: the report judges the client over the measurement
        window only (spawning thousands of users during a warm-up stalls the loop, and
        that stretch is left out of the numbers too)."""
        self._greenlet: Greenlet[[], None] | None = None
        self._last_warning = -WARN_AGAIN_S

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    def start(self) -> None:
        if not self.running:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def stopping(self) -> None:
        # Stopping thousands of users blocks the loop for a while; that is not the test's
        # lag (Runner.stop fires test_stopping before every test_stop).
        self.stop()

    def quitting(self) -> None:
        self.stop()

    def _run(self) -> None:
        stretch = ProcessHealth()
        cpu_mark, wall_mark = time.process_time(), perf_counter()
        check_at = wall_mark + CHECK_EVERY_S
        while True:
            intended = perf_counter() + PROBE_INTERVAL_S
            gevent.sleep(PROBE_INTERVAL_S)
            now = perf_counter()
            measuring = self._measuring()
            lag = max(0.0, now - intended)
            if self._lag_sink is not None:
                self._lag_sink(lag)
            if measuring:
                self._target().loop_lag.add(lag)
                stretch.loop_lag.add(lag)
            if not measuring:  # the first CPU sample in the window starts from here
                cpu_mark, wall_mark = time.process_time(), now
            elif now - wall_mark >= _CPU_EVERY_S:
                cpu = time.process_time()
                used, elapsed = cpu - cpu_mark, now - wall_mark
                self._target().add_cpu(used, elapsed)
                stretch.add_cpu(used, elapsed)
                cpu_mark, wall_mark = cpu, now
            if now >= check_at:
                self._judge(stretch, now)
                stretch = ProcessHealth()
                check_at = now + CHECK_EVERY_S

    def _judge(self, stretch: ProcessHealth, now: float) -> None:
        """The report's verdict, on the last stretch of this process alone."""
        alone = ClientHealth()
        alone.processes[self._name] = stretch
        verdict = alone.verdict()
        if verdict.trustworthy or now - self._last_warning < WARN_AGAIN_S:
            return
        self._last_warning = now
        log.warning("sagellm: %s (over the last %g s)", "; ".join(verdict.warnings), CHECK_EVERY_S)
