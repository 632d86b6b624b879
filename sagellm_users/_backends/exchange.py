"""One HTTP/1.1 request and its response on a pooled connection, read event by event.

Split from :mod:`.http` (the pool): this is the per-request side, where every read is
stamped with ``perf_counter()`` before any other work and transport errors are mapped to
:mod:`sagellm_users._errors`. What the bytes mean is :mod:`.http_core`'s, shared with the
asyncio transport.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from time import perf_counter
from typing import TYPE_CHECKING

from sagellm_users._backends.base import HttpTimes
from sagellm_users._backends.cooperative import CooperativeReader, Expired
from sagellm_users._backends.http_core import (
    ResponseReader,
    closed_error,
    reset_error,
    timeout_error,
    too_large_body,
)
from sagellm_users._errors import (
    ConnectError,
    LLMError,
    ReadTimeout,
)
from sagellm_users._limits import ReadLimits

if TYPE_CHECKING:
    from sagellm_users._backends.http import HttpTransport

__all__ = ["HttpExchange", "os_reason"]

_RECV_BYTES = 65536


class HttpExchange:
    """One request and its response on one connection.

    :meth:`send` writes the request and reads up to the end of the headers;
    :meth:`iter_body` then yields ``(t_read, body_bytes)`` once per socket read, with chunked
    transfer coding already removed. The connection goes back to the pool only when the
    response was read to its end and the server allows keep-alive.
    """

    __slots__ = (
        "_body_bytes",
        "_deadline",
        "_reader",
        "_request",
        "_response",
        "_sock",
        "_t_read",
        "_transport",
        "answered",
        "connect_s",
        "headers",
        "reason",
        "status",
        "t_done",
        "t_send",
        "times",
    )

    def __init__(self, transport: HttpTransport, request: bytes) -> None:
        self._transport = transport
        self._request = request
        self._sock: socket.socket | None = None
        self._reader: CooperativeReader | None = None
        """Set under gevent on plain TCP: the cheap read path with one lazy deadline timer."""
        self._response = ResponseReader(transport.limits)
        self._deadline: float | None = None
        self._t_read = 0.0
        self._body_bytes = 0
        self.t_send: float | None = None
        self.answered = False
        """The caller read the whole answer (:meth:`end_early`), whatever the body does next."""
        self.connect_s: float | None = None
        self.times = HttpTimes()
        self.t_done: float | None = None
        self.status: int | None = None
        self.reason = ""
        self.headers: dict[str, str] = {}

    def send(self) -> None:
        """Write the request and read the status line and headers."""
        transport = self._transport
        sock, self.connect_s, self.times.tls_s = transport._acquire()
        reused = self.connect_s is None
        self._sock = sock
        try:
            self._write_and_read_headers(sock)
        except _StaleConnection:
            # Writing failed on a pooled connection the server had closed in the meantime:
            # the request never reached it, so it is sent once more on a new connection.
            # (A failure after the request was written is never resent: see _recv.)
            self._end_reads()
            self._sock = None
            transport._discard(sock)
            if not reused:
                raise ConnectError("the server closed the connection before answering") from None
            self._response = ResponseReader(transport.limits)
            sock, self.connect_s, self.times.tls_s = transport._acquire_new()
            self._sock = sock
            try:
                self._write_and_read_headers(sock)
            except _StaleConnection:
                self._abort()
                raise ConnectError("the server closed the connection before answering") from None
        response = self._response
        self.status = response.status
        self.reason = response.reason
        self.headers = response.headers

    def _write_and_read_headers(self, sock: socket.socket) -> None:
        timeouts = self._transport.timeouts
        reader = self._reader = CooperativeReader.for_socket(sock)
        self.t_send = perf_counter()
        if timeouts.total is not None:
            self._deadline = self.t_send + timeouts.total
        if reader is not None:
            reader.arm(self._seconds_to_deadline(self.t_send), self._on_deadline)
        try:
            sock.settimeout(timeouts.read)
            sock.sendall(self._request)
        except (BrokenPipeError, ConnectionResetError):
            raise _StaleConnection from None
        except TimeoutError:
            self._abort()
            raise ReadTimeout("writing the request timed out") from None
        except OSError as exc:
            self._abort()
            raise ConnectError(f"sending the request failed: {os_reason(exc)}") from None
        times = self.times
        times.t_sent = perf_counter()
        first = True
        while not self._response.head_done:
            data = self._recv(before_answer=first)
            if not data:
                self._abort()
                raise closed_error(first, False, 0)
            first = False
            self._feed_head(data)
        times.t_headers = self._t_read

    def _seconds_to_deadline(self, now: float) -> float:
        """Seconds from ``now`` until the read timeout or the total timeout, if sooner."""
        assert self.t_send is not None
        idle_end = max(self._t_read, self.t_send) + self._transport.timeouts.read
        deadline = idle_end if self._deadline is None else min(idle_end, self._deadline)
        return deadline - now

    def _on_deadline(self) -> None:
        """The lazy timer fired (in the event loop): expire, or sleep until the new deadline.

        Reads push the read deadline forward without touching the timer; only here, at most
        once per read-timeout period, is it moved."""
        reader = self._reader
        if reader is None or self._sock is None:
            return
        left = self._seconds_to_deadline(perf_counter())
        if left <= 1e-3:
            reader.expire()
        else:
            reader.arm(left, self._on_deadline)

    def _recv(self, before_answer: bool = False) -> bytes:
        """One read, stamped; timeouts and resets become :mod:`sagellm_users._errors`."""
        reader = self._reader
        try:
            data = reader.recv(_RECV_BYTES) if reader is not None else self._recv_portable()
        except (TimeoutError, Expired):
            self._abort()
            now = perf_counter()
            raise timeout_error(self._deadline, now, self._transport.timeouts) from None
        except ConnectionResetError:
            self._abort()
            raise reset_error(before_answer, self._body_bytes) from None
        except OSError as exc:
            self._abort()
            raise ConnectError(f"reading the response failed: {os_reason(exc)}") from None
        self._t_read = perf_counter()
        return data

    def _recv_portable(self) -> bytes:
        """``sock.recv`` under a socket timeout: the path for TLS and sockets without gevent.

        Unlike plain reads (see :mod:`.cooperative`), ``recv(65536)`` through gevent's SSL
        layer was measured not to grow the heap: ``bench/soak_bench.py --tls`` stays flat
        (4.2 MiB/h at 2,344 req/s, as flat as the same soak reading into a shared buffer)."""
        sock = self._sock
        assert sock is not None
        deadline = self._deadline
        read_timeout = self._transport.timeouts.read
        if deadline is not None:
            remaining = deadline - perf_counter()
            if remaining <= 0:
                raise TimeoutError  # the request's time is up before this read
            sock.settimeout(min(read_timeout, remaining))
        return sock.recv(_RECV_BYTES)

    def _feed(self, data: bytes) -> None:
        try:
            self._response.feed(data)
        except LLMError:
            self._abort()
            raise

    def _feed_head(self, data: bytes) -> None:
        try:
            self._response.feed_head(data)
        except LLMError:
            self._abort()
            raise

    @property
    def limits(self) -> ReadLimits:
        """How much of this response may be held: the transport's read limits."""
        return self._transport.limits

    def iter_body(self) -> Iterator[tuple[float, bytes]]:
        """Yield ``(perf_counter at read, body bytes)`` per socket read until the end."""
        response = self._response
        try:
            response.body_ready()
        except LLMError:
            self._abort()
            raise
        # Two Python calls a read (the read, the parse): this loop runs once per socket read.
        sink, feed_body = response.sink, response.feed_body
        body = response.take_body()  # what came with the head
        unstamped = True  # the first body bytes' read is not stamped yet (HttpTimes.t_body)
        while True:
            if body is not None:
                if unstamped and body:
                    self.times.t_body = self._t_read
                    unstamped = False
                self._body_bytes += len(body)
                yield self._t_read, body
            if sink.complete:
                self._finish()
                return
            data = self._recv()
            if not data:
                if response.ends_at_close():
                    self._finish()
                    return
                self._abort()
                raise closed_error(False, True, self._body_bytes)
            try:
                body = feed_body(data)
            except LLMError:
                self._abort()
                raise

    def end_early(self, t_done: float, grace_s: float) -> None:
        """The caller read all it needs (a stream's ``[DONE]``, read at ``t_done``): the
        request is complete and its timings final. The response's own end (the chunked
        terminator) gets ``grace_s`` to arrive so the connection can serve another request;
        anything else read meanwhile is dropped, and a response that has not ended by then
        closes its connection. Never raises: the request is done whatever happens here."""
        self.t_done = t_done
        self.answered = True
        response = self._response
        response.drop_body()
        if self._sock is None:
            return
        if not response.complete:
            now = perf_counter()
            end = now + grace_s
            self._deadline = end if self._deadline is None else min(self._deadline, end)
            if self._reader is not None:
                self._reader.arm(self._seconds_to_deadline(now), self._on_deadline)
            try:
                # Bounded by ``end`` even if bytes keep coming (comment pings after [DONE]).
                while not response.complete and perf_counter() < end:
                    data = self._recv()
                    if not data:
                        break
                    self._feed(data)
                    response.drop_body()
            except LLMError:
                return  # the read or the parse failed and closed the connection
        self._finish()

    def read_body(self, limit: int | None = None) -> bytes:
        """The whole body (for small, non-streamed answers); with ``limit``, a body longer
        than that fails (ResponseTooLargeError) as soon as it passes it."""
        if limit is None:
            return b"".join(data for _, data in self.iter_body())
        pieces: list[bytes] = []
        size = 0
        for _, data in self.iter_body():
            size += len(data)
            if size > limit:
                self._abort()
                raise too_large_body(limit)
            pieces.append(data)
        return b"".join(pieces)

    def _finish(self) -> None:
        if self.t_done is None:
            self.t_done = self._t_read or perf_counter()
        self._end_reads()
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._response.reusable:
            self._transport._release(sock)
        else:
            self._transport._discard(sock)

    def _end_reads(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.disarm()

    def _abort(self) -> None:
        if self.t_done is None:
            self.t_done = perf_counter()
        self._response.release()
        self._end_reads()
        sock, self._sock = self._sock, None
        if sock is not None:
            self._transport._discard(sock)

    def close(self) -> None:
        """End the exchange; an unfinished response closes its connection."""
        if self._sock is not None:
            if self._response.complete:
                self._finish()
            else:
                self._abort()


class _StaleConnection(Exception):
    """Internal: writing the request failed on a closed connection (resent once if pooled)."""


def os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__
