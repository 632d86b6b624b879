"""The asyncio transport: pooled HTTP/1.1 connections whose every read is stamped on arrival.

The bytes mean what :mod:`sagellm_users._backends.http_core` says, as for the gevent
transport; only the reading differs. A protocol's ``data_received`` stamps each read with
``perf_counter()`` the moment the event loop takes it off the socket, before the task that
consumes it is even scheduled, so a busy task or a slow consumer never moves a token's time.
Reads wait in a queue bounded by flow control (the socket is paused past 1 MiB unread).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from time import perf_counter

from sagellm_users._backends.base import HttpTimes
from sagellm_users._backends.endpoint import Timeouts, parse_base_url, tls_context
from sagellm_users._backends.http import PoolState
from sagellm_users._backends.http_core import (
    ResponseReader,
    closed_error,
    encode_request,
    header_block,
    reset_error,
    timeout_error,
    too_large_body,
)
from sagellm_users._errors import ConfigError, ConnectError, ConnectTimeout, LLMError
from sagellm_users._limits import ReadLimits
from sagellm_users._redact import register_header_secrets

__all__ = ["AsyncExchange", "AsyncHttpTransport"]

_PAUSE_BYTES = 1 << 20
_RESUME_BYTES = 1 << 18


class _Connection(asyncio.Protocol):
    """One connection: reads queue here, stamped, until the exchange takes them."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._reads: deque[tuple[float, bytes]] = deque()
        self._queued = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._reads.append((perf_counter(), data))
        self._queued += len(data)
        if self._queued > _PAUSE_BYTES and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> tuple[float, bytes]:
        """The next read and its time; ``b""`` once the server has closed."""
        while not self._reads:
            if self.closed:
                if self._error is not None:
                    raise self._error
                return perf_counter(), b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        t, data = self._reads.popleft()
        self._queued -= len(data)
        if self._paused and self._queued < _RESUME_BYTES and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return t, data

    @property
    def reusable(self) -> bool:
        """Idle and quiet: nothing unasked was read, the server has not closed."""
        transport = self.transport
        return not (self.closed or self._reads or transport is None or transport.is_closing())

    def write(self, data: bytes) -> bool:
        """Queue ``data``; False when the connection is already closing."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class AsyncHttpTransport:
    """A pool of keep-alive connections to one origin, for one event loop; as
    :class:`~sagellm_users._backends.http.HttpTransport`, at most ``max_idle`` kept idle."""

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        max_idle: int = 256,
        limits: ReadLimits | None = None,
    ) -> None:
        if max_idle < 0:
            raise ConfigError(f"max_idle must be >= 0, got {max_idle}")
        self.origin = parse_base_url(base_url)
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or ReadLimits()
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._in_use = 0
        self._opened = 0
        self._closed = False
        self._ssl = tls_context(verify) if self.origin.scheme == "https" else None
        register_header_secrets(headers or {})  # an echo of any of them is scrubbed from errors
        self._header_block = header_block(self.origin.host_header, headers)

    def __repr__(self) -> str:  # never shows headers: they may hold an API key
        o = self.origin
        return f"AsyncHttpTransport({o.scheme}://{o.host_header}{o.prefix}, idle={len(self._idle)})"

    def url(self, path: str) -> str:
        return self.origin.url(path)

    def exchange(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncExchange:
        """Prepare a request; no I/O happens until :meth:`AsyncExchange.send`."""
        if self._closed:
            raise ConnectError("transport is closed")
        target = self.origin.target(path)
        return AsyncExchange(
            self, encode_request(method, target, self._header_block, headers, body)
        )

    def pool_state(self) -> PoolState:
        return PoolState(len(self._idle), self._in_use, self._opened, self.max_idle, self._closed)

    async def _acquire(self) -> tuple[_Connection, float | None, float | None]:
        """A pooled connection (setup times None) or a new one, with its setup seconds and
        the TLS handshake's part of them; an idle one the server closed, or that holds
        bytes nobody asked for, is dropped."""
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.reusable:
                self._in_use += 1
                return connection, None, None
            connection.close()
        return await self._acquire_new()

    async def _acquire_new(self) -> tuple[_Connection, float, float | None]:
        started = perf_counter()
        connection, tls_s = await self._connect()
        self._in_use += 1
        return connection, perf_counter() - started, tls_s

    async def _connect(self) -> tuple[_Connection, float | None]:
        """A new connection and its TLS handshake's seconds (None over plain TCP): the
        handshake is started apart from the TCP connect so that it is timed apart."""
        o = self.origin
        loop = asyncio.get_running_loop()
        what = "connecting to"
        tls_s: float | None = None
        try:
            async with asyncio.timeout(self.timeouts.connect):
                transport, connection = await loop.create_connection(_Connection, o.host, o.port)
                if self._ssl is not None:
                    what = "TLS handshake with"
                    started = perf_counter()
                    try:
                        secure = await loop.start_tls(
                            transport, connection, self._ssl, server_hostname=o.host
                        )
                    except BaseException:
                        transport.close()
                        raise
                    tls_s = perf_counter() - started
                    if secure is None:  # the connection closed during the handshake
                        raise ConnectionResetError("the connection closed during the handshake")
                    connection.transport = secure
        except TimeoutError:
            raise ConnectTimeout(
                f"{what} {o.host_header} took longer than {self.timeouts.connect:g} s"
            ) from None
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS handshake with {o.host_header} failed: {exc}") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if tls_s is None and what != "connecting to":
                raise ConnectError(f"TLS handshake with {o.host_header} failed: {reason}") from None
            raise ConnectError(f"cannot connect to {o.host_header}: {reason}") from None
        self._opened += 1
        return connection, tls_s

    def _release(self, connection: _Connection) -> None:
        self._in_use -= 1
        if self._closed or len(self._idle) >= self.max_idle or not connection.reusable:
            connection.close()
        else:
            self._idle.append(connection)

    def _discard(self, connection: _Connection) -> None:
        self._in_use -= 1
        connection.close()

    def close(self) -> None:
        """Close idle connections now; busy ones close when their response ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class AsyncExchange:
    """One request and its response on one connection, as
    :class:`~sagellm_users._backends.exchange.HttpExchange` is for gevent."""

    def __init__(self, transport: AsyncHttpTransport, request: bytes) -> None:
        self._transport = transport
        self._request = request
        self._connection: _Connection | None = None
        self._response = ResponseReader(transport.limits)
        self._deadline: float | None = None
        self._t_read = 0.0
        self._body_bytes = 0
        self.t_send: float | None = None
        self.connect_s: float | None = None
        self.times = HttpTimes()
        self.t_done: float | None = None
        self.answered = False
        self.status: int | None = None
        self.reason = ""
        self.headers: dict[str, str] = {}

    @property
    def limits(self) -> ReadLimits:
        return self._transport.limits

    async def send(self) -> None:
        """Write the request and read the status line and headers. A pooled connection
        found closed at the write is replaced once (the request never left)."""
        transport = self._transport
        times = self.times
        connection, self.connect_s, times.tls_s = await transport._acquire()
        self._connection = connection
        if not self._write(connection):
            self._connection = None
            transport._discard(connection)
            if self.connect_s is not None:
                raise ConnectError("the server closed the connection before answering")
            connection, self.connect_s, times.tls_s = await transport._acquire_new()
            self._connection = connection
            if not self._write(connection):
                self._abort()
                raise ConnectError("the server closed the connection before answering")
        response = self._response
        first = True
        while not response.head_done:
            data = await self._recv(before_answer=first)
            if not data:
                self._abort()
                raise closed_error(first, False, 0)
            first = False
            self._feed(response.feed_head, data)
        times.t_headers = self._t_read
        self.status = response.status
        self.reason = response.reason
        self.headers = response.headers

    def _write(self, connection: _Connection) -> bool:
        self.t_send = perf_counter()
        total = self._transport.timeouts.total
        self._deadline = None if total is None else self.t_send + total
        written = connection.write(self._request)
        self.times.t_sent = perf_counter()  # handed to the transport, which writes at once
        return written

    def _seconds_left(self, now: float) -> float:
        assert self.t_send is not None
        idle_end = max(self._t_read, self.t_send) + self._transport.timeouts.read
        deadline = idle_end if self._deadline is None else min(idle_end, self._deadline)
        return deadline - now

    async def _recv(self, before_answer: bool = False) -> bytes:
        connection = self._connection
        assert connection is not None
        try:
            async with asyncio.timeout(max(0.0, self._seconds_left(perf_counter()))):
                t, data = await connection.read()
        except TimeoutError:
            self._abort()
            now = perf_counter()
            raise timeout_error(self._deadline, now, self._transport.timeouts) from None
        except ConnectionResetError:
            self._abort()
            raise reset_error(before_answer, self._body_bytes) from None
        except OSError as exc:
            self._abort()
            reason = exc.strerror or type(exc).__name__
            raise ConnectError(f"reading the response failed: {reason}") from None
        if data:
            self._t_read = t
        return data

    def _feed(self, feed: Callable[[bytes], None], data: bytes) -> None:
        try:
            feed(data)
        except LLMError:
            self._abort()
            raise

    async def iter_body(self) -> AsyncIterator[tuple[float, bytes]]:
        """``(perf_counter at read, body bytes)`` per read until the response's end."""
        response = self._response
        try:
            response.body_ready()
        except LLMError:
            self._abort()
            raise
        times = self.times
        while True:
            data = response.take_body()
            if data is not None:
                if data and times.t_body is None:
                    times.t_body = self._t_read
                self._body_bytes += len(data)
                yield self._t_read, data
            if response.complete:
                self._finish()
                return
            data = await self._recv()
            if not data:
                if response.ends_at_close():
                    self._finish()
                    return
                self._abort()
                raise closed_error(False, True, self._body_bytes)
            self._feed(response.feed, data)

    async def read_body(self, limit: int) -> bytes:
        """The whole body; past ``limit`` bytes it fails (ResponseTooLargeError)."""
        pieces: list[bytes] = []
        size = 0
        async for _, data in self.iter_body():
            size += len(data)
            if size > limit:
                self._abort()
                raise too_large_body(limit)
            pieces.append(data)
        return b"".join(pieces)

    async def end_early(self, t_done: float, grace_s: float) -> None:
        """``[DONE]`` was read at ``t_done``: the request is complete; the body's end gets
        ``grace_s`` to arrive so the connection can be reused. Never raises."""
        self.t_done = t_done
        self.answered = True
        response = self._response
        response.drop_body()
        if self._connection is None:
            return
        if not response.complete:
            end = perf_counter() + grace_s
            self._deadline = end if self._deadline is None else min(self._deadline, end)
            try:
                while not response.complete and perf_counter() < end:
                    data = await self._recv()
                    if not data:
                        break
                    self._feed(response.feed, data)
                    response.drop_body()
            except LLMError:
                return
        self._finish()

    def _finish(self) -> None:
        if self.t_done is None:
            self.t_done = self._t_read or perf_counter()
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._response.reusable:
            self._transport._release(connection)
        else:
            self._transport._discard(connection)

    def _abort(self) -> None:
        if self.t_done is None:
            self.t_done = perf_counter()
        self._response.release()
        connection, self._connection = self._connection, None
        if connection is not None:
            self._transport._discard(connection)

    def close(self) -> None:
        """End the exchange; an unfinished response closes its connection."""
        if self._connection is not None:
            if self._response.complete:
                self._finish()
            else:
                self._abort()
