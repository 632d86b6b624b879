"""Each test of a web session is its own run, as each is in Locust's own tables.

Locust clears its statistics when a test starts from the web UI (after Stop, "New"); the
LLM numbers, the timeline and the live view did not, so a second test's percentiles mixed
both tests and its window spanned the idle gap between them. :class:`Runs`, the first
service of a process that keeps results, closes the previous run when the next one starts:
its report is built while everything in it is still there (every worker's last report
long arrived, the options still the ones it ran with), kept for the live page to list and
serve, and the runtime starts from nothing. A headless test has one run and pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sagellm_users._users.service import Service

if TYPE_CHECKING:
    from sagellm_users._report import LLMReport
    from sagellm_users._users.runtime import LLMRuntime

__all__ = ["KEEP_RUNS", "FinishedRun", "Runs"]

KEEP_RUNS = 20
"""Finished runs whose reports a web session keeps (the oldest are let go)."""


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A test of this session that has ended, and its report."""

    number: int
    started: float
    """Wall-clock start (epoch seconds); ``ended`` is when the next test started."""
    stopped: float | None
    report: LLMReport


class Runs(Service):
    """The runs of this process: the current one's number and start, the finished ones."""

    def __init__(
        self, runtime: LLMRuntime, build: Callable[[LLMRuntime], LLMReport], keep: int = KEEP_RUNS
    ) -> None:
        self._runtime = runtime
        self._build = build
        self._keep = keep
        self.number = 0
        """The current run's number (1 for the first test; 0 before any)."""
        self.started: float | None = None
        self.stopped: float | None = None
        self.finished: list[FinishedRun] = []
        """The session's ended runs, oldest first (at most :data:`KEEP_RUNS`)."""

    def start(self) -> None:
        if self.number:
            self._close()
        self.number += 1
        self.started, self.stopped = time.time(), None

    def stop(self) -> None:
        self.stopped = time.time()

    def run(self, number: int) -> FinishedRun | None:
        return next((run for run in self.finished if run.number == number), None)

    def _close(self) -> None:
        """The previous run ends here: its report is kept and the numbers start anew."""
        assert self.started is not None
        runtime = self._runtime
        report = self._build(runtime)
        self.finished.append(FinishedRun(self.number, self.started, self.stopped, report))
        del self.finished[: -self._keep]
        runtime.new_run()
