"""Runs sagellm-locust users inside the test process with Locust's own runners.

A test builds an :class:`Environment` from real command-line arguments (parsed by Locust's
parser with our options added), runs users until a number of requests have finished (an
event, not a sleep), and reads the runtime's records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gevent
from gevent.event import Event
from locust import User
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
from locust.env import Environment
from locust.event import Events
from locust.runners import LocalRunner, MasterRunner, WorkerRunner
from locust.web import WebUI

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics import RequestRecord
from sagellm_users._users import LLMRuntime, install, runtime_of
from sagellm_users._users.options import add_arguments


def parse_args(args: Sequence[str]) -> Any:
    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    setup_parser_arguments(parser)
    add_arguments(parser)
    return parser.parse_args(list(args))


class LocalRun:
    """One in-process test run: environment, local runner and a record counter."""

    def __init__(
        self,
        user_classes: Sequence[type[User]],
        args: Sequence[str],
        web_ui: bool = False,
        web_login: bool = False,
    ) -> None:
        options = parse_args(args)
        self.environment = Environment(
            user_classes=list(user_classes),
            events=Events(),
            parsed_options=options,
            host=options.host,
        )
        install(self.environment.events)
        self.runner: LocalRunner = self.environment.create_local_runner()
        self.web_ui: WebUI | None = None
        if web_ui:
            self.web_ui = self.environment.create_web_ui("127.0.0.1", 0, web_login=web_login)
        self.environment.events.init.fire(
            environment=self.environment, runner=self.runner, web_ui=self.web_ui
        )
        self._target = 0
        self._reached = Event()
        self.records = capture_submitted(self.environment, then=self._count)

    def _count(self) -> None:
        if len(self.records) >= self._target:
            self._reached.set()

    @property
    def runtime(self) -> LLMRuntime:
        return runtime_of(self.environment)

    def wait_for(self, requests: int, timeout: float = 60.0) -> bool:
        """Block (cooperatively) until ``requests`` requests have finished."""
        self._target = requests
        if len(self.records) >= requests:
            return True
        self._reached.clear()
        return bool(self._reached.wait(timeout))

    def finish(self) -> None:
        """Stop the users and run the plugin's shutdown (records file, embedded mock)."""
        self.runner.quit()
        self.environment.events.quitting.fire(environment=self.environment)

    def run_until(self, requests: int, users: int, timeout: float = 60.0) -> list[RequestRecord]:
        """Start ``users`` users and stop once ``requests`` requests have finished."""
        self._target = requests
        self.runner.start(users, spawn_rate=users)
        finished = self.wait_for(requests, timeout)
        self.finish()
        assert finished, f"only {len(self.records)} of {requests} requests within {timeout} s"
        return self.records


def capture_submitted(
    environment: Environment, then: Callable[[], None] | None = None
) -> list[RequestRecord]:
    """A list that receives every record the environment's runtime is given, in order
    (wrapping its ``submit``); ``then`` is called after each one is submitted."""
    runtime = runtime_of(environment)
    seen: list[RequestRecord] = []
    original = runtime.submit

    def submit(record: RequestRecord, exception: BaseException | None = None) -> None:
        seen.append(record)
        original(record, exception)
        if then is not None:
            then()

    runtime.submit = submit  # type: ignore[method-assign]
    return seen


def stats_row(environment: Environment, method: str, name: str) -> Any:
    return environment.stats.entries[(name, method)]


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Yield to other greenlets until ``condition`` holds (bounded), e.g. a worker joined."""
    with gevent.Timeout(timeout, False):
        while not condition():
            gevent.sleep(0.01)
    return condition()


def make_env(args: list[str], user: type[User] = OpenAIChatUser) -> Environment:
    """An environment with sagellm installed, for runners a test creates itself
    (master and workers)."""
    options = parse_args(args)
    env = Environment(
        user_classes=[user], events=Events(), parsed_options=options, host=options.host
    )
    install(env.events)
    return env


def start_cluster(
    args: list[str], workers: int = 2, *, set_up_master_last: bool = False
) -> tuple[Environment, MasterRunner, list[WorkerRunner]]:
    """An in-process master and ``workers`` workers with sagellm installed, all connected.

    ``set_up_master_last``: the master's init event fires only once the workers joined,
    as with Locust's ``--processes`` and web UI."""
    master_env = make_env(args)
    master = master_env.create_master_runner("127.0.0.1", 0)
    if not set_up_master_last:
        master_env.events.init.fire(environment=master_env, runner=master, web_ui=None)
    assert isinstance(master, MasterRunner)
    started: list[WorkerRunner] = []
    for _ in range(workers):
        env = make_env(args)
        worker = env.create_worker_runner("127.0.0.1", master.server.port)
        env.events.init.fire(environment=env, runner=worker, web_ui=None)
        started.append(worker)
    assert wait_until(lambda: master.worker_count == workers)
    if set_up_master_last:
        master_env.events.init.fire(environment=master_env, runner=master, web_ui=None)
    return master_env, master, started


__all__ = ["LocalRun", "make_env", "parse_args", "start_cluster", "stats_row", "wait_until"]
