"""Run one mock server on an already bound socket inside the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket

from .app import MockApp
from .config import MockServerConfig
from .connection import HttpConnection
from .process import (
    BACKLOG,
    STOP_SIGNALS,
    ReadyCallback,
    block_stop_signals,
    server_url,
    watch_stdin_eof,
)

__all__ = ["run_server"]


async def run_server(
    config: MockServerConfig,
    sock: socket.socket,
    *,
    seed: int | None = None,
    on_ready: ReadyCallback | None = None,
    watch_stdin: bool = False,
    parent_fd: int | None = None,
    stop: asyncio.Event | None = None,
    own_process: bool = False,
) -> None:
    """Serve on ``sock`` in the running loop until ``stop`` is set.

    ``own_process``: this server is the process's main job, so SIGINT/SIGTERM stop it and
    are blocked once shutdown begins. ``parent_fd``: the read end of a pipe whose end of
    file means "exit". ``watch_stdin``: stdin's end of file means "exit".
    """
    loop = asyncio.get_running_loop()
    stop_event = stop or asyncio.Event()

    def shutdown() -> None:
        if own_process:
            block_stop_signals()
        stop_event.set()

    app = MockApp(config, loop, seed=seed, port=int(sock.getsockname()[1]))
    server = await loop.create_server(
        lambda: HttpConnection(app), sock=sock, backlog=BACKLOG, ssl=config.ssl_context()
    )
    installed: list[signal.Signals] = []
    if own_process:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, shutdown)
            installed.append(signum)
        # Workers start with these blocked (see .workers): a signal that arrived
        # while this process was starting is delivered now, to the handlers above.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if parent_fd is not None:

        def on_parent_gone() -> None:
            loop.remove_reader(parent_fd)
            shutdown()

        loop.add_reader(parent_fd, on_parent_gone)
    if watch_stdin:

        def on_eof() -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(shutdown)

        watch_stdin_eof(on_eof)
    if on_ready is not None:
        on_ready(server_url(sock, tls=config.https))
    try:
        await stop_event.wait()
    finally:
        if own_process:
            block_stop_signals()
        server.close()
        for conn in list(app.connections):
            conn.close()
        app.pacer.close()
        if app.send_log is not None:
            app.send_log.close()
        for signum in installed:
            loop.remove_signal_handler(signum)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)
