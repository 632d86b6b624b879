"""Stopping a test without losing what was measured: Ctrl-C, SIGTERM, ``--run-time``.

Three things Locust leaves to chance are made deterministic here.

**Where Ctrl-C lands.** Python raises KeyboardInterrupt in whichever greenlet runs when
the signal arrives; :func:`interrupt_main_greenlet` sends it to the main greenlet, where
Locust shuts down, so it no longer kills a master's message listener or a worker's
heartbeat on the way.

**The workers' final reports.** Locust's master quits by telling its workers to quit and
waiting a fixed half second before it stops listening. A worker's final report comes once
it has stopped its users: at once with the default ``--stop-timeout`` 0, up to that many
seconds later otherwise. :func:`quit_workers_first` makes the master's quit wait, bounded,
until each worker has sent a report with no user left running (everything it measured and
cancelled is then in it), has quit, or is lost. On Ctrl-C or SIGTERM the master's role calls that
quit before it builds the report and stops the embedded mock, so no worker's last requests
fail against a server that is gone. :func:`send_final_report` lets a worker that stops on
its own signal (a Ctrl-C in a terminal reaches every process of the group) send what it
measured since its last report before it says it quits.

**A signal while stopping.** A Ctrl-C while the users stop (``--stop-timeout`` lets their
requests finish) or while the master waits for its workers would raise KeyboardInterrupt
wherever that wait is and break it half-way (a traceback, exit code 2, files half done),
and a second SIGTERM makes Locust run its whole shutdown again beside the first. While
:class:`Shutdown` guards those waits, either one cancels what is waited for: the requests
still in flight are cancelled (and recorded so) at once, and the first shutdown finishes.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from locust.rpc import Message
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from sagellm_users._users.service import Service

if TYPE_CHECKING:
    from locust.runners import Runner

__all__ = [
    "EXIT_WAIT_S",
    "FINAL_REPORT_WAIT_S",
    "Shutdown",
    "interrupt_main_greenlet",
    "quit_workers_first",
    "send_final_report",
]

log = logging.getLogger("sagellm_users")

FINAL_REPORT_WAIT_S = 15.0
"""How long, beyond ``--stop-timeout``, the master waits for its workers to stop their
users and send their final reports."""
POLL_S = 0.05
EXIT_WAIT_S = 60.0
"""How long a second shutdown (a second SIGTERM) lets the first finish writing the files
and exit before it goes on itself."""


def quit_workers_first(runner: MasterRunner, shutdown: Shutdown) -> Callable[..., None]:
    """Make ``runner.quit`` ask every worker to quit and wait for its final report, then
    quit as Locust does (Ctrl-C meanwhile goes to ``shutdown``). Idempotent once the
    runner has quit. Returns the ``worker_report`` listener that sees the final reports."""
    original = runner.quit
    finished: set[str] = set()
    done = False

    def on_report(client_id: str, data: dict[str, Any]) -> None:
        if data.get("user_count") == 0:
            finished.add(str(client_id))

    def quit() -> None:
        nonlocal done
        if done:
            return
        with shutdown.guarding():
            _quit_workers(runner, finished)
            original()
        done = True

    runner.quit = quit  # type: ignore[method-assign]
    return on_report


def _quit_workers(runner: MasterRunner, finished: set[str]) -> None:
    # As Locust's own quit: the master's test stops first (test_stopping, test_stop).
    runner.stop(send_stop_to_client=False)
    waiting = [node.id for node in runner.clients.all if node.state != STATE_MISSING]
    if not waiting:
        return
    finished.clear()  # from now on, a report with no user running is a worker's last
    for client_id in waiting:
        runner.server.send_to_client(Message("quit", None, client_id))
    limit = runner.environment.stop_timeout + FINAL_REPORT_WAIT_S
    log.info("sagellm: waiting for %d worker(s) to stop (at most %.0f s)", len(waiting), limit)
    deadline = time.monotonic() + limit
    while True:
        clients = runner.clients
        waiting = [
            client_id
            for client_id in waiting
            if client_id not in finished
            and client_id in clients
            and clients[client_id].state != STATE_MISSING
        ]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            break
        gevent.sleep(POLL_S)
    log.warning(
        "sagellm: %d worker(s) did not stop within %.0f s (%s); what they measured after "
        "their last report is not in the report",
        len(waiting),
        limit,
        ", ".join(waiting),
    )


def send_final_report(runner: WorkerRunner) -> None:
    """Send the master what this worker measured since its last report (its users are
    stopped): the master keeps it even when this worker quits on its own signal."""
    try:
        runner._send_stats()
    except Exception:  # the master is gone: nothing to tell, nothing to lose here
        log.debug("sagellm: the final report could not be sent to the master", exc_info=True)


class Shutdown(Service):
    """One process's shutdown (its role's ``quitting`` work, _users.roles) and the stopping of its
    users: a Ctrl-C or second SIGTERM meanwhile cancels the requests in flight at once
    instead of breaking either half-way.

    The count of requests in flight when the users start stopping is not a count of
    cancellations: Locust kills each user a little later (a kill per user, delivered by the
    event loop), and a request that ends meanwhile is recorded as it ended. So that count is
    logged as what is in flight, and once the users have stopped, what became of them:
    ``ended()`` gives the (finished, cancelled) requests recorded so far."""

    def __init__(
        self,
        runner: Runner | None,
        in_flight: Callable[[], int],
        ended: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self._runner = runner
        self._in_flight = in_flight
        self._ended = ended
        self._ended_at_stopping: tuple[int, int] | None = None
        self._done = Event()
        self._restores: list[Callable[[], None]] = []
        self.begun = False

    def guard(self) -> None:
        """From now until :meth:`unguard`, Ctrl-C calls :meth:`again` (no KeyboardInterrupt).
        Pairs nest; an unguard without its guard does nothing."""
        self._restores.append(_on_sigint(lambda: gevent.spawn(self.again)))

    def unguard(self) -> None:
        if self._restores:
            self._restores.pop()()

    def users_stopping(self) -> None:
        """The users are about to stop (a signal, --run-time, the web UI): say what happens
        to the requests in flight, and guard until they have stopped (test_stop)."""
        self.guard()
        if self._ended is not None:
            self._ended_at_stopping = self._ended()
        wait = 0.0 if self._runner is None else self._runner.environment.stop_timeout
        in_flight = self._in_flight()
        if wait and in_flight:
            log.info(
                "sagellm: stopping: waiting up to %g s for %d request(s) in flight "
                "(--stop-timeout; Ctrl-C cancels them)",
                wait,
                in_flight,
            )
        else:
            log.info(
                "sagellm: stopping: %d request(s) in flight; each one still running when its "
                "user stops is recorded as cancelled",
                in_flight,
            )

    def stopping(self) -> None:
        self.users_stopping()

    def stop(self) -> None:
        self.users_stopped()

    def users_stopped(self) -> None:
        """The users have stopped (test_stop): say what became of the requests that were
        in flight, as recorded, and end the guard :meth:`users_stopping` began."""
        before, self._ended_at_stopping = self._ended_at_stopping, None
        if before is not None and self._ended is not None:
            finished, cancelled = self._ended()
            log.info(
                "sagellm: users stopped: %d request(s) recorded as cancelled, %d finished "
                "while the users stopped",
                cancelled - before[1],
                finished - before[0],
            )
        self.unguard()

    @contextlib.contextmanager
    def guarding(self) -> Iterator[None]:
        self.guard()
        try:
            yield
        finally:
            self.unguard()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The shutdown's body, guarded."""
        self.begun = True
        try:
            with self.guarding():
                yield
        finally:
            self._done.set()

    def wait_for_exit(self) -> None:
        """For a second shutdown: until the first has exited the process (it writes the
        files right after its body), at most :data:`EXIT_WAIT_S` after its body ended."""
        self._done.wait()
        Event().wait(EXIT_WAIT_S)

    def again(self, *, signalled: bool = True) -> None:
        """A Ctrl-C or SIGTERM while stopping: cancel the requests in flight now. When there
        is nothing to cancel, say so only for a signal (Locust itself runs its shutdown a
        second time once the runner has quit)."""
        runner = self._runner
        if (
            runner is not None
            and not isinstance(runner, MasterRunner)
            and len(runner.user_greenlets)
        ):
            log.warning(
                "sagellm: stopping now: %d request(s) in flight are cancelled",
                self._in_flight(),
            )
            runner.user_greenlets.kill(block=False)
        elif signalled and isinstance(runner, MasterRunner):
            log.warning("sagellm: already stopping: waiting for the workers' final reports")
        elif signalled:
            log.warning("sagellm: already stopping: writing the results")


def interrupt_main_greenlet() -> None:
    """From now on Ctrl-C raises KeyboardInterrupt in the main greenlet only, where Locust
    catches it and shuts down. By default it is raised in whichever greenlet runs when the
    signal lands and kills it: under load that is often the master's message listener (its
    workers' final reports then never arrive) or a worker's heartbeat, each with a traceback.
    Does nothing but from the main greenlet of the main thread."""
    main = gevent.getcurrent()
    if main.parent is not None:
        return
    hub = gevent.get_hub()

    def handler(signum: int, frame: FrameType | None) -> None:
        if gevent.getcurrent() is main:
            raise KeyboardInterrupt
        hub.loop.run_callback(main.throw, KeyboardInterrupt)

    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, handler)


def _on_sigint(action: Callable[[], object]) -> Callable[[], None]:
    """Run ``action`` on SIGINT instead of raising KeyboardInterrupt, until the returned
    function is called (nothing changes off the main thread, where handlers cannot be set)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        action()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:
        return lambda: None
    if previous is None:  # set outside Python: Python's own is the one to go back to
        previous = signal.default_int_handler

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore
