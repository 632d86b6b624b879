"""The real ``locust`` command as a subprocess, started the same way by every e2e test.

With ``--processes`` the master binds a free port (and its forked workers connect to it),
never Locust's default 5557: two runs at once on one machine would otherwise share it, and
a worker of one would join, or report to, the other's master. Each ``locust`` started here
runs in a session of its own, so :func:`kill_locust` ends its forked workers with it; a
worker whose master is killed alone runs on for Locust's master heartbeat timeout (a
minute), its users failing against the master's embedded mock, gone with its master.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "ROOT",
    "free_port",
    "kill_locust",
    "locust_args",
    "locust_env",
    "run_locust",
    "start_locust",
]

ROOT = Path(__file__).resolve().parents[2]


def locust_env() -> dict[str, str]:
    """This environment, unbuffered, without an API key the tests did not set."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("OPENAI_API_KEY", None)
    return env


def free_port() -> int:
    """A port nothing listens on now (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def locust_args(args: Sequence[str]) -> list[str]:
    """``args``, plus a free master port when they start forked workers and name none."""
    if "--processes" not in args or "--master-bind-port" in args:
        return list(args)
    port = str(free_port())
    return [*args, "--master-bind-port", port, "--master-port", port]


def run_locust(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``locust ARGS`` from the repository root to its end (killed, workers and all,
    if it outlasts ``timeout``)."""
    command = [sys.executable, "-m", "locust", *locust_args(args)]
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=locust_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_locust(process)
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def start_locust(*args: str) -> subprocess.Popen[str]:
    """Start ``locust ARGS``; its stdout and stderr come merged, as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "locust", *locust_args(args)],
        cwd=ROOT,
        env=locust_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_locust(process: subprocess.Popen[str]) -> None:
    """Kill a ``locust`` started here that still runs, its forked workers with it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
