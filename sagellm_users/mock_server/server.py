"""Process lifecycle: bind, announce readiness, serve until told to stop.

Readiness protocol (launchers and tests depend on it): once the socket listens, exactly one
line goes to stdout, flushed: ``{"event": "ready", "url": "http://127.0.0.1:PORT", "pid":
PID}``. Human logs go to stderr. SIGINT and SIGTERM stop the server with exit status 0;
with ``exit_on_stdin_eof`` so does the end of stdin, so a server started with a pipe as its
stdin dies with the process holding the other end.

With ``workers > 1`` the lifecycle is the supervisor's in :mod:`.workers`.
"""

from __future__ import annotations

import sys

from .config import MockServerConfig
from .process import (
    ReadyCallback,
    bind_socket,
    describe,
    new_event_loop,
    print_ready,
    raise_open_files_limit,
    server_url,
)
from .runner import run_server
from .workers import serve_workers

__all__ = ["serve"]


def serve(config: MockServerConfig, *, on_ready: ReadyCallback | None = None) -> int:
    """Run the server in this process until SIGINT/SIGTERM (blocking); returns an exit code.

    ``on_ready`` receives the server's URL once it listens; by default the readiness line
    is printed to stdout. Meant to be a process's main job: it takes over SIGINT/SIGTERM
    (and blocks them once shutdown begins). To embed a server in a running event loop, use
    :func:`.runner.run_server` with your own stop event instead.
    """
    ready = print_ready if on_ready is None else on_ready
    raise_open_files_limit()
    sock = bind_socket(config.host, config.port)
    if config.workers > 1:
        return serve_workers(config, sock, ready)
    sys.stderr.write(describe(config, server_url(sock, tls=config.https)))
    loop = new_event_loop()
    try:
        loop.run_until_complete(
            run_server(
                config,
                sock,
                on_ready=ready,
                watch_stdin=config.exit_on_stdin_eof,
                own_process=True,
            )
        )
    finally:
        loop.close()
        sock.close()
    return 0
