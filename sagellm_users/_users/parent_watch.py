"""A worker forked by ``--processes`` stops once the process that forked it is gone.

Locust's forked workers outlive a master killed with -9 (by hand, by the OOM killer) by
Locust's master heartbeat timeout, a minute. Their users run on meanwhile against the
embedded mock, which ended with the master: each request is refused at once, thousands a
second, into the worker's records, and a master started next on the same port gets their
reports. The parent is the master (or, with ``--worker --processes``, the process that
waits for its workers): when it is gone the worker is re-parented, and it quits as it
would at the heartbeat timeout (its users stop, its records close whole), now.
"""

from __future__ import annotations

import logging
import os

import gevent
from locust.runners import WorkerRunner

__all__ = ["POLL_S", "stop_with_parent"]

log = logging.getLogger("sagellm_users")

POLL_S = 0.5
"""How often the worker looks at its parent process id."""


def stop_with_parent(runner: WorkerRunner) -> None:
    """Quit ``runner`` once this process's parent has ended."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            gevent.sleep(POLL_S)
        log.error(
            "sagellm: the process that started this worker (pid %d) is gone, its embedded "
            "mock server with it: stopping this worker",
            parent,
        )
        runner.quit()

    gevent.spawn(watch)
