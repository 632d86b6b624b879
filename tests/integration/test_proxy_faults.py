"""The mock's proxy-shaped faults on the wire, read with clients that share no code with ours.

The fault suite checks what our client makes of each; this checks that the mock sends
what a misbehaving proxy sends: real interim responses, a real gzip stream flushed per
event, and non-streamed answers in the same shape.
"""

from __future__ import annotations

import socket
import zlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest

from sagellm_users.mock_server import MockServerProcess
from tests.mock_http import call

CHAT = "/v1/chat/completions"


def _body(stream: bool) -> dict[str, object]:
    return {
        "model": "mock-llm",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 6,
        "stream": stream,
    }


@pytest.fixture(scope="module")
def gzip_mock() -> Iterator[str]:
    with MockServerProcess(["--ttft-ms", "1", "--tbt-ms", "1", "--error-rate-gzip", "1"]) as m:
        assert m.url is not None
        yield m.url


def test_a_gzip_stream_is_flushed_per_event_and_decodes_to_the_whole_stream(
    gzip_mock: str,
) -> None:
    status, headers, body = call(
        gzip_mock, "POST", CHAT, _body(True), headers={"Accept-Encoding": "identity"}
    )
    assert status == 200 and headers["content-encoding"] == "gzip"
    text = zlib.decompressobj(wbits=31).decompress(body)
    events = [e.removeprefix(b"data: ") for e in text.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    assert all("choices" in orjson.loads(e) for e in events[:-1])
    # Each write ends in a sync flush: what arrived so far decodes to whole events.
    flushes = body.split(b"\x00\x00\xff\xff")[:-1]
    assert flushes, "no sync flush: the stream could only be decoded at its end"
    decoder = zlib.decompressobj(wbits=31)
    for piece in flushes:
        assert decoder.decompress(piece + b"\x00\x00\xff\xff").endswith(b"\n\n")


def test_a_non_streamed_answer_is_gzipped_too(gzip_mock: str) -> None:
    status, headers, body = call(gzip_mock, "POST", CHAT, _body(False))
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert orjson.loads(zlib.decompress(body, wbits=31))["choices"]


def test_interim_responses_come_first_and_unasked() -> None:
    with MockServerProcess(["--ttft-ms", "1", "--error-rate-continue-100", "1"]) as mock:
        assert mock.url is not None
        parts = urlsplit(mock.url)
        assert parts.hostname is not None and parts.port is not None
        payload = orjson.dumps(_body(False))
        request = (
            f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        data = b""
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(request)  # no Expect: 100-continue
            while chunk := sock.recv(65536):
                data += chunk
    heads = [line for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert heads == [b"HTTP/1.1 100 Continue", b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 200 OK"]
    assert orjson.loads(data.rsplit(b"\r\n\r\n", 1)[1])["choices"]
