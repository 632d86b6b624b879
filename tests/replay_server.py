"""A server that replays recorded SSE streams on an exact schedule, for metric truth tests.

The mock server is ours, so a metric checked only against it confirms what we believe
servers send. This one sends bytes captured from a real server (see :mod:`tests.vllm_wire`)
at fixed offsets after each request arrives, so the truth of every timing is known: a
chunk written at ``t0 + 0.050`` is 50 ms after the request. Offsets are absolute from the
request's arrival, so a late write does not delay the ones after it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from time import perf_counter

import gevent
from gevent.server import StreamServer

__all__ = ["Script", "replay_server"]

Script = Sequence[tuple[float, bytes]]
"""(seconds after the request arrived, SSE event payload) pairs, in order."""

_HEAD = (
    b"HTTP/1.1 200 OK\r\nserver: replay\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _read_request(conn: socket.socket, pending: bytes) -> tuple[bytes, bytes] | None:
    """One request: its request line, and the bytes read past its body (kept for the next)."""
    while b"\r\n\r\n" not in pending:
        data = conn.recv(65536)
        if not data:
            return None
        pending += data
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None
        rest += data
    return head.split(b"\r\n", 1)[0], rest[length:]


def _answer_get(line: bytes) -> bytes:
    """The routes a load test reads before it starts: the model list and health."""
    body = b""
    if b" /v1/models " in line:
        body = b'{"object":"list","data":[{"id":"tiny","object":"model"}]}'
    elif b" /health " not in line:
        return b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)


def _serve(script: Script, conn: socket.socket, head_delay_s: float) -> None:
    pending = b""
    with conn:
        while True:
            request = _read_request(conn, pending)
            if request is None:
                return
            line, pending = request
            if not line.startswith(b"POST "):
                conn.sendall(_answer_get(line))
                continue
            t0 = perf_counter()
            if head_delay_s:
                gevent.sleep(head_delay_s)
            conn.sendall(_HEAD)
            for offset, event in script:
                delay = t0 + offset - perf_counter()
                if delay > 0:
                    gevent.sleep(delay)
                data = b"data: " + event + b"\n\n"
                conn.sendall(b"%x\r\n%b\r\n" % (len(data), data))
            conn.sendall(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")


@contextmanager
def replay_server(script: Script, head_delay_s: float = 0.0) -> Iterator[str]:
    """A server on a free port that answers every POST with ``script`` (its headers
    ``head_delay_s`` after the request, as a server that answers only once its first token
    is out); yields its URL."""
    server = StreamServer(("127.0.0.1", 0), lambda conn, _addr: _serve(script, conn, head_delay_s))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.stop(timeout=1)
