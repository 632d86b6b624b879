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

from typing import TYPE_CHECKING, Any

from sagellm_users.backends.http import HttpTransport, Timeouts
from sagellm_users.errors import ConfigError, LLMError
from sagellm_users.users.refusal import refuse

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.runners import Runner

    from sagellm_users.users.options import LLMOptions
    from sagellm_users.users.runtime import LLMRuntime

__all__ = ["host_problem", "install_host_check"]


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


def install_host_check(environment: Environment, runtime: LLMRuntime, runner: Runner) -> None:
    """Check the host at every test start where load is sent; call after the listener
    that re-reads the options (it clears the previous start's error)."""

    def check(**_kw: Any) -> None:
        host = environment.host
        if runtime.options.skip_host_check or not host:
            return
        problem = host_problem(host, runtime.options)
        if problem is not None:
            refuse(runtime, runner, problem)

    environment.events.test_start.add_listener(check)
