"""One HTTP/1.1 request and its response on a pooled connection, read event by event.

Split from :mod:`.http` (the pool): this is the per-request side, where every read is
stamped with ``perf_counter()`` before any other work and transport errors are mapped to
:mod:`sagellm_users.errors`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from time import perf_counter
from typing import TYPE_CHECKING

import httptools

from sagellm_users.backends.cooperative import CooperativeReader, Expired
from sagellm_users.errors import (
    ConnectError,
    LLMError,
    ProtocolError,
    ReadTimeout,
    ResponseTooLargeError,
    StreamCutError,
    TotalTimeout,
)
from sagellm_users.limits import ReadLimits, format_size

if TYPE_CHECKING:
    from sagellm_users.backends.http import HttpTransport

__all__ = ["HttpExchange", "os_reason"]

_RECV_BYTES = 65536


class _Sink:
    """Receives llhttp's callbacks for one response."""

    __slots__ = (
        "complete",
        "headers",
        "headers_done",
        "interim",
        "keep_alive",
        "parser",
        "pieces",
        "reason",
    )

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.keep_alive = False
        self.reason = b""
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.pieces: list[bytes] = []
        self.complete = False
        self.interim = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        parser = self.parser
        if parser is not None and _interim(parser.get_status_code()):
            # An interim response (100 Continue, 103 Early Hints; RFC 9110 15.2): a client
            # must skip it and read on for the final response on the same connection. llhttp
            # ends the 1xx as a message of its own and parses the next one, so only what it
            # told us is forgotten here.
            self.interim = True
            self.reason = b""
            self.headers = {}
            return
        self.headers_done = True
        # llhttp forgets the keep-alive verdict once the message completes: ask now.
        parser, self.parser = self.parser, None
        if parser is not None:
            self.keep_alive = parser.should_keep_alive()
        # Letting go of the parser here breaks the cycle parser -> bound callbacks -> sink
        # -> parser: every answered request's parser is then freed by reference counting
        # as the exchange ends, not by a full garbage collection a minute later. (A cycle
        # per request kept ~16,000 objects a second waiting at 2,000 requests/s, and the
        # heap grew around them: 50 MiB/hour of resident memory in the soak.)

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False  # the 1xx ended; the final response follows
            return
        self.complete = True


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
        "_head_bytes",
        "_parser",
        "_reader",
        "_request",
        "_sink",
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
    )

    def __init__(self, transport: HttpTransport, request: bytes) -> None:
        self._transport = transport
        self._request = request
        self._sock: socket.socket | None = None
        self._reader: CooperativeReader | None = None
        """Set under gevent on plain TCP: the cheap read path with one lazy deadline timer."""
        self._sink, self._parser = _new_parser()
        self._deadline: float | None = None
        self._t_read = 0.0
        self._body_bytes = 0
        self._head_bytes = 0
        self.t_send: float | None = None
        self.answered = False
        """The caller read the whole answer (:meth:`end_early`), whatever the body does next."""
        self.connect_s: float | None = None
        self.t_done: float | None = None
        self.status: int | None = None
        self.reason = ""
        self.headers: dict[str, str] = {}

    def send(self) -> None:
        """Write the request and read the status line and headers."""
        transport = self._transport
        sock, self.connect_s = transport._acquire()
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
            self._sink, self._parser = _new_parser()
            sock, self.connect_s = transport._acquire_new()
            self._sock = sock
            try:
                self._write_and_read_headers(sock)
            except _StaleConnection:
                self._abort()
                raise ConnectError("the server closed the connection before answering") from None
        sink = self._sink
        self.status = self._parser.get_status_code()
        self.reason = sink.reason.decode("latin-1")
        self.headers = sink.headers

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
        first = True
        while not self._sink.headers_done:
            data = self._recv(before_answer=first)
            if not data:
                self._abort()
                if first:
                    raise ConnectError("the server closed the connection before answering")
                raise StreamCutError("connection closed in the middle of the response headers")
            first = False
            self._feed_head(data)

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
        """One read, stamped; timeouts and resets become :mod:`sagellm_users.errors`."""
        reader = self._reader
        try:
            data = reader.recv(_RECV_BYTES) if reader is not None else self._recv_portable()
        except (TimeoutError, Expired):
            self._abort()
            deadline = self._deadline
            if deadline is not None and perf_counter() >= deadline - 1e-3:
                raise TotalTimeout(self._total_message()) from None
            read_timeout = self._transport.timeouts.read
            raise ReadTimeout(f"no data for {read_timeout:g} s (read timeout)") from None
        except ConnectionResetError:
            self._abort()
            if before_answer:
                raise ConnectError("the server reset the connection before answering") from None
            raise StreamCutError(
                f"connection reset by the server after {self._body_bytes} body bytes"
            ) from None
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

    def _total_message(self) -> str:
        total = self._transport.timeouts.total
        if total is None:  # a deadline without a request timeout: end_early's grace
            return "the response did not end in time after the caller was done"
        return f"request took longer than {total:g} s (request timeout)"

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._abort()
            raise ProtocolError(f"invalid HTTP response: {exc}") from None

    def _feed_head(self, data: bytes) -> None:
        """Feed a read that arrived before the headers were complete, counting the head's
        bytes: past the limit the request fails at once, so a huge header line is neither
        buffered nor parsed further (llhttp's callbacks would copy it, read by read)."""
        room = self._transport.limits.header - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            self._feed(data)
            return
        if room > 0:
            self._feed(data[:room])
        if not self._sink.headers_done:
            self._abort()
            limit = format_size(self._transport.limits.header)
            raise ResponseTooLargeError(
                f"the response headers passed the {limit} limit, not read further "
                "(raise it with --max-header-size)"
            )
        self._head_bytes += room
        self._feed(data[room:])

    @property
    def limits(self) -> ReadLimits:
        """How much of this response may be held: the transport's read limits."""
        return self._transport.limits

    def iter_body(self) -> Iterator[tuple[float, bytes]]:
        """Yield ``(perf_counter at read, body bytes)`` per socket read until the end."""
        sink = self._sink
        coding = sink.headers.get("content-encoding", "identity").strip().lower()
        if coding != "identity":
            self._abort()
            raise ProtocolError(_encoded_message(coding))
        pieces = sink.pieces
        while True:
            if pieces:
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                pieces.clear()
                self._body_bytes += len(data)
                yield self._t_read, data
            if sink.complete:
                self._finish()
                return
            data = self._recv()
            if not data:
                if self._close_delimited():
                    self._finish()
                    return
                self._abort()
                raise StreamCutError(
                    f"connection closed after {self._body_bytes} body bytes, "
                    "before the response ended"
                )
            self._feed(data)

    def end_early(self, t_done: float, grace_s: float) -> None:
        """The caller read all it needs (a stream's ``[DONE]``, read at ``t_done``): the
        request is complete and its timings final. The response's own end (the chunked
        terminator) gets ``grace_s`` to arrive so the connection can serve another request;
        anything else read meanwhile is dropped, and a response that has not ended by then
        closes its connection. Never raises: the request is done whatever happens here."""
        self.t_done = t_done
        self.answered = True
        sink = self._sink
        sink.pieces.clear()
        if self._sock is None:
            return
        if not sink.complete:
            now = perf_counter()
            end = now + grace_s
            self._deadline = end if self._deadline is None else min(self._deadline, end)
            if self._reader is not None:
                self._reader.arm(self._seconds_to_deadline(now), self._on_deadline)
            try:
                # Bounded by ``end`` even if bytes keep coming (comment pings after [DONE]).
                while not sink.complete and perf_counter() < end:
                    data = self._recv()
                    if not data:
                        break
                    self._feed(data)
                    sink.pieces.clear()
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
                raise ResponseTooLargeError(
                    f"the response body passed the {format_size(limit)} limit, not read "
                    "further (raise it with --max-event-size)"
                )
            pieces.append(data)
        return b"".join(pieces)

    def _close_delimited(self) -> bool:
        headers = self._sink.headers
        coding = headers.get("transfer-encoding", "").lower()
        return "content-length" not in headers and "chunked" not in coding

    def _finish(self) -> None:
        if self.t_done is None:
            self.t_done = self._t_read or perf_counter()
        self._end_reads()
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._sink.complete and self._sink.keep_alive:
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
        self._sink.parser = None  # the cycle on_headers_complete breaks, if it never came
        self._end_reads()
        sock, self._sock = self._sock, None
        if sock is not None:
            self._transport._discard(sock)

    def close(self) -> None:
        """End the exchange; an unfinished response closes its connection."""
        if self._sock is not None:
            if self._sink.complete:
                self._finish()
            else:
                self._abort()


def _interim(status: int) -> bool:
    """A 1xx other than 101 (Switching Protocols, which ends HTTP/1.1 on the connection)."""
    return 100 <= status < 200 and status != 101


def _new_parser() -> tuple[_Sink, httptools.HttpResponseParser]:
    sink = _Sink()
    parser = httptools.HttpResponseParser(sink)
    sink.parser = parser
    return sink, parser


def _encoded_message(coding: str) -> str:
    return (
        f"the server sent the body with Content-Encoding: {coding} although the request "
        "asked for identity; turn compression off for this route on the server or proxy "
        "(a compressing proxy holds events back, so their times would be its, not the server's)"
    )


class _StaleConnection(Exception):
    """Internal: writing the request failed on a closed connection (resent once if pooled)."""


def os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__
