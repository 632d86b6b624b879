"""Stopping a test that a load-generating process cannot run, and telling the master.

Some checks can only run where the load is sent, once the test starts (a worker's share of
the users, the host it was given): the process stops its test with one ``sagellm:`` line
in its log. A worker also sends the line to the master, which logs it, stops the test on
every worker and ends with exit code 1, so the run does not end 0 having sent nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from locust.runners import WorkerRunner

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.rpc import Message
    from locust.runners import MasterRunner, Runner

    from sagellm_users._users.runtime import LLMRuntime

__all__ = ["REFUSED_MESSAGE", "refusal_relay", "refuse"]

log = logging.getLogger("sagellm_users")

REFUSED_MESSAGE = "sagellm_refused"


def refuse(runtime: LLMRuntime, runner: Runner, problem: str) -> None:
    """Stop this process's test because of ``problem`` (said once per start)."""
    if runtime.options_error == problem:
        return
    runtime.options_error = problem
    log.error("sagellm: %s; the test was stopped", problem)
    if isinstance(runner, WorkerRunner):
        runner.send_message(REFUSED_MESSAGE, {"problem": problem})
    gevent.spawn(runner.stop)


def refusal_relay(runtime: LLMRuntime, master: MasterRunner) -> Callable[..., None]:
    """On the master, the handler of :data:`REFUSED_MESSAGE`: a worker's refusal stops the
    test and sets exit code 1."""

    def refused(environment: Environment, msg: Message, **_kw: Any) -> None:
        problem = str(msg.data["problem"])
        if runtime.options_error != problem:
            runtime.options_error = problem
            log.error("sagellm: %s; the test was stopped", problem)
            gevent.spawn(master.stop)

    return refused
