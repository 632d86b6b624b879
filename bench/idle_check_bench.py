"""Cost of checking one idle pooled connection before reuse, per way of checking.

The transport checks every idle connection it takes from the pool (has the server closed
it?) without yielding to the event loop. ``select()`` cannot take a file descriptor >= 1024;
this compares what can: a fresh ``poll`` object, a reused one, and a non-blocking
``recv(1, MSG_PEEK)`` (whose idle case raises ``BlockingIOError``).

    python bench/idle_check_bench.py
"""

from __future__ import annotations

import select
import socket
import timeit
from collections.abc import Callable

from gevent import socket as gsocket
from gevent.monkey import get_original

CALLS = 200_000


def main() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    sock = gsocket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    original_select = get_original("select", "select")
    original_poll = get_original("select", "poll")
    shared = original_poll()
    raw = sock._sock if hasattr(sock, "_sock") else sock
    peek_flags = socket.MSG_PEEK | socket.MSG_DONTWAIT

    def with_select() -> bool:
        return bool(original_select([sock], (), (), 0)[0])

    def fresh_poll() -> bool:
        poller = original_poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    def shared_poll() -> bool:
        fd = sock.fileno()
        shared.register(fd, select.POLLIN)
        try:
            return bool(shared.poll(0))
        finally:
            shared.unregister(fd)

    def peek() -> bool:
        try:
            raw.recv(1, peek_flags)
        except BlockingIOError:
            return False
        return True

    checks: list[tuple[str, Callable[[], bool]]] = [
        ("select (fd < 1024 only)", with_select),
        ("poll, fresh object", fresh_poll),
        ("poll, shared object", shared_poll),
        ("recv(1, MSG_PEEK)", peek),
    ]
    base = None
    for name, check in checks:
        assert check() is False  # an idle, healthy connection
        seconds = min(timeit.repeat(check, number=CALLS, repeat=5)) / CALLS
        base = base or seconds
        print(f"{name:26s} {seconds * 1e9:7.0f} ns per check  ({seconds / base:.2f}x select)")
    for s in (sock, peer, listener):
        s.close()


if __name__ == "__main__":
    main()
