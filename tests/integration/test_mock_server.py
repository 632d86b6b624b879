"""The real mock server process, spoken to with stdlib HTTP: routes, formats, timing, faults."""

from __future__ import annotations

import itertools
import os
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sagellm_users.mock_server import MockServerProcess
from tests.mock_http import Stream, call, connect, stream_all

CHAT = "/v1/chat/completions"
CMPL = "/v1/completions"
MESSAGES = [{"role": "user", "content": "hello mock world"}]  # 3 words + 4 = 7 tokens


def _server(*args: str) -> Iterator[str]:
    with MockServerProcess(args) as mock:
        assert mock.url is not None
        yield mock.url


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    yield from _server("--ttft-ms", "20", "--tbt-ms", "2", "--natural-output-tokens", "6")


@pytest.fixture(scope="module")
def ts_url() -> Iterator[str]:
    yield from _server("--ttft-ms", "10", "--tbt-ms", "20", "--send-timestamps")


# streaming formats ----------------------------------------------------------------------------


def test_chat_stream_sequence_is_exact(url: str) -> None:
    body = {"model": "mock-llm", "messages": MESSAGES, "max_tokens": 5, "stream": True}
    body["stream_options"] = {"include_usage": True}
    events = stream_all(url, CHAT, body)
    assert len(events) == 1 + 5 + 1 + 1
    role, *tokens, usage, done = events
    assert done == "[DONE]"
    ids = {e["id"] for e in events[:-1]}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    for e in events[:-1]:
        assert e["object"] == "chat.completion.chunk" and e["model"] == "mock-llm"
        assert isinstance(e["created"], int)
    assert role["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    for i, e in enumerate(tokens):
        (choice,) = e["choices"]
        assert set(choice["delta"]) == {"content"} and choice["delta"]["content"].startswith(" ")
        assert choice["logprobs"] is None
        assert choice["finish_reason"] == ("length" if i == 4 else None)
    assert tokens[-1]["choices"][0]["stop_reason"] is None
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 7, "total_tokens": 12, "completion_tokens": 5}


def test_completion_stream_sequence_is_exact(url: str) -> None:
    body = {"prompt": "one two three", "max_tokens": 4, "stream": True, "stream_options": {}}
    events = stream_all(url, CMPL, body)
    *tokens, usage, done = events
    assert done == "[DONE]" and len(tokens) == 4
    for i, e in enumerate(tokens):
        assert e["object"] == "text_completion" and e["id"].startswith("cmpl-")
        (choice,) = e["choices"]
        assert choice["text"].startswith(" ") and choice["logprobs"] is None
        assert choice["finish_reason"] == ("length" if i == 3 else None)
        assert choice["stop_reason"] is None
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4
    assert usage["usage"]["prompt_tokens"] == 3


def test_stream_without_usage_and_with_continuous_usage(url: str) -> None:
    events = stream_all(url, CMPL, {"prompt": "x", "max_tokens": 3, "stream": True})
    assert len(events) == 4 and "usage" not in events[-2]
    opts = {"include_usage": True, "continuous_usage_stats": True}
    body = {"messages": MESSAGES, "max_tokens": 3, "stream": True, "stream_options": opts}
    events = stream_all(url, CHAT, body)
    counts = [e["usage"]["completion_tokens"] for e in events[:-1]]
    assert counts == [0, 1, 2, 3, 3]


def test_natural_eos_min_tokens_and_ignore_eos(url: str) -> None:
    def finish(**extra: Any) -> tuple[int, str]:
        body = {"prompt": "x", "max_tokens": 20, "stream": True, "stream_options": {}, **extra}
        events = stream_all(url, CMPL, body)
        return events[-2]["usage"]["completion_tokens"], events[-3]["choices"][0]["finish_reason"]

    assert finish() == (6, "stop")  # the server's natural length is 6
    assert finish(min_tokens=9) == (10, "stop")  # EOS may come once 9 tokens did
    assert finish(ignore_eos=True) == (20, "length")
    assert finish(max_tokens=4) == (4, "length")


# non-streaming and plain routes ---------------------------------------------------------------


