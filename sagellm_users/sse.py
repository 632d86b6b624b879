"""Incremental Server-Sent Events framing: bytes in, event data out, no I/O.

Streams arrive in arbitrary pieces: one read may hold half an event or a dozen. The decoder
keeps the unfinished tail and returns each complete event's ``data`` as bytes, so the caller
parses JSON straight from bytes and a multi-byte UTF-8 character split across reads is never
decoded half. It follows the WHATWG event-stream rules: LF, CRLF and CR line ends; ``data``
lines joined with LF; one optional space after the colon; comments and unknown fields
ignored; a leading BOM skipped; an event without data dispatches nothing.

The common case (one ``data: ...`` line per event, LF line ends, as vLLM and LMDeploy send)
takes a fast path of one ``find`` and one slice per event.
"""

from __future__ import annotations

__all__ = ["SSEDecoder"]

_BOM = b"\xef\xbb\xbf"
_DATA_PREFIX = b"data: "


class SSEDecoder:
    """Turns a byte stream into the data payloads of its complete events."""

    __slots__ = ("_buffer", "_cr_pending", "_head", "_started", "rescanned")

    def __init__(self) -> None:
        self.rescanned = 0
        """Bytes kept from earlier reads that were copied or searched again."""
        self._buffer = b""
        self._cr_pending = False
        self._started = False
        self._head = b""

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
        return self._buffer.strip(b"\n")

    def feed(self, data: bytes) -> list[bytes]:
        """Add the next piece of the stream; return the data of every event it completes."""
        if not self._started:
            data = self._skip_bom(data)
        if not data:
            return []
        if self._cr_pending:
            # The previous piece ended with CR, already taken as a line end: an LF that
            # opens this piece completes that CRLF and is not a second line end.
            self._cr_pending = False
            if data.startswith(b"\n"):
                data = data[1:]
        if b"\r" in data:
            self._cr_pending = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + data if self._buffer else data
        self.rescanned += 2 * len(self._buffer)  # copied, then searched from the start
        events: list[bytes] = []
        start = 0
        find = buffer.find
        while True:
            end = find(b"\n\n", start)
            if end < 0:
                break
            block = buffer[start:end]
            start = end + 2
            if block.startswith(_DATA_PREFIX) and b"\n" not in block:
                events.append(block[6:])
                continue
            payload = _parse_block(block)
            if payload is not None:
                events.append(payload)
        self._buffer = buffer[start:] if start else buffer
        return events


def _parse_block(block: bytes) -> bytes | None:
    """The general case: several lines, comments, other fields, no space after the colon."""
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
