"""On a master: notice a worker that stopped sending heartbeats, and say so in the report.

Locust marks a worker "missing" after a few silent heartbeats (killed, frozen, cut off) and
goes on with the others, but fires no event and leaves nothing in the results. This watch
polls the master's worker list five times a second; a worker that turns missing is logged with
its id, when it was lost and when its last report arrived, and the final report is marked
partial: what that worker measured after its last report never reached the master. What
it had reported stays in every number.

It also tells the master's merge which reports to take. Locust hands on a report from any
process that sends one to the master's port, also from a worker that joined a previous
master on that port: a master restarted mid-test finds the old run's workers still running
their users for up to a minute (Locust's master heartbeat timeout) and reporting to it.
Only workers that joined this master (sent it ``client_ready``, which puts them in its worker
list; with ``--processes`` that can come before the plugin is set up) count; the others are
named once in the log.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import gevent
from gevent import Greenlet
from locust.runners import STATE_MISSING, MasterRunner

from sagellm_users._report.model import LostWorker
from sagellm_users._users.service import Service

__all__ = ["WorkerWatch"]

log = logging.getLogger("sagellm_users")

POLL_S = 0.2
"""How often the worker list is looked at: a small share of the time Locust takes to mark a
worker missing (4 to 5 s after its last heartbeat), so it adds little to the delay."""


class WorkerWatch(Service):
    """Tracks each worker's last report and which workers were lost, on one master."""

    def __init__(self, runner: MasterRunner) -> None:
        self._runner = runner
        self._last_report: dict[str, float] = {}
        self.lost: dict[str, LostWorker] = {}
        self._joined: set[str] = set()
        self._strangers: set[str] = set()
        self._greenlet: Greenlet | None = None

    def joined(self, client_id: str) -> None:
        """``client_id`` connected to this master (Locust's ``worker_connect``)."""
        self._joined.add(client_id)

    def accepts(self, client_id: str) -> bool:
        """Whether a report from ``client_id`` belongs to this master's test: the worker
        joined it. A stranger is named in the log the first time."""
        if client_id in self._joined:
            return True
        if client_id in self._runner.clients:  # joined before this watch was installed
            self._joined.add(client_id)
            return True
        if client_id not in self._strangers:
            self._strangers.add(client_id)
            log.warning(
                "sagellm: ignoring reports from worker %s, which never joined this master "
                "(it was started for an earlier master on this port, which stopped or was "
                "restarted); it is asked to quit",
                client_id,
            )
        return False

    def reported(self, client_id: str) -> None:
        """A report from ``client_id`` arrived now."""
        self._last_report[client_id] = time.time()

    def begin(self) -> None:
        """Workers are watched from the start, not per test: one can be lost between tests."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def quitting(self) -> None:
        """Before the report is built."""
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None:
            greenlet.kill(block=False)
        self.check()  # one last look: a worker lost in the final second still counts

    def _loop(self) -> None:
        while True:
            gevent.sleep(POLL_S)
            self.check()

    def check(self) -> None:
        for node in list(self._runner.clients.values()):
            if node.state != STATE_MISSING or node.id in self.lost:
                continue
            last = self._last_report.get(node.id)
            lost = LostWorker(
                worker=str(node.id),
                lost_at=datetime.now(UTC),
                last_report_at=None if last is None else datetime.fromtimestamp(last, UTC),
            )
            self.lost[node.id] = lost
            since = (
                "never reported" if last is None else f"last report {time.time() - last:.1f} s ago"
            )
            log.warning(
                "sagellm: worker %s stopped sending heartbeats (%s); the test goes on with the "
                "others, and the report is marked partial: what it measured after its last "
                "report is not in it",
                node.id,
                since,
            )
