"""``--workers N``: one listening socket, N forked event-loop processes, one supervisor.

The parent binds once, forks the workers (each with its own event loop, all accepting on the
shared socket, worker ``i`` seeded with ``seed + i``), announces readiness, forwards
SIGINT/SIGTERM to them and waits. If a worker dies on its own the others are stopped too and
the exit status is 1. Workers also watch a pipe from the parent, so they exit if the parent
dies without a chance to signal them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import traceback

from .config import MockServerConfig
from .process import (
    STOP_SIGNALS,
    ReadyCallback,
    block_stop_signals,
    describe,
    new_event_loop,
    server_url,
    watch_stdin_eof,
)
from .runner import run_server

__all__ = ["serve_workers"]


def _run_worker(config: MockServerConfig, sock: socket.socket, index: int, parent_fd: int) -> int:
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(
            run_server(
                config, sock, seed=config.seed + index, parent_fd=parent_fd, own_process=True
            )
        )
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        loop.close()
    return 0


def _fork_workers(
    config: MockServerConfig, sock: socket.socket, parent_r: int, parent_w: int
) -> set[int]:
    """Fork the workers; in a child this never returns (it exits with the worker's status)."""
    children: set[int] = set()
    sys.stdout.flush()
    sys.stderr.flush()
    for index in range(config.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(parent_w)
                code = _run_worker(config, sock, index, parent_r)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.add(pid)
    return children


class _Supervisor:
    """Forwards stop requests to the workers and reaps them."""

    def __init__(self, children: set[int]) -> None:
        self.children = children
        self.stopping = False

    def stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """Signal handler (main thread) and stdin-EOF callback (watcher thread)."""
        if threading.current_thread() is threading.main_thread():
            block_stop_signals()
        self.stopping = True
        for child in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    def wait(self) -> int:
        """Reap every worker; 1 if any died on its own or exited with an error, else 0."""
        failed = False
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.children.discard(pid)
            if not self.stopping:  # a worker died on its own: take the rest down too
                failed = True
                self.stop()
            elif os.waitstatus_to_exitcode(status) != 0:
                failed = True
        return 1 if failed else 0


def serve_workers(config: MockServerConfig, sock: socket.socket, ready: ReadyCallback) -> int:
    """Serve with ``config.workers`` processes on ``sock``; returns the exit status."""
    url = server_url(sock, tls=config.https)
    parent_r, parent_w = os.pipe()
    # Until every process has its handlers, a stop signal must wait rather than kill.
    block_stop_signals()
    supervisor = _Supervisor(_fork_workers(config, sock, parent_r, parent_w))
    os.close(parent_r)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    sys.stderr.write(describe(config, url))
    ready(url)
    if config.exit_on_stdin_eof:
        watch_stdin_eof(supervisor.stop)
    try:
        return supervisor.wait()
    finally:
        block_stop_signals()
        os.close(parent_w)
        sock.close()
