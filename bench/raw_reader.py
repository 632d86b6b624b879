"""The floor: the least a gevent client can do per streamed event, for bench/load_bench.py.

    python bench/raw_reader.py URL STREAMS MAX_TOKENS SECONDS

Each of STREAMS greenlets keeps one connection, sends a streamed chat request, and reads
the socket until the chunked body's last chunk: no HTTP parsing, no SSE framing, no JSON,
no timestamps, no metrics. What any real client costs above this is its own work.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402

_END = b"0\r\n\r\n"


def request_bytes(host: str, port: int, max_tokens: int) -> bytes:
    body = orjson.dumps(
        {
            "model": "mock-llm",
            "messages": [{"role": "user", "content": "bench"}],
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "stream": True,
        }
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def stream(host: str, port: int, request: bytes, stop_at: float) -> None:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while time.monotonic() < stop_at:
        sock.sendall(request)
        tail = b""
        while not tail.endswith(_END):
            data = sock.recv(65536)
            if not data:
                return
            tail = (tail + data)[-5:]
    sock.close()


def main() -> int:
    url, streams, max_tokens, seconds = sys.argv[1], *map(float, sys.argv[2:5])
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = request_bytes(host, port, int(max_tokens))
    stop_at = time.monotonic() + seconds
    jobs = [gevent.spawn(stream, host, port, request, stop_at) for _ in range(int(streams))]
    gevent.joinall(jobs, raise_error=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
