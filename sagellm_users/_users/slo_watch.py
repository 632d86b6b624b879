"""``--slo-early-stop``: watch the merged metrics and stop the test once an objective is lost.

Runs on the process that judges the SLOs (the master, or the local runner), once a second,
on the same merged numbers the final report is built from. What "can no longer be met"
means is defined in :mod:`sagellm_users._metrics.early_stop`; this module only supplies the
horizon (time left from ``--run-time``, users in flight) and stops Locust the way its own
``--run-time`` does: quit when there is no web UI, stop (keeping the UI up) when there is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gevent

from sagellm_users._metrics.early_stop import Horizon, doomed_slos
from sagellm_users._users.service import Service

if TYPE_CHECKING:
    from locust.env import Environment

    from sagellm_users._users.runtime import LLMRuntime

__all__ = ["CHECK_INTERVAL", "EarlyStop", "SLOWatch"]

log = logging.getLogger("sagellm_users")

CHECK_INTERVAL = 1.0
"""Seconds between checks (the master's data changes every worker report, 3 s by default)."""


@dataclass(frozen=True, slots=True)
class EarlyStop:
    """Why and when the test was stopped early."""

    at: float
    """Wall-clock time of the decision."""
    reasons: tuple[tuple[str, str], ...]
    """(objective as written, why it can no longer be met)."""


class SLOWatch(Service):
    """One per environment; started on each test start, ended on test stop."""

    def __init__(self, environment: Environment, runtime: LLMRuntime, *, keep_ui: bool) -> None:
        self._environment = environment
        self._runtime = runtime
        self._keep_ui = keep_ui
        self._greenlet: gevent.Greenlet[[], None] | None = None
        self._deadline: float | None = None

    def start(self) -> None:
        self.stop()
        self._runtime.early_stop = None
        options = self._runtime.options
        if not options.slo_early_stop:
            return
        run_time = getattr(self._environment.parsed_options, "run_time", None)
        self._deadline = time.time() + float(run_time) if run_time else None
        if self._deadline is None:
            log.warning(
                "sagellm: --slo-early-stop without --run-time: only max/min objectives can "
                "be known lost before the end; give --run-time to bound the rest of the run"
            )
        self._greenlet = gevent.spawn(self._watch)

    def stop(self) -> None:
        greenlet = self._greenlet
        self._greenlet = None
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(block=False)

    def quitting(self) -> None:
        self.stop()

    def check(self, now: float) -> EarlyStop | None:
        """Judge the metrics as they stand at ``now``; the decision, or None to go on."""
        runtime = self._runtime
        collector = runtime.collector
        total = collector.total()
        runner = self._environment.runner
        horizon = Horizon(
            seconds_left=None if self._deadline is None else self._deadline - now,
            in_flight=runner.user_count if runner is not None else 0,
        )
        doomed = doomed_slos(runtime.options.slos, total, collector.window(total), horizon)
        if not doomed:
            return None
        return EarlyStop(now, tuple((slo.text, reason) for slo, reason in doomed))

    def _watch(self) -> None:
        while True:
            gevent.sleep(CHECK_INTERVAL)  # a polling period, not a synchronisation
            decision = self.check(time.time())
            if decision is not None:
                self._stop_test(decision)
                return

    def _stop_test(self, decision: EarlyStop) -> None:
        self._runtime.early_stop = decision
        for text, reason in decision.reasons:
            log.warning(
                "sagellm: SLO %s can no longer be met (%s); stopping the test", text, reason
            )
        runner = self._environment.runner
        if runner is not None:
            # From a fresh greenlet: stopping kills this watcher through test_stop.
            gevent.spawn(runner.stop if self._keep_ui else runner.quit)
