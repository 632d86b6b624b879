"""The mock's gateway faults: the bytes they send, and an endless body that stops when the
client leaves."""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

from sagellm_users.mock_server.connection import HttpConnection
from sagellm_users.mock_server.gateway import (
    EndlessErrorBody,
    huge_error_response,
    huge_header_response,
)


class _Head:
    """Parses one response with llhttp, as a client would."""

    def __init__(self, data: bytes) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.complete = False
        parser = httptools.HttpResponseParser(self)
        parser.feed_data(data)
        self.status = parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def test_huge_error_is_a_complete_500_of_about_the_size_asked() -> None:
    response = _Head(huge_error_response(1_000_000, keep_alive=True))
    assert response.status == 500 and response.complete
    assert 1_000_000 <= len(response.body) <= 1_000_100
    assert response.body.startswith(b'{"error":{"message":"Injected upstream failure')


def test_huge_header_is_one_header_line_of_the_size_asked() -> None:
    response = _Head(huge_header_response(200_000, keep_alive=False))
    assert response.status == 502 and response.complete
    assert len(response.headers[b"x-gateway-trace"]) == 200_000
    assert response.headers[b"connection"] == b"close"


class _Conn:
    """What EndlessErrorBody uses of a connection."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.writing_paused = False

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_the_endless_body_writes_while_the_client_reads_and_stops_when_it_leaves() -> None:
    loop = asyncio.new_event_loop()
    conn = _Conn()
    body = EndlessErrorBody(cast(HttpConnection, conn), loop)
    try:
        body.start()
        head = _Head(conn.written[0])
        assert head.status == 502
        assert head.headers[b"transfer-encoding"] == b"chunked"
        loop.run_until_complete(asyncio.sleep(0.05))
        chunks = len(conn.written) - 1
        assert chunks >= 2  # one chunk now, then one a tick
        conn.writing_paused = True  # the client's socket buffer is full: nothing queued
        loop.run_until_complete(asyncio.sleep(0.02))
        assert len(conn.written) - 1 == chunks
        conn.writing_paused = False
        conn.closed = True  # the client hung up: no more ticks
        loop.run_until_complete(asyncio.sleep(0.02))
        assert len(conn.written) - 1 == chunks
        assert body._handle is None
    finally:
        body.cancel()
        loop.close()


def test_cancelling_the_endless_body_stops_its_timer() -> None:
    loop = asyncio.new_event_loop()
    conn = _Conn()
    body = EndlessErrorBody(cast(HttpConnection, conn), loop)
    try:
        body.start()
        body.cancel()
        written = len(conn.written)
        loop.run_until_complete(asyncio.sleep(0.02))
        assert len(conn.written) == written
    finally:
        loop.close()
