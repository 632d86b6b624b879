"""What a misbehaving gateway in front of the engine answers: the ``huge_error``,
``endless_error`` and ``huge_header`` faults (see :mod:`.faults`).

Real proxies do these: an upstream failure rendered as an error page of many megabytes; a
chunked error body that never ends (a proxy relaying a broken upstream, a debug page
looping); a response head bloated by one header line (a cookie or trace header grown
without bound). Each is answered at once, without taking a capacity slot. A client must
read none of them whole: it keeps a bounded excerpt, or fails the request, and closes the
connection.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import TYPE_CHECKING

from .wire import error_body, http_chunk, response_head, simple_response

if TYPE_CHECKING:
    from .connection import HttpConnection

__all__ = ["EndlessErrorBody", "huge_error_response", "huge_header_response"]

_MESSAGE = "Injected upstream failure; gateway diagnostics follow: "
_GATEWAY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>\n"
)
#: One piece of the endless page: a 16 KiB chunk, written every _ENDLESS_INTERVAL_S.
_ENDLESS_CHUNK = http_chunk(_GATEWAY_PAGE + b" " * (16 * 1024 - len(_GATEWAY_PAGE)))
_ENDLESS_INTERVAL_S = 0.002


@lru_cache(maxsize=4)
def _huge_error_body(size: int) -> bytes:
    """vLLM's error body, its message padded so the whole body is about ``size`` bytes."""
    pad = max(0, size - len(error_body(_MESSAGE, "InternalServerError", 500)))
    return error_body(_MESSAGE + "x" * pad, "InternalServerError", 500)


def huge_error_response(size: int, keep_alive: bool) -> bytes:
    """A 500 whose JSON error body is ``size`` bytes long (with its content-length)."""
    return simple_response(500, _huge_error_body(size), keep_alive=keep_alive)


@lru_cache(maxsize=4)
def _trace(size: int) -> bytes:
    return b"t" * size


def huge_header_response(size: int, keep_alive: bool) -> bytes:
    """A 502 whose head carries one ``x-gateway-trace`` header of ``size`` bytes."""
    return (
        response_head(
            502,
            content_type=b"text/html",
            length=len(_GATEWAY_PAGE),
            keep_alive=keep_alive,
            extra=((b"x-gateway-trace", _trace(size)),),
        )
        + _GATEWAY_PAGE
    )


class EndlessErrorBody:
    """A 502 whose chunked HTML body never ends: one 16 KiB chunk every 2 ms (about
    8 MB/s) while the client reads, until it closes the connection. Bytes keep coming, so
    no read timeout ever fires; a chunk is skipped while the socket's buffer is full."""

    __slots__ = ("_conn", "_handle", "_loop")

    def __init__(self, conn: HttpConnection, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Write the head and start the body (the connection cancels it when it closes)."""
        head = response_head(
            502, content_type=b"text/html; charset=utf-8", length=None, keep_alive=True
        )
        self._conn.write(head)
        self._tick()

    def _tick(self) -> None:
        conn = self._conn
        if conn.closed:
            self._handle = None
            return
        if not conn.writing_paused:
            conn.write(_ENDLESS_CHUNK)
        self._handle = self._loop.call_later(_ENDLESS_INTERVAL_S, self._tick)

    def cancel(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()
