"""Plain HTTP helpers for talking to the mock server in tests (stdlib ``http.client``),
so the mock is checked with a client that shares no code with ours."""

from __future__ import annotations

import http.client
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["Stream", "call", "connect", "stream_all"]


def connect(url: str, timeout: float = 10.0) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def call(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    c = conn or connect(url)
    payload = None if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    c.request(method, path, body=payload, headers=headers or {})
    resp = c.getresponse()
    data = resp.read()
    if conn is None:
        c.close()
    return resp.status, resp.headers, data


class Stream:
    """One streamed response: JSON events (or "[DONE]") with client receive times."""

    def __init__(self, url: str, path: str, body: dict[str, Any], **headers: str) -> None:
        self.conn = connect(url)
        self.t_send = time.perf_counter()
        self.conn.request("POST", path, body=orjson.dumps(body), headers=headers)
        self.resp = self.conn.getresponse()
        self.events: list[tuple[float, Any]] = []

    def next_event(self) -> Any:
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("stream ended")
            if line.startswith(b"data: "):
                payload = line[6:].rstrip(b"\n")
                event = "[DONE]" if payload == b"[DONE]" else orjson.loads(payload)
                self.events.append((time.perf_counter(), event))
                return event

    def read_all(self) -> list[Any]:
        while not self.events or self.events[-1][1] != "[DONE]":
            self.next_event()
        assert self.resp.read() == b"\n"  # only the blank line ending the [DONE] event
        self.conn.close()
        return [e for _, e in self.events]


def stream_all(url: str, path: str, body: dict[str, Any]) -> list[Any]:
    s = Stream(url, path, body)
    assert s.resp.status == 200
    assert s.resp.getheader("content-type") == "text/event-stream; charset=utf-8"
    assert s.resp.getheader("transfer-encoding") == "chunked"
    return s.read_all()
