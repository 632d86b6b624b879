"""What an answer's body means, without I/O: a stream's events and its end, an error body.

Shared by the gevent client (:mod:`.openai`) and the asyncio one (:mod:`sagellm_users._aio`):
each reads ``(t_read, bytes)`` pairs its own way and feeds them here, so both stamp the same
events, end a stream at the same ``[DONE]``, and name a cut or unfinished stream alike.

OpenAI's chat and completions streams end with ``data: [DONE]``; the Responses and
Messages APIs send none and end at an event of their own (``response.completed``,
``message_stop``). Their parsers are registered with :func:`ends_at`, and
:func:`event_reader` gives them a :class:`TerminalEventReader`, which stops at the chunk
the parser marks ``final``: the chat path's reader does not look at chunks at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from sagellm_users._backends.base import Chunk
from sagellm_users._errors import HTTPStatusError, MissingDoneError, StreamCutError, excerpt
from sagellm_users._limits import format_size
from sagellm_users._sse import SSEDecoder

__all__ = [
    "DONE_GRACE_S",
    "ErrorBody",
    "EventParser",
    "EventReader",
    "TerminalEventReader",
    "ends_at",
    "event_reader",
    "status_error",
]

EventParser = Callable[[bytes, float], Chunk]
"""Turns one SSE event's data (or a whole non-streamed body) into a Chunk stamped t."""
P = TypeVar("P", bound=EventParser)

_LAST_EVENTS: dict[EventParser, str] = {}
"""Parsers of streams that end at an event of their own, and that event's name."""

_DONE = b"[DONE]"

DONE_GRACE_S = 0.2
"""How long the body's end may follow ``data: [DONE]`` for the connection to be reused.

Servers send it right after [DONE] (uvicorn writes the empty chunk as the response's next
message, well under a millisecond later), so waiting costs nothing when it comes. When it
does not (a proxy holding the response open, pings after [DONE]) the user waits this long
before its next request, then the connection is closed; the finished request's timings are
not touched either way. 0.2 s outlasts the stalls of a busy server's event loop between two
writes by a wide margin and costs a user little on a server that never sends it."""


class EventReader:
    """A streamed body in, its chunks out, until ``data: [DONE]`` (then :attr:`done`)."""

    __slots__ = ("_feed", "_parse", "decoder", "done", "error")

    def __init__(self, parse: EventParser, max_event_bytes: int) -> None:
        self._parse = parse
        self.decoder = SSEDecoder(max_event_bytes)
        self._feed = self.decoder.feed
        self.done = False
        """``[DONE]`` was read: the answer is complete, whatever the body does next."""
        self.error: Exception | None = None
        """Why an event of the last read could not be parsed: raise it once the chunks
        before it are taken (they were measured)."""

    def feed(self, t: float, data: bytes) -> list[Chunk]:
        """The chunks of the events ``data`` completes, each stamped ``t`` (its read), up to
        ``[DONE]`` or an event that cannot be parsed (then :attr:`error`). A list, not a
        generator: most reads complete one event, and a generator per read cost 2% of the
        client's CPU per event."""
        parse = self._parse
        chunks = []
        for event in self._feed(data):
            if event == _DONE:
                self.done = True
                break
            if not event or event.isspace():
                continue  # ``data: `` with nothing: a keep-alive some proxies send
            try:
                chunks.append(parse(event, t))
            except Exception as exc:  # the caller raises it, after the chunks
                self.error = exc
                break
        return chunks

    def unfinished(self) -> StreamCutError | MissingDoneError:
        """The error of a body that ended before ``[DONE]``."""
        pending = self.decoder.pending
        if pending:
            return StreamCutError(f"stream ended inside an event: {excerpt(pending)!r}")
        return MissingDoneError("stream ended without 'data: [DONE]'")


class TerminalEventReader(EventReader):
    """The reader of an API that ends its stream with an event of its own instead of
    ``[DONE]``: done at the chunk its parser marks ``final`` (the chunk is kept), or at a
    ``[DONE]`` a proxy may still add."""

    __slots__ = ("last_event",)

    def __init__(self, parse: EventParser, max_event_bytes: int, last_event: str) -> None:
        super().__init__(parse, max_event_bytes)
        self.last_event = last_event
        """The name of the event that ends the stream, for the error of one without it."""

    def feed(self, t: float, data: bytes) -> list[Chunk]:
        parse = self._parse
        chunks = []
        for event in self._feed(data):
            if event == _DONE:
                self.done = True
                break
            if not event or event.isspace():
                continue
            try:
                chunk = parse(event, t)
            except Exception as exc:  # the caller raises it, after the chunks
                self.error = exc
                break
            chunks.append(chunk)
            if chunk.final:
                self.done = True
                break
        return chunks

    def unfinished(self) -> StreamCutError | MissingDoneError:
        pending = self.decoder.pending
        if pending:
            return StreamCutError(f"stream ended inside an event: {excerpt(pending)!r}")
        return MissingDoneError(f"stream ended without its last event ({self.last_event})")


def ends_at(last_event: str) -> Callable[[P], P]:
    """Register the decorated stream parser as one whose stream ends at ``last_event``
    (it marks that event's chunk ``final``) rather than at ``[DONE]``."""

    def register(parse: P) -> P:
        _LAST_EVENTS[parse] = last_event
        return parse

    return register


def event_reader(parse: EventParser, max_event_bytes: int) -> EventReader:
    """The reader for a stream parsed by ``parse``: up to ``[DONE]``, or up to the last
    event of an API registered with :func:`ends_at`."""
    last_event = _LAST_EVENTS.get(parse)
    if last_event is None:
        return EventReader(parse, max_event_bytes)
    return TerminalEventReader(parse, max_event_bytes, last_event)


class ErrorBody:
    """The start of an error body, for its excerpt: at most ``limit`` bytes are kept, and a
    longer body (a gateway's multi-megabyte page, or one that never ends) is not read
    further: the request fails now and its connection is closed."""

    __slots__ = ("_limit", "_pieces", "_size", "cut")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pieces: list[bytes] = []
        self._size = 0
        self.cut: str | None = None
        """Why the rest was not read; None while it is read to its end."""

    def add(self, data: bytes) -> bool:
        """Keep ``data``; True when the limit is reached and reading must stop."""
        if self._size + len(data) > self._limit:
            self._pieces.append(data[: self._limit - self._size])
            self._size = self._limit
            limit = format_size(self._limit)
            self.cut = f"body cut at the {limit} limit, not read further: "
            self.cut += "raise it with --max-error-body"
            return True
        self._pieces.append(data)
        self._size += len(data)
        return False

    @property
    def body(self) -> bytes:
        return b"".join(self._pieces)


def status_error(
    status: int | None, reason: str, headers: Mapping[str, str], error_body: ErrorBody
) -> HTTPStatusError:
    """The error of an answer whose status is not 2xx, with its body's excerpt."""
    return HTTPStatusError(
        status or 0, reason, error_body.body, _retry_after(headers), body_cut=error_body.cut
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare for LLM servers, and not worth guessing the clock
