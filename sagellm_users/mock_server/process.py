"""Process plumbing shared by the single-process server and its workers.

Binding, the readiness line, the start-up log line, the optional uvloop, stdin watching and
the handling of stop signals during shutdown live here so that :mod:`.server` and
:mod:`.workers` read as the two lifecycles they are.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

from .config import MockServerConfig
from .faults import FAULT_RATE_FIELDS, fault_for_field

if sys.platform != "win32":
    import resource

__all__ = [
    "BACKLOG",
    "STOP_SIGNALS",
    "ReadyCallback",
    "bind_socket",
    "block_stop_signals",
    "describe",
    "new_event_loop",
    "print_ready",
    "raise_open_files_limit",
    "server_url",
    "watch_stdin_eof",
]

BACKLOG = 4096
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}

ReadyCallback = Callable[[str], None]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The stdlib's loop, on purpose: uvloop (libuv) rounds timers to whole milliseconds and
    fires them up to 1 ms early, which a mock that paces tokens to 0.1 ms cannot afford;
    measured, it saved only 11% of the mock's CPU per streamed event."""
    return asyncio.new_event_loop()


MIN_OPEN_FILES = 65536
"""A stream is a connection, and thousands of streams is the point: above Locust's own
10,000, so one mock can serve a load test of 10,000 users and more (the client raises its
limit to the hard one)."""


def raise_open_files_limit() -> None:
    """Lift the soft open-files limit towards the hard one, as Locust does for its side.

    A default soft limit of 1024 would refuse connections long before the mock is busy;
    when the system does not allow more, connections beyond the limit are refused and the
    clients report it."""
    if sys.platform == "win32":  # no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MIN_OPEN_FILES if hard == resource.RLIM_INFINITY else min(MIN_OPEN_FILES, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (OSError, ValueError):
            sys.stderr.write(
                f"sagellm-mock-server: open-files limit {soft} could not be raised to "
                f"{wanted}; raise it (ulimit -n) to serve that many streams\n"
            )


def print_ready(url: str) -> None:
    """Write the readiness line to stdout and flush it."""
    line = json.dumps({"event": "ready", "url": url, "pid": os.getpid()})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    sock.setblocking(False)
    return sock


def server_url(sock: socket.socket, *, tls: bool = False) -> str:
    """The URL clients should use; wildcard binds are advertised as loopback."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def describe(config: MockServerConfig, url: str) -> str:
    """The one stderr line logged at start: what is simulated, and where."""
    c = config
    parts = [
        f"serving {c.model!r} on {url} (pid {os.getpid()}, workers {c.workers})",
        f"ttft {c.ttft_ms:g}±{c.ttft_jitter_ms:g} ms +{c.ttft_per_input_token_ms:g} ms/input token",
        f"tbt {c.tbt_ms:g}±{c.tbt_jitter_ms:g} ms +{c.tbt_per_running_ms:g} ms/running",
        f"max_concurrency {c.max_concurrency or 'unlimited'}",
        "faults " + _faults(c),
        f"seed {c.seed}",
    ]
    return "sagellm-mock-server: " + "; ".join(parts) + "\n"


def _faults(config: MockServerConfig) -> str:
    rates = [
        f"{fault_for_field(name).value}={getattr(config, name):g}"
        for name in FAULT_RATE_FIELDS
        if getattr(config, name)
    ]
    return " ".join(rates) if rates else "none"


def block_stop_signals() -> None:
    """From now on SIGINT/SIGTERM stay pending (and die with the process).

    Shutting down restores the default dispositions (the loop removes its handlers, the
    interpreter resets them while finalising); a second signal in that window, such as a
    launcher's terminate() right after it closed our stdin, would otherwise kill the
    process and turn a clean exit into "killed by SIGTERM".
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def watch_stdin_eof(on_eof: Callable[[], None]) -> None:
    """Call ``on_eof`` (from a daemon thread) once stdin reaches end of file."""

    def run() -> None:
        # This thread must never be the one a SIGINT/SIGTERM is delivered to.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        on_eof()

    threading.Thread(target=run, name="sagellm-mock-stdin", daemon=True).start()
