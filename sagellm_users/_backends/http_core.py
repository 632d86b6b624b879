"""HTTP/1.1 for timing streams, without I/O: the request's bytes and the response's parser.

Both transports (gevent sockets in :mod:`.exchange`, asyncio in :mod:`sagellm_users._aio`)
read bytes their own way and hand them here, so how a response is framed, what ends it,
which limits hold and what each malformation is called are decided once. Nothing here
reads a clock or a socket: every error it raises is an :class:`~sagellm_users._errors.LLMError`
after which the caller closes the connection.
"""

from __future__ import annotations

from collections.abc import Mapping

import httptools

from sagellm_users._backends.endpoint import Timeouts
from sagellm_users._errors import (
    ConnectError,
    LLMError,
    ProtocolError,
    ReadTimeout,
    ResponseTooLargeError,
    StreamCutError,
    TotalTimeout,
)
from sagellm_users._limits import ReadLimits, format_size

__all__ = [
    "ResponseReader",
    "closed_error",
    "encode_request",
    "header_block",
    "reset_error",
    "timeout_error",
    "too_large_body",
]

USER_AGENT = "sagellm-locust"


def header_block(host_header: str, headers: Mapping[str, str] | None) -> bytes:
    """The header lines every request of one origin carries; ``Accept-Encoding: identity``
    because a compressed stream cannot be timed per event (see ``body_ready``)."""
    fixed = {"Host": host_header, "User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    fixed.update(headers or {})
    return "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")


def encode_request(
    method: str,
    target: str,
    fixed_headers: bytes,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """One request's bytes: request line, the origin's header block, ``headers``, body."""
    head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), fixed_headers]
    if headers:
        head.append("".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1"))
    if body is not None:
        head.append(b"Content-Length: %d\r\n" % len(body))
    head.append(b"\r\n")
    if body:
        head.append(body)
    return b"".join(head)


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


class ResponseReader:
    """One response, fed the bytes its transport read: head first (:meth:`feed_head` until
    :attr:`head_done`), then the body (:meth:`feed`, :meth:`take_body`). Chunked transfer
    coding is removed; interim 1xx responses are skipped."""

    __slots__ = ("_head_bytes", "_limits", "_parser", "sink")

    def __init__(self, limits: ReadLimits) -> None:
        self._limits = limits
        self._head_bytes = 0
        sink = self.sink = _Sink()
        self._parser = httptools.HttpResponseParser(sink)
        sink.parser = self._parser

    @property
    def head_done(self) -> bool:
        return self.sink.headers_done

    @property
    def complete(self) -> bool:
        """The response ended as its framing says (its last chunk, its Content-Length)."""
        return self.sink.complete

    @property
    def reusable(self) -> bool:
        """Ended, and the server lets the connection carry another request."""
        return self.sink.complete and self.sink.keep_alive

    @property
    def status(self) -> int:
        return int(self._parser.get_status_code())

    @property
    def reason(self) -> str:
        return self.sink.reason.decode("latin-1")

    @property
    def headers(self) -> dict[str, str]:
        """Header names in lower case."""
        return self.sink.headers

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ProtocolError(f"invalid HTTP response: {exc}") from None

    def feed_head(self, data: bytes) -> None:
        """Feed a read that arrived before the headers were complete, counting the head's
        bytes: past the limit the request fails at once, so a huge header line is neither
        buffered nor parsed further (llhttp's callbacks would copy it, read by read)."""
        room = self._limits.header - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            self.feed(data)
            return
        if room > 0:
            self.feed(data[:room])
        if not self.sink.headers_done:
            limit = format_size(self._limits.header)
            raise ResponseTooLargeError(
                f"the response headers passed the {limit} limit, not read further "
                "(raise it with --max-header-size)"
            )
        self._head_bytes += room
        self.feed(data[room:])

    def body_ready(self) -> None:
        """Check the head allows the body to be read as it comes: an encoded body fails."""
        coding = self.sink.headers.get("content-encoding", "identity").strip().lower()
        if coding != "identity":
            raise ProtocolError(_encoded_message(coding))

    def take_body(self) -> bytes | None:
        """The body bytes parsed since the last call (None when there are none)."""
        pieces = self.sink.pieces
        if not pieces:
            return None
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        return data

    def feed_body(self, data: bytes) -> bytes | None:
        """Feed one read of the body and take the body bytes it completed (None: none):
        :meth:`feed` and :meth:`take_body` in one call, for a transport's read loop, where
        each Python call per read is a share of the client's CPU per event."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ProtocolError(f"invalid HTTP response: {exc}") from None
        pieces = self.sink.pieces
        if not pieces:
            return None
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        return body

    def drop_body(self) -> None:
        """Forget the body parsed so far (after the caller has all it needs)."""
        self.sink.pieces.clear()

    def ends_at_close(self) -> bool:
        """Neither Content-Length nor chunked: the body ends when the server closes."""
        headers = self.sink.headers
        coding = headers.get("transfer-encoding", "").lower()
        return "content-length" not in headers and "chunked" not in coding

    def release(self) -> None:
        """Break the parser's reference cycle if the head never completed (see _Sink)."""
        self.sink.parser = None


def too_large_body(limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"the response body passed the {format_size(limit)} limit, not read "
        "further (raise it with --max-event-size)"
    )


def timeout_error(deadline: float | None, now: float, timeouts: Timeouts) -> LLMError:
    """The error of a read that timed out at ``now``: the request's ``deadline`` (its total
    timeout, or the grace after ``[DONE]``) when it has passed, else the read timeout."""
    if deadline is not None and now >= deadline - 1e-3:
        if timeouts.total is None:  # a deadline without a request timeout: the grace
            return TotalTimeout("the response did not end in time after the caller was done")
        return TotalTimeout(f"request took longer than {timeouts.total:g} s (request timeout)")
    return ReadTimeout(f"no data for {timeouts.read:g} s (read timeout)")


def reset_error(before_answer: bool, body_bytes: int) -> LLMError:
    """The error of a connection the server reset."""
    if before_answer:
        return ConnectError("the server reset the connection before answering")
    return StreamCutError(f"connection reset by the server after {body_bytes} body bytes")


def closed_error(before_answer: bool, head_done: bool, body_bytes: int) -> LLMError:
    """The error of a connection the server closed before the response ended."""
    if before_answer:
        return ConnectError("the server closed the connection before answering")
    if not head_done:
        return StreamCutError("connection closed in the middle of the response headers")
    return StreamCutError(
        f"connection closed after {body_bytes} body bytes, before the response ended"
    )


def _interim(status: int) -> bool:
    """A 1xx other than 101 (Switching Protocols, which ends HTTP/1.1 on the connection)."""
    return 100 <= status < 200 and status != 101


def _encoded_message(coding: str) -> str:
    return (
        f"the server sent the body with Content-Encoding: {coding} although the request "
        "asked for identity; turn compression off for this route on the server or proxy "
        "(a compressing proxy holds events back, so their times would be its, not the server's)"
    )