def test_non_streaming_bodies(url: str) -> None:
    t0 = time.perf_counter()
    status, headers, data = call(url, "POST", CHAT, {"messages": MESSAGES, "max_tokens": 3})
    elapsed = time.perf_counter() - t0
    assert status == 200 and headers["content-type"] == "application/json"
    doc = orjson.loads(data)
    assert doc["object"] == "chat.completion" and doc["id"].startswith("chatcmpl-")
    (choice,) = doc["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    assert len(choice["message"]["content"].split()) == 3
    assert doc["usage"] == {
        "prompt_tokens": 7,
        "total_tokens": 10,
        "completion_tokens": 3,
        "prompt_tokens_details": None,
    }
    assert elapsed >= 0.020 + 2 * 0.002  # TTFT plus two gaps before the body
    status, _, data = call(url, "POST", CMPL, {"prompt": "a b", "max_tokens": 2})
    doc = orjson.loads(data)
    assert status == 200 and doc["object"] == "text_completion"
    assert doc["choices"][0]["text"].startswith(" ") and doc["usage"]["completion_tokens"] == 2


def test_models_and_health(url: str) -> None:
    status, _, data = call(url, "GET", "/v1/models")
    doc = orjson.loads(data)
    assert status == 200 and doc["object"] == "list"
    (card,) = doc["data"]
    assert card["id"] == card["root"] == "mock-llm" and card["object"] == "model"
    assert card["owned_by"] == "sagellm-mock" and card["parent"] is None
    assert card["max_model_len"] == 4096 and isinstance(card["created"], int)
    status, headers, data = call(url, "GET", "/health")
    assert (status, data, headers["content-length"]) == (200, b"", "0")


def test_unknown_path_and_wrong_method(url: str) -> None:
    status, _, data = call(url, "GET", "/v1/nothing")
    assert (status, orjson.loads(data)) == (404, {"detail": "Not Found"})
    status, headers, data = call(url, "GET", CHAT)
    assert (status, orjson.loads(data)) == (405, {"detail": "Method Not Allowed"})
    assert headers["allow"] == "POST"
    status, _, _ = call(url, "POST", "/health", b"")
    assert status == 405


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (CHAT, b"{oops", 400, "JSON decode error"),
        (CHAT, {"max_tokens": 3}, 400, "messages: Field required"),
        (CHAT, {"messages": MESSAGES, "max_tokens": 0}, 400, "max_tokens must be at least 1"),
        (CHAT, {"messages": MESSAGES, "max_tokens": -2}, 400, "at least 1"),
        (CHAT, {"messages": MESSAGES, "n": 2}, 400, "n must be 1"),
        (CMPL, {"max_tokens": 3}, 400, "prompt"),
        (CMPL, {"prompt": "x", "max_tokens": 5000}, 400, "maximum context length"),
        (CMPL, {"prompt": "x", "model": "other"}, 404, "The model `other` does not exist."),
    ],
)
def test_client_errors_use_vllm_error_response(
    url: str, path: str, body: Any, status: int, message: str
) -> None:
    got, _, data = call(url, "POST", path, body)
    doc = orjson.loads(data)
    assert got == status
    assert set(doc) == {"error"}
    assert set(doc["error"]) == {"message", "type", "param", "code"}
    assert message in doc["error"]["message"] and doc["error"]["code"] == status
    assert doc["error"]["type"] == ("NotFoundError" if status == 404 else "BadRequestError")


# connection handling --------------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(url: str) -> None:
    conn = connect(url)
    body = {"prompt": "x", "max_tokens": 2, "stream": True}
    for _ in range(2):
        status, _, data = call(url, "POST", CMPL, body, conn=conn)
        assert status == 200 and data.endswith(b"data: [DONE]\n\n")
    status, _, _ = call(url, "GET", "/health", conn=conn)
    assert status == 200
    conn.close()


