"""Incremental Server-Sent Events framing: bytes in, event data out, no I/O.

Streams arrive in arbitrary pieces: one read may hold half an event or a dozen. The decoder
keeps the unfinished tail and returns each complete event's ``data`` as bytes, so the caller
parses JSON straight from bytes and a multi-byte UTF-8 character split across reads is never
decoded half. It follows the WHATWG event-stream rules: LF, CRLF and CR line ends; ``data``
lines joined with LF; one optional space after the colon; comments and unknown fields
ignored; a leading BOM skipped; an event without data dispatches nothing.

The common case (one ``data: ...`` line per event, LF line ends, as vLLM and LMDeploy send)
takes a fast path of one ``find`` and one slice per event.

An event that spans reads is kept as a list of its pieces and joined once, when its blank
line arrives; each read is searched once (plus the one byte where a blank line can straddle
two reads). So the work is linear in the event's size: a 5 MB event in 1,448-byte reads
used to be copied and searched again on every read (7.5 s, the event loop blocked
throughout). An event larger than its limit fails the request instead of growing without
bound (see :mod:`sagellm_users._limits`).
"""

from __future__ import annotations

from sagellm_users._errors import ResponseTooLargeError
from sagellm_users._limits import DEFAULT_EVENT_BYTES, format_size

__all__ = ["SSEDecoder"]

_BOM = b"\xef\xbb\xbf"
_DATA_PREFIX = b"data: "
_EVENT_PREFIX = b"event:"


class SSEDecoder:
    """Turns a byte stream into the data payloads of its complete events.

    ``max_event_bytes`` bounds one event as received (its lines, line ends normalised to
    LF, without the blank line that ends it)."""

    __slots__ = ("_cr_pending", "_head", "_max_event", "_parts", "_size", "_started", "rescanned")

    def __init__(self, max_event_bytes: int = DEFAULT_EVENT_BYTES) -> None:
        self._max_event = max_event_bytes
        self._parts: list[bytes] = []
        """The unfinished event's pieces, as they came; never holds a blank line."""
        self._size = 0
        self._cr_pending = False
        self._started = False
        self._head = b""
        self.rescanned = 0
        """Bytes kept from earlier reads that were copied or searched again: each is
        copied once, when its event completes (tests hold this to linear)."""

    def _opening(self, data: bytes) -> bytes:
        """What of ``data`` is stream content, after a leading BOM or a CR's LF."""
        if not self._started:
            data = self._skip_bom(data)
        if self._cr_pending and data:
            # The previous piece ended with CR, already taken as a line end: an LF that
            # opens this piece completes that CRLF and is not a second line end.
            self._cr_pending = False
            if data.startswith(b"\n"):
                data = data[1:]
        return data

    def _skip_bom(self, data: bytes) -> bytes:
        """Drop a leading BOM, also when it arrives split across the first reads."""
        head = self._head + data
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._head = head
            return b""
        self._started = True
        self._head = b""
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    @property
    def pending(self) -> bytes:
        """Bytes of an event that has not been terminated yet (non-empty means a cut stream)."""
        return b"".join(self._parts).strip(b"\n")

    def feed(self, data: bytes) -> list[bytes]:
        """Add the next piece of the stream; return the data of every event it completes."""
        if not self._started or self._cr_pending:
            data = self._opening(data)
        if not data:
            return []
        if b"\r" in data:
            self._cr_pending = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[bytes] = []
        if self._parts:
            data = self._complete_pending(data, events)
        limit = self._max_event
        start = 0
        find = data.find
        while True:
            end = find(b"\n\n", start)
            if end < 0:
                break
            if end - start > limit:
                raise self._too_large()
            block = data[start:end]
            start = end + 2
            if block.startswith(_DATA_PREFIX) and b"\n" not in block:
                events.append(block[6:])
                continue
            payload = _parse_block(block)
            if payload is not None:
                events.append(payload)
        if start < len(data):
            self._keep(data[start:] if start else data)
        return events

    def _complete_pending(self, data: bytes, events: list[bytes]) -> bytes:
        """With an event pending: dispatch it if ``data`` completes it, else keep ``data``
        too; returns what of ``data`` follows that event."""
        parts = self._parts
        if parts[-1].endswith(b"\n") and data.startswith(b"\n"):
            # The blank line straddles the reads: the pending event ends at its last byte.
            last = parts.pop()
            if len(last) > 1:
                parts.append(last[:-1])
                self.rescanned += len(last) - 1
            rest = data[1:]
        else:
            end = data.find(b"\n\n")
            if end < 0:
                self._keep(data)
                return b""
            if end:
                parts.append(data[:end])
            rest = data[end + 2 :]
        block = parts[0] if len(parts) == 1 else b"".join(parts)
        self.rescanned += len(block)
        parts.clear()
        self._size = 0
        if len(block) > self._max_event:
            raise self._too_large()
        if block.startswith(_DATA_PREFIX) and b"\n" not in block:
            events.append(block[6:])
        else:
            payload = _parse_block(block)
            if payload is not None:
                events.append(payload)
        return rest

    def _keep(self, piece: bytes) -> None:
        """Hold ``piece`` of the unfinished event, unless that takes it past the limit."""
        self._size += len(piece)
        if self._size > self._max_event:
            raise self._too_large()
        self._parts.append(piece)

    def _too_large(self) -> ResponseTooLargeError:
        self._parts.clear()
        self._size = 0
        return ResponseTooLargeError(
            f"an SSE event passed the {format_size(self._max_event)} limit, not read further "
            "(raise it with --max-event-size)"
        )


def _parse_block(block: bytes) -> bytes | None:
    """The general case: several lines, comments, other fields, no space after the colon.

    A named event (``event: NAME`` then one ``data: ...`` line, as the Responses and
    Messages APIs send every event) takes a short cut: one search and one slice."""
    if block.startswith(_EVENT_PREFIX):
        end = block.find(b"\n")
        if block.startswith(_DATA_PREFIX, end + 1) and block.find(b"\n", end + 1) < 0:
            return block[end + 7 :]
    data_lines: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data_lines.append(value)
    if not data_lines:
        return None
    return b"\n".join(data_lines)
