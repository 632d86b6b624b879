"""The end of a trace replay: the test stops once every line was sent and answered.

A replay is as long as its trace (at ``--trace-speed``): each user stops when no line is
left for it (see ``LLMUser._claim``), and this service, on the process that owns the test
(a local runner or the master), ends the test once the trace's last line is due and no user
is left, as Locust ends a run at its ``--run-time`` (headless: quit and report; with the web
UI: stop, and quit after ``--autoquit`` when ``--autostart`` began it). ``--run-time`` still
bounds it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import gevent
from locust.runners import STATE_RUNNING, STATE_SPAWNING

from sagellm_users._users.service import Service

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.runners import Runner

    from sagellm_users._users.runtime import LLMRuntime

__all__ = ["TraceEnd"]

log = logging.getLogger("sagellm_users")

POLL_S = 0.25
"""How often the end is looked for once the trace's last line is due."""


class TraceEnd(Service):
    """Ends a replay once the trace is done (see the module's note)."""

    def __init__(self, environment: Environment, runtime: LLMRuntime) -> None:
        self._environment = environment
        self._runtime = runtime
        self._watch: gevent.Greenlet | None = None

    def start(self) -> None:
        options = self._runtime.options
        trace = options.trace_requests
        if trace is None or self._watch is not None:
            return
        due = time.time() + trace.duration_s / options.trace_speed
        self._watch = gevent.spawn(self._end_after, due)

    def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None and watch is not gevent.getcurrent():
            watch.kill(block=False)

    def _end_after(self, due: float) -> None:
        gevent.sleep(max(0.0, due - time.time()))
        runner = self._environment.runner
        while runner is not None:
            if runner.state not in (STATE_RUNNING, STATE_SPAWNING):
                return  # stopped another way
            if runner.state == STATE_RUNNING and runner.user_count == 0:
                break
            gevent.sleep(POLL_S)
        if runner is None:
            return
        self._watch = None
        log.info("sagellm: --trace: every line of the trace was sent and answered; stopping")
        self._end(runner)

    def _end(self, runner: Runner) -> None:
        """As Locust ends a run at its ``--run-time``: headless, quit; with the web UI, stop,
        then quit ``--autoquit`` seconds later when the test was started by ``--autostart``."""
        options = self._environment.parsed_options
        if getattr(options, "headless", False):
            runner.quit()
            return
        runner.stop()
        autoquit = getattr(options, "autoquit", -1)
        if getattr(options, "autostart", False) and autoquit != -1:
            gevent.sleep(autoquit)
            runner.quit()
            web_ui = self._environment.web_ui
            if web_ui is not None:
                web_ui.stop()
