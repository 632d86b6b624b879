"""The bytes of the faults that come from proxies and gateways rather than the engine.

A proxy in front of vLLM may answer with interim responses of its own, compress what it
forwards, send keep-alives into a quiet stream, or hold a finished response open. These
helpers reshape what a generation writes (see :mod:`.faults` for when each is drawn); the
per-token path of a healthy stream never goes through them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from .wire import END_OF_BODY, http_chunk, response_head

__all__ = [
    "DONE_CHUNK",
    "EMPTY_DATA_CHUNK",
    "INTERIM_RESPONSES",
    "PING_CHUNK",
    "GzipChunks",
    "gzip_stream_head",
    "with_empty_data",
]

#: ``100 Continue`` (IIS/ARR and some gateways send it unasked) and ``103 Early Hints``
#: (CDNs add it) ahead of the real answer: interim responses a client must skip (RFC 9110).
INTERIM_RESPONSES = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 103 Early Hints\r\nlink: </v1/models>; rel=preload\r\n\r\n"
)

#: ``data: [DONE]`` without the chunked body's end.
DONE_CHUNK = http_chunk(b"data: [DONE]\n\n")

#: A comment line: what sse-starlette and proxies send to keep an idle stream open.
PING_CHUNK = http_chunk(b": ping\n\n")

#: ``data: `` with no payload, the keep-alive some proxies put into a quiet stream.
EMPTY_DATA_CHUNK = http_chunk(b"data: \n\n")


def gzip_stream_head(keep_alive: bool) -> bytes:
    """A 200 SSE head announcing ``Content-Encoding: gzip``."""
    return response_head(
        200,
        content_type=b"text/event-stream; charset=utf-8",
        length=None,
        keep_alive=keep_alive,
        extra=((b"content-encoding", b"gzip"),),
    )


def with_empty_data(write: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``write`` with a ``data: `` keep-alive chunk ahead of every write (every token)."""

    def write_after_keepalive(data: bytes) -> None:
        write(EMPTY_DATA_CHUNK + data)

    return write_after_keepalive


class GzipChunks:
    """Gzips a chunked body as a compressing proxy does, one write at a time.

    Each write is whole HTTP chunks (what a generation writes); their payloads go through
    one gzip stream, flushed (``Z_SYNC_FLUSH``) at every write so each event can be
    decoded as it arrives, and re-framed as one chunk. The body's end finishes the gzip
    stream first."""

    __slots__ = ("_write", "_zip")

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._zip = zlib.compressobj(wbits=31)  # 16 + 15: a gzip header and trailer

    def __call__(self, data: bytes) -> None:
        payloads, ended = _unchunk(data)
        z = self._zip
        packed = z.compress(b"".join(payloads))
        packed += z.flush(zlib.Z_FINISH if ended else zlib.Z_SYNC_FLUSH)
        self._write((http_chunk(packed) if packed else b"") + (END_OF_BODY if ended else b""))


def _unchunk(data: bytes) -> tuple[list[bytes], bool]:
    """The payloads of the whole chunks in ``data``, and whether the last-chunk was there."""
    payloads: list[bytes] = []
    pos = 0
    while pos < len(data):
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol], 16)
        if size == 0:
            return payloads, True
        start = eol + 2
        payloads.append(data[start : start + size])
        pos = start + size + 2
    return payloads, False
