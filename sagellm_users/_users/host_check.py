"""Connects to the server under test once before any user starts.

A refused or unresolvable ``--host`` otherwise turns into tens of thousands of instant
failures a second from every user, at full CPU, and Locust's closing advice is to add
processes. One connection (TCP, and TLS for https) is opened and closed: on the local
runner and the master at start (one line, exit code 1), and on every load-generating process
at each test start, with the host it will send to then (a worker learns it from the
master; the web UI's form may change it), where a refusal stops the test with one line.
``--skip-host-check`` skips both, e.g. for a server that comes up after the users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagellm_users._backends.http import HttpTransport, Timeouts
from sagellm_users._errors import ConfigError, LLMError
from sagellm_users._users.refusal import refuse
from sagellm_users._users.service import Service

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.runners import Runner

    from sagellm_users._users.options import LLMOptions
    from sagellm_users._users.runtime import LLMRuntime

__all__ = ["HostCheck", "host_problem"]


def host_problem(host: str, options: LLMOptions) -> str | None:
    """None when ``host`` accepts a connection; else one line naming it and the fix."""
    try:
        transport = HttpTransport(
            host, timeouts=Timeouts(connect=options.connect_timeout), verify=options.verify
        )
    except ConfigError as exc:
        return f"--host: {exc}"
    try:
        transport.open_connections(1)
    except LLMError as exc:
        return (
            f"--host {transport.url('')}: {exc}; start the server or fix --host "
            "(--skip-host-check starts the users anyway)"
        )
    finally:
        transport.close()
    return None


class HostCheck(Service):
    """Checks the host at every test start where load is sent; it must start after the
    options are read again (that clears the previous start's error)."""

    def __init__(self, environment: Environment, runtime: LLMRuntime, runner: Runner) -> None:
        self._environment = environment
        self._runtime = runtime
        self._runner = runner

    def start(self) -> None:
        host = self._environment.host
        options = self._runtime.options
        if options.skip_host_check or not host:
            return
        problem = host_problem(host, options)
        if problem is not None:
            refuse(self._runtime, self._runner, problem)
