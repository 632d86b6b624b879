"""One HTTP/1.1 connection: ``httptools`` parsing, keep-alive and pipelining.

Requests on a connection are answered strictly in order: a request that arrives (or is
pipelined) while another is being answered waits in a small queue, and reading pauses if that
queue grows, so a client cannot make the server buffer without limit. Chunked request bodies
are decoded by the parser. The connection knows nothing about routes; it hands each complete
:class:`Request` to a :class:`Handler` and is told when the response is done.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import traceback
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Protocol, cast

import httptools

from .generation import Generation
from .wire import error_body, simple_response

__all__ = ["Handler", "HttpConnection", "Request"]

_MAX_PIPELINED = 32
_os_write = os.write
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Request:
    """A fully received request. ``t_received`` is ``perf_counter()`` at its last byte."""

    __slots__ = ("authorization", "body", "keep_alive", "method", "path", "t_received")

    def __init__(
        self,
        *,
        method: bytes,
        path: bytes,
        authorization: bytes | None,
        body: bytes,
        keep_alive: bool,
        t_received: float,
    ) -> None:
        self.method = method
        self.path = path
        self.authorization = authorization
        self.body = body
        self.keep_alive = keep_alive
        self.t_received = t_received


class Handler(Protocol):
    """Answers requests; must eventually call ``conn.response_done()`` for each one."""

    def handle(self, conn: HttpConnection, request: Request) -> None: ...

    def connection_opened(self, conn: HttpConnection) -> None: ...

    def connection_closed(self, conn: HttpConnection) -> None: ...


class HttpConnection(asyncio.Protocol):
    """``asyncio.Protocol`` feeding ``httptools.HttpRequestParser``.

    ``pause_writing``/``resume_writing`` are recorded but do not stop generations: see
    :mod:`.generation` for why buffering is bounded anyway.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._fd = -1  # the socket, for direct token writes; -1 when not a plain socket
        self._queued = False  # the transport may hold bytes not yet sent
        self._closed = False
        self._busy = False
        self._in_dispatch = False
        self._reading_paused = False
        self._keep_alive = True
        self._pending: deque[Request] = deque()
        self._url = b""
        self._authorization: bytes | None = None
        self._expect_continue = False
        self._body: list[bytes] = []
        #: The generation answering the current request, cancelled if the client leaves.
        self.active: Generation | None = None
        self.writing_paused = False

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        # asyncio sets TCP_NODELAY only when the socket's proto is IPPROTO_TCP, and accepted
        # sockets report proto 0. Without it Nagle holds each token's small write until the
        # client ACKs the previous one, and delayed ACKs add ~40 ms to reused connections.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sock is not None and transport.get_extra_info("sslcontext") is None:
            self._fd = sock.fileno()
        self._handler.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "Protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._fail(400, f"Invalid HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._pending.clear()
        active, self.active = self.active, None
        if active is not None:
            active.cancel()
        self._handler.connection_closed(self)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False

    # httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._authorization = None
        self._expect_continue = False
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname == b"authorization":
            self._authorization = value
        elif lname == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True

    def on_headers_complete(self) -> None:
        if self._expect_continue and not self._busy and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        t = perf_counter()
        url = self._url
        q = url.find(b"?")
        path = url if q < 0 else url[:q]
        request = Request(
            method=self._parser.get_method(),
            path=path,
            authorization=self._authorization,
            body=b"".join(self._body),
            keep_alive=bool(self._parser.should_keep_alive()),
            t_received=t,
        )
        self._body = []
        self._pending.append(request)
        if len(self._pending) >= _MAX_PIPELINED and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True
        self._dispatch()

    # used by the handler ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send bytes now (asyncio buffers what the socket does not take)."""
        if not self._closed and self._transport is not None:
            self._transport.write(data)
            self._queued = True

    @property
    def stream_write(self) -> Callable[[bytes], None]:
        """The per-token hot path: :meth:`_write_direct` on a plain socket, else :meth:`write`."""
        return self.write if self._fd < 0 else self._write_direct

    def _write_direct(self, data: bytes) -> None:
        """One ``write(2)`` on the socket, skipping asyncio's ``transport.write`` bookkeeping.

        Order is kept: while the transport holds unsent bytes everything goes through it,
        and whatever the socket does not take now is handed to it. The descriptor is safe
        to use while the connection is open: asyncio closes it only after
        ``connection_lost`` (which sets ``_closed``) has run. Errors are left to the
        transport too, so a broken connection is reported the usual way.
        """
        if self._closed:
            return
        transport = self._transport
        assert transport is not None
        if self._queued:
            if transport.get_write_buffer_size():
                transport.write(data)
                return
            self._queued = False
        try:
            sent = _os_write(self._fd, data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            transport.write(data)
            return
        if sent != len(data):
            self._queued = True
            transport.write(data[sent:])

    def response_done(self) -> None:
        """The current response is complete: close, or answer the next request."""
        self.active = None
        self._busy = False
        if not self._keep_alive:
            self.close()
            return
        self._dispatch()

    def close(self) -> None:
        """Close after flushing what was written."""
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.close()

    def reset(self) -> None:
        """Drop the connection with a TCP reset (RST), discarding anything unsent: what a
        crashed server or a proxy killing the connection looks like to a client."""
        transport = self._transport
        if transport is None or self._closed:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._closed = True
        self._pending.clear()
        transport.abort()

    @property
    def closed(self) -> bool:
        return self._closed

    # internals ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        # A loop rather than recursion: a handler may finish synchronously, calling
        # response_done() from inside handle().
        if self._in_dispatch:
            return
        self._in_dispatch = True
        try:
            while self._pending and not self._busy and not self._closed:
                request = self._pending.popleft()
                if self._reading_paused and len(self._pending) < _MAX_PIPELINED // 2:
                    assert self._transport is not None
                    self._transport.resume_reading()
                    self._reading_paused = False
                self._busy = True
                self._keep_alive = request.keep_alive
                try:
                    self._handler.handle(self, request)
                except Exception:  # a bug in the mock: say so, and drop this connection
                    traceback.print_exc()
                    self._busy = False
                    self._fail(500, "Internal error in the mock server")
        finally:
            self._in_dispatch = False

    def _fail(self, status: int, message: str) -> None:
        if self._closed:
            return
        self._pending.clear()
        if not self._busy:  # never splice an error into a response already under way
            err_type = "BadRequestError" if status < 500 else "InternalServerError"
            body = error_body(message, err_type, status)
            self.write(simple_response(status, body, keep_alive=False))
        self.close()