def _read_response(rfile: Any) -> tuple[int, bytes]:
    status = int(rfile.readline().split()[1])
    length = 0
    while (line := rfile.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, rfile.read(length)


def test_pipelined_requests_are_answered_in_order(url: str) -> None:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    body = b'{"prompt": "x", "max_tokens": 2}'
    slow = b"POST /v1/completions HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n%b" % (
        len(body),
        body,
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            slow + b"GET /nope HTTP/1.1\r\nhost: t\r\n\r\n" + b"GET /health HTTP/1.1\r\n\r\n"
        )
        rfile = sock.makefile("rb")
        first, second, third = (_read_response(rfile) for _ in range(3))
    assert first[0] == 200 and orjson.loads(first[1])["object"] == "text_completion"
    assert second == (404, b'{"detail":"Not Found"}')
    assert third == (200, b"")


def test_chunked_request_body_is_accepted(url: str) -> None:
    conn = connect(url)
    body = b'{"prompt": "a b c", "max_tokens": 1}'
    conn.request(
        "POST",
        CMPL,
        body=iter([body[:10], body[10:]]),
        headers={"Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    doc = orjson.loads(resp.read())
    conn.close()
    assert resp.status == 200 and doc["usage"]["prompt_tokens"] == 3


# timing -----------------------------------------------------------------------------------------


def test_send_timestamps_follow_the_absolute_schedule(ts_url: str) -> None:
    body = {"messages": MESSAGES, "max_tokens": 15, "stream": True, "stream_options": {}}
    s = Stream(ts_url, CHAT, body)
    s.read_all()
    timed = [(t, e) for t, e in s.events if e != "[DONE]"]
    t_request = {e["mock_t_request"] for _, e in timed}
    assert len(t_request) == 1
    t_req = t_request.pop()
    sends = [e["mock_t_send"] for _, e in timed]
    assert sends == sorted(sends) and sends[0] >= t_req >= s.t_send
    for t_recv, e in timed:  # same host, same monotonic clock
        assert 0 <= t_recv - e["mock_t_send"] < 0.5
    content = [
        e["mock_t_send"] for _, e in timed if e["choices"] and "content" in e["choices"][0]["delta"]
    ]
    content = content[1:]  # the first entry is the role chunk's empty content
    assert len(content) == 15
    gaps = [b - a for a, b in itertools.pairwise(content)]
    assert statistics.median(gaps) == pytest.approx(0.020, abs=0.003)
    assert content[-1] - content[0] == pytest.approx(14 * 0.020, abs=0.010)  # no drift
    assert content[0] - t_req >= 0.010  # TTFT


def test_non_streaming_body_carries_timestamps(ts_url: str) -> None:
    t0 = time.perf_counter()
    _, _, data = call(ts_url, "POST", CMPL, {"prompt": "x", "max_tokens": 3})
    doc = orjson.loads(data)
    assert t0 <= doc["mock_t_request"] <= doc["mock_t_send"] <= time.perf_counter()
    assert doc["mock_t_send"] - doc["mock_t_request"] >= 0.010 + 2 * 0.020


def _content_sends(url: str, body: dict[str, Any]) -> tuple[float, list[float]]:
    s = Stream(url, CHAT, {**body, "stream": True})
    s.read_all()
    timed = [e for _, e in s.events if e != "[DONE]" and e["choices"]]
    sends = [e["mock_t_send"] for e in timed if e["choices"][0]["delta"].get("content")]
    return timed[0]["mock_t_request"], sends


def test_prefill_cost_and_batch_slowdown() -> None:
    args = ["--ttft-ms", "5", "--ttft-per-input-token-ms", "0.5", "--tbt-ms", "5"]
    args += ["--tbt-per-running-ms", "5", "--send-timestamps"]
    with MockServerProcess(args) as m:
        assert m.url is not None
        t_req, short = _content_sends(m.url, {"messages": MESSAGES, "max_tokens": 12})
        long_messages = [{"role": "user", "content": "word " * 200}]
        t_req_long, long = _content_sends(m.url, {"messages": long_messages, "max_tokens": 2})
    # TTFT = 5 ms + 0.5 ms per prompt token (7 vs 204 tokens); timers only ever fire late
    short_ttft, long_ttft = short[0] - t_req, long[0] - t_req_long
    assert short_ttft >= 0.0085 and long_ttft >= 0.107
    assert long_ttft - short_ttft == pytest.approx(0.0985, abs=0.015)
    # one running sequence: every gap is 5 ms + 5 ms x 1
    gaps = [b - a for a, b in itertools.pairwise(short)]
    assert statistics.median(gaps) == pytest.approx(0.010, abs=0.003)


def _ttft(s: Stream) -> float:
    while True:
        event = s.next_event()
        if event != "[DONE]" and event["choices"] and event["choices"][0]["delta"].get("content"):
            return s.events[-1][0] - s.t_send


def test_max_concurrency_queues_the_excess_request() -> None:
    with MockServerProcess(["--max-concurrency", "1", "--ttft-ms", "30", "--tbt-ms", "10"]) as m:
        assert m.url is not None
        body = {"messages": MESSAGES, "max_tokens": 10, "stream": True}
        alone = Stream(m.url, CHAT, body)
        unloaded = _ttft(alone)
        alone.read_all()
        first = Stream(m.url, CHAT, body)
        _ttft(first)  # the first request now holds the only slot for ~90 ms more
        second = Stream(m.url, CHAT, {**body, "max_tokens": 2})
        queued = _ttft(second)
        first.read_all()
        second.read_all()
    assert unloaded < 0.1
    assert queued >= 0.030 + 0.080  # its own TTFT plus most of the first one's decode
    assert queued > unloaded + 0.05


def test_client_disconnect_frees_the_capacity_slot() -> None:
    with MockServerProcess(["--max-concurrency", "1", "--ttft-ms", "20", "--tbt-ms", "50"]) as m:
        assert m.url is not None
        body = {"messages": MESSAGES, "max_tokens": 200, "stream": True}
        leaver = Stream(m.url, CHAT, body)
        _ttft(leaver)  # holds the only slot, for another ~10 s unless cancelled
        leaver.conn.close()
        follower = Stream(m.url, CHAT, {**body, "max_tokens": 1})
        ttft = _ttft(follower)
        follower.read_all()
        assert ttft < 1.0
        assert m.stop() == 0
        assert "Traceback" not in m.stderr_tail()


# faults and auth --------------------------------------------------------------------------------


def test_injected_500() -> None:
    with MockServerProcess(["--error-rate-500", "1"]) as m:
        assert m.url is not None
        for _ in range(3):
            status, _, data = call(m.url, "POST", CHAT, {"messages": MESSAGES, "stream": True})
            assert status == 500
            assert orjson.loads(data)["error"]["type"] == "InternalServerError"
        assert call(m.url, "GET", "/health")[0] == 200


def test_injected_429_with_retry_after() -> None:
    with MockServerProcess(["--error-rate-429", "1", "--retry-after-s", "2"]) as m:
        assert m.url is not None
        status, headers, data = call(m.url, "POST", CMPL, {"prompt": "x"})
        assert status == 429 and headers["retry-after"] == "2"
        assert orjson.loads(data)["error"]["code"] == 429


def test_injected_stream_error() -> None:
    with MockServerProcess(["--error-rate-stream", "1", "--ttft-ms", "1", "--tbt-ms", "1"]) as m:
        assert m.url is not None
        body = {"messages": MESSAGES, "max_tokens": 10, "stream": True, "stream_options": {}}
        events = stream_all(m.url, CHAT, body)
        role, *tokens, error, done = events
        assert "role" in role["choices"][0]["delta"] and done == "[DONE]"
        assert len(tokens) == 5 and all(t["choices"][0]["finish_reason"] is None for t in tokens)
        assert error == {
            "error": {
                "message": "Internal server error",
                "type": "InternalServerError",
                "param": None,
                "code": 500,
            }
        }
        status, _, data = call(m.url, "POST", CMPL, {"prompt": "x", "max_tokens": 4})
        assert status == 500 and orjson.loads(data)["error"]["code"] == 500


def test_api_key_guards_v1_routes() -> None:
    with MockServerProcess(["--api-key", "sekrit"]) as m:
        assert m.url is not None
        status, _, data = call(m.url, "GET", "/v1/models")
        assert (status, orjson.loads(data)) == (401, {"error": "Unauthorized"})
        wrong = {"Authorization": "Bearer nope"}
        assert call(m.url, "POST", CMPL, {"prompt": "x"}, headers=wrong)[0] == 401
        right = {"Authorization": "Bearer sekrit"}
        assert call(m.url, "GET", "/v1/models", headers=right)[0] == 200
        assert call(m.url, "POST", CMPL, {"prompt": "x", "max_tokens": 1}, headers=right)[0] == 200
        assert call(m.url, "GET", "/health")[0] == 200


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_two_workers_serve_and_stop_cleanly() -> None:
    m = MockServerProcess(["--workers", "2", "--ttft-ms", "1", "--tbt-ms", "1"])
    url = m.start()
    try:
        assert m.pid is not None
        children = _children(m.pid)
        assert len(children) == 2
        conns = [connect(url) for _ in range(6)]
        for c in conns:
            c.request("POST", CMPL, body=b'{"prompt": "x", "max_tokens": 3}')
        for c in conns:
            resp = c.getresponse()
            assert (
                resp.status == 200 and orjson.loads(resp.read())["usage"]["completion_tokens"] == 3
            )
            c.close()
    finally:
        code = m.stop()
    assert code == 0
    for child in children:  # the parent reaped its workers before exiting
        assert not os.path.exists(f"/proc/{child}")


def _metric_values(text: str) -> dict[str, float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.labels["model_name"] == "mock-llm", sample
            if "le" not in sample.labels:
                values[sample.name] = sample.value
    return values


def test_metrics_count_what_the_engine_produced() -> None:
    with MockServerProcess(["--ttft-ms", "1", "--tbt-ms", "1"]) as mock:
        assert mock.url is not None
        status, headers, body = call(mock.url, "GET", "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        before = _metric_values(body.decode())
        assert before["vllm:generation_tokens_total"] == 0
        assert "sagellm_mock:tokenize_requests_total" not in before, "shown once one came"
        stream_all(mock.url, CHAT, {"messages": MESSAGES, "max_tokens": 5, "stream": True,
                                    "ignore_eos": True})  # fmt: skip
        call(mock.url, "POST", CMPL, {"prompt": "a b", "max_tokens": 3, "ignore_eos": True})
        assert call(mock.url, "POST", "/tokenize", {"prompt": "a b"})[0] == 200
        assert call(mock.url, "POST", "/tokenize", {"prompt": 7})[0] == 400
        _, _, body = call(mock.url, "GET", "/metrics")
    values = _metric_values(body.decode())
    assert values["sagellm_mock:tokenize_requests_total"] == 2, "every /tokenize request"
    assert values["vllm:generation_tokens_total"] == 5 + 3
    assert values["vllm:request_success_total"] == 2
    assert values["vllm:prompt_tokens_total"] == 7 + 2
    assert values["vllm:num_requests_running"] == values["vllm:num_requests_waiting"] == 0
    assert values["vllm:kv_cache_usage_perc"] == values["vllm:num_preemptions_total"] == 0
    assert values["vllm:time_to_first_token_seconds_count"] == 2
    assert values["vllm:e2e_request_latency_seconds_count"] == 2
    assert values["vllm:inter_token_latency_seconds_count"] == 4  # the stream's 4 gaps
    assert values["vllm:inter_token_latency_seconds_sum"] == pytest.approx(4 * 0.001)
    assert "# TYPE vllm:generation_tokens counter" in body.decode()


def test_a_reader_that_stalls_gets_every_event_in_order_afterwards() -> None:
    """Tokens the socket cannot take are queued behind each other, never reordered.

    60,000 tokens (7 MB) at no delay overflow the socket buffers while the client reads nothing,
    so the mock switches from direct writes to asyncio's buffer and back."""
    n = 60_000
    args = ["--ttft-ms", "0", "--tbt-ms", "0", "--max-model-len", str(2 * n)]
    with MockServerProcess(args) as mock:
        assert mock.url is not None
        parts = urlsplit(mock.url)
        assert parts.hostname == "127.0.0.1" and parts.port is not None
        body = orjson.dumps(
            {"model": "mock-llm", "messages": MESSAGES, "max_tokens": n, "ignore_eos": True,
             "stream": True, "stream_options": {"include_usage": True}}
        )  # fmt: skip
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                % (len(body), body)
            )
            # Read nothing until the mock has written every token (most of it queued).
            deadline = time.monotonic() + 20
            while _generated(mock.url) < n:
                assert time.monotonic() < deadline, "the mock stopped generating"
            raw = bytearray()
            while chunk := sock.recv(1 << 16):
                raw += chunk
    head, _, chunked = bytes(raw).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    payload = _dechunk(chunked)
    events = [line[6:] for line in payload.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    parsed = [orjson.loads(e) for e in events[:-1]]
    role, *steps = [e for e in parsed if e["choices"]]
    assert role["choices"][0]["delta"]["role"] == "assistant"
    assert len(steps) == n, "one event per token, held-back ones (empty text) too"
    assert sum(1 for e in steps if e["choices"][0]["delta"]["content"]) > n * 0.9
    assert parsed[-1]["usage"]["completion_tokens"] == n


def _generated(url: str) -> int:
    for line in call(url, "GET", "/metrics")[2].decode().splitlines():
        if line.startswith("vllm:generation_tokens_total"):
            return int(float(line.split()[-1]))
    raise AssertionError("no vllm:generation_tokens_total in /metrics")


def _dechunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
