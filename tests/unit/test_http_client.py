"""The HTTP transport and OpenAIClient against tiny scripted servers on 127.0.0.1.

Each :class:`ScriptedServer` listens on port 0 and runs a script per accepted connection in a
thread of its own: the script reads requests and writes exactly the bytes a test wants,
including broken ones. Scripts wait on :class:`threading.Event` objects the test sets, never
on sleeps. The module works both with plain threads and under gevent's monkey-patching
(which Locust applies when another test module imports it), so it only looks up
``threading`` and ``socket`` attributes at call time.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import pytest

from sagellm_users._backends import GenerationRequest, OpenAIClient, Timeouts, http_core
from sagellm_users._backends.base import Chunk, Usage
from sagellm_users._backends.cooperative import CooperativeReader
from sagellm_users._backends.http import HttpTransport, parse_base_url
from sagellm_users._errors import (
    ConfigError,
    ConnectError,
    HTTPStatusError,
    LLMError,
    MalformedEventError,
    MissingDoneError,
    ProtocolError,
    ReadTimeout,
    ServerErrorEvent,
    StreamCutError,
    TotalTimeout,
)

SCRIPT_TIMEOUT = 5.0
"""Seconds any server-side wait may take before the script gives up (bounds every test)."""

CHAT_PATH = "/v1/chat/completions"


# -- the scripted server ------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Names lower-cased."""
    body: bytes
    raw: bytes
    """The request as received, head and body."""

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """The server's side of one accepted connection."""

    def __init__(self, sock: socket.socket, index: int, server: ScriptedServer) -> None:
        self.sock = sock
        self.index = index
        """0 for the first connection the server accepted, 1 for the second, ..."""
        self.server = server
        self._buffer = b""

    def read_request(self) -> Request | None:
        """The next request, or None when the client closed the connection first."""
        while b"\r\n\r\n" not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                assert not self._buffer, f"client closed inside a request: {self._buffer!r}"
                return None
            self._buffer += data
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, version = lines[0].split(" ")
        assert version == "HTTP/1.1"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = self.sock.recv(65536)
            assert data, "client closed inside a request body"
            rest += data
        body, self._buffer = rest[:length], rest[length:]
        request = Request(method, path, headers, body, head + b"\r\n\r\n" + body)
        with self.server.lock:
            self.server.requests.append(request)
        return request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait(self, event: threading.Event) -> None:
        """Block until the test sets ``event`` (or the server stops)."""
        assert event.wait(SCRIPT_TIMEOUT), "the test never set the event"

    def wait_for_close(self) -> None:
        """Read until the client closes the connection (it must not send another request)."""
        assert self.read_request() is None

    def close(self) -> None:
        self.sock.close()


Script = Callable[[Connection], None]


class ScriptedServer:
    """A TCP listener on 127.0.0.1:0 that runs ``script`` for every connection it accepts.

    Script failures (assertions) are kept and raised by :meth:`stop`; an ``OSError`` in a
    script means the client went away and ends that script quietly.
    """

    def __init__(self, script: Script) -> None:
        self._script = script
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests: list[Request] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            if self.stopping.is_set():
                sock.close()
                return
            sock.settimeout(SCRIPT_TIMEOUT)
            with self.lock:
                index = self.connections
                self.connections += 1
                self._socks.append(sock)
            thread = threading.Thread(
                target=self._run, args=(Connection(sock, index, self),), daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: Connection) -> None:
        try:
            self._script(conn)
        except OSError:
            pass  # the client closed or reset the connection: the script ends here
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            conn.close()

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):  # already closed by its script
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):  # wake the blocked accept()
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self._acceptor.join(SCRIPT_TIMEOUT)
        for thread in self._threads:
            thread.join(SCRIPT_TIMEOUT)
        self._listener.close()
        alive = [t for t in (self._acceptor, *self._threads) if t.is_alive()]
        assert not alive, "a scripted server thread did not stop"
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    """Start scripted servers; all of them are stopped (and their errors raised) at teardown."""
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(autouse=True)
def _no_env_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture(autouse=True, params=["cooperative", "portable"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both read paths: gevent's raw socket with one lazy deadline timer
    (the load-test path), and ``sock.recv`` with socket timeouts (TLS, no gevent)."""
    if request.param == "portable":
        monkeypatch.setattr(CooperativeReader, "for_socket", classmethod(lambda cls, sock: None))
    return str(request.param)


# -- response bytes -----------------------------------------------------------------------------

_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}
LAST_CHUNK = b"0\r\n\r\n"


def head(status: int = 200, headers: Mapping[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


CHUNKED_SSE_HEAD = head(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(*events: Any) -> bytes:
    """SSE bytes: dicts as JSON, bytes as given (e.g. b"[DONE]")."""
    out = b""
    for event in events:
        data = event if isinstance(event, bytes) else json.dumps(event).encode()
        out += b"data: " + data + b"\n\n"
    return out


def response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    return head(status, {"Content-Length": str(len(body)), **(headers or {})}) + body


def json_response(status: int, obj: Any, headers: Mapping[str, str] | None = None) -> bytes:
    return response(
        status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


def chunked_sse(events: bytes) -> bytes:
    return CHUNKED_SSE_HEAD + chunk(events) + LAST_CHUNK


def delta(content: str | None = None, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(fields)
    if content is not None:
        d["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": d, "finish_reason": finish}],
    }


USAGE_EVENT = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "model": "m",
    "choices": [],
    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
}
DONE = b"[DONE]"
TOKENS = ["Hel", "lo", " wor", "ld"]
# vLLM's shape of a stream that stops on EOS: the role chunk, one chunk per token, the EOS
# step as an empty chunk with finish_reason "stop" (usage counts it: 5), the usage chunk.
VLLM_EVENTS = sse(
    delta("", role="assistant"),
    *(delta(t) for t in TOKENS),
    delta("", finish="stop"),
    USAGE_EVENT,
    DONE,
)


def answer(*responses: bytes) -> Script:
    """A script that answers successive requests on a connection with ``responses``."""

    def script(conn: Connection) -> None:
        for data in responses:
            if conn.read_request() is None:
                return
            conn.send(data)
        conn.wait_for_close()

    return script


def in_turn(*responses: bytes) -> Script:
    """Answer the server's n-th request with ``responses[n]``, whatever connection it is on."""
    pending = list(responses)

    def script(conn: Connection) -> None:
        while conn.read_request() is not None:
            with conn.server.lock:
                data = pending.pop(0)
            conn.send(data)

    return script


def once(data: bytes) -> Script:
    """Read one request, write ``data``, then close the connection."""

    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(data)

    return script


def route(routes: Mapping[str, bytes]) -> Script:
    """Answer every request by its path; unknown paths get a 404."""

    def script(conn: Connection) -> None:
        while (request := conn.read_request()) is not None:
            conn.send(routes.get(request.path, response(404, b'{"detail":"Not Found"}')))

    return script


def chat(prompt: str = "hi", **kw: Any) -> GenerationRequest:
    return GenerationRequest(api="chat", model="m", prompt=prompt, max_tokens=4, **kw)


def client_for(url: str, **kw: Any) -> OpenAIClient:
    kw.setdefault("timeouts", Timeouts(connect=2, read=SCRIPT_TIMEOUT, total=10))
    return OpenAIClient(url, **kw)


def collect(client: OpenAIClient, request: GenerationRequest) -> list[Chunk]:
    with client.stream(request) as stream:
        return list(stream)


def collect_until_error(
    client: OpenAIClient, request: GenerationRequest, error: type[LLMError]
) -> tuple[list[Chunk], LLMError]:
    chunks: list[Chunk] = []
    with pytest.raises(error) as info, client.stream(request) as stream:
        for item in stream:
            chunks.append(item)
    return chunks, info.value


# -- streaming ----------------------------------------------------------------------------------


def test_chunked_stream_is_parsed_into_chunks(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer(chunked_sse(VLLM_EVENTS)))
    with client_for(server.url) as client:
        stream = client.stream(chat("Tell me"))
        chunks = list(stream)
    assert [c.text for c in chunks] == ["", *TOKENS, "", ""]
    assert [c.has_output for c in chunks] == [False, True, True, True, True, False, False]
    assert [c.step for c in chunks] == [False, True, True, True, True, True, False]
    assert chunks[-2].finish_reason == "stop"
    assert chunks[-1].usage == Usage(prompt_tokens=5, completion_tokens=5)
    assert stream.status == 200
    assert stream.t_send is not None and stream.t_done is not None
    assert stream.connect_s is not None and stream.connect_s >= 0
    assert all(stream.t_send <= c.t <= stream.t_done for c in chunks)
    request = server.requests[0]
    assert request.method == "POST"
    assert request.path == CHAT_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.json() == {
        "model": "m",
        "messages": [{"role": "user", "content": "Tell me"}],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_events_split_across_http_chunks_and_writes(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    cuts = [7, 60, 61, len(VLLM_EVENTS) - 3]
    pieces = [VLLM_EVENTS[a:b] for a, b in zip([0, *cuts], [*cuts, len(VLLM_EVENTS)], strict=True)]

    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(CHUNKED_SSE_HEAD)
        for piece in pieces:
            conn.send(chunk(piece))
        conn.send(LAST_CHUNK)
        conn.wait_for_close()

    server = serve(script)
    with client_for(server.url) as client:
        chunks = collect(client, chat())
    assert "".join(c.text for c in chunks) == "Hello world"
    assert sum(c.has_output for c in chunks) == 4


def test_events_in_separate_writes_get_increasing_timestamps(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    words = ["one", "two", "three", "four"]
    gates = [threading.Event() for _ in words[1:]]

    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(CHUNKED_SSE_HEAD + chunk(sse(delta(words[0]))))
        for gate, word in zip(gates, words[1:], strict=True):
            conn.wait(gate)
            conn.send(chunk(sse(delta(word))))
        conn.send(chunk(sse(DONE)) + LAST_CHUNK)
        conn.wait_for_close()

    server = serve(script)
    chunks: list[Chunk] = []
    yielded_at: list[float] = []
    with client_for(server.url) as client, client.stream(chat()) as stream:
        for item in stream:
            yielded_at.append(perf_counter())
            chunks.append(item)
            if len(chunks) <= len(gates):
                gates[len(chunks) - 1].set()  # only now may the server write the next event
    assert [c.text for c in chunks] == words
    times = [c.t for c in chunks]
    assert all(a < b for a, b in itertools.pairwise(times)), times
    assert stream.t_send is not None
    assert stream.t_send < times[0]
    # Each event is stamped at its read, before it was handed out, and the next event
    # could not have been read before the previous one was handed out.
    for i, t in enumerate(times):
        assert t <= yielded_at[i]
        if i:
            assert t > yielded_at[i - 1]


def test_content_length_stream(serve: Callable[[Script], ScriptedServer]) -> None:
    sse_head = {"Content-Type": "text/event-stream"}
    server = serve(answer(response(200, VLLM_EVENTS, sse_head)))
    with client_for(server.url) as client:
        chunks = collect(client, chat())
    assert "".join(c.text for c in chunks) == "Hello world"
    assert chunks[-1].usage == Usage(5, 5)


def test_close_delimited_stream(serve: Callable[[Script], ScriptedServer]) -> None:
    body_head = head(200, {"Content-Type": "text/event-stream", "Connection": "close"})
    server = serve(once(body_head + VLLM_EVENTS))
    with client_for(server.url) as client:
        chunks = collect(client, chat())
        assert "".join(c.text for c in chunks) == "Hello world"
        assert client.transport._idle == []  # a close-delimited connection is not pooled


def test_non_streamed_generate(serve: Callable[[Script], ScriptedServer]) -> None:
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello world"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    server = serve(answer(json_response(200, body)))
    with client_for(server.url) as client:
        completion = client.generate(chat(stream=False))
    assert completion.text == "Hello world"
    assert completion.usage == Usage(3, 2)
    assert completion.finish_reason == "stop"
    assert completion.chunks == 1
    assert completion.t_first_output is not None and completion.t_send is not None
    assert completion.t_send <= completion.t_first_output <= completion.t_done
    request = server.requests[0]
    assert request.json()["stream"] is False
    assert "stream_options" not in request.json()
    assert request.headers["content-type"] == "application/json"
    assert "accept" not in request.headers


def test_streamed_generate_collects_the_text(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer(chunked_sse(VLLM_EVENTS)))
    with client_for(server.url) as client:
        completion = client.generate(chat())
    assert completion.text == "Hello world"
    assert completion.chunks == 5, "four tokens and the EOS step"
    assert completion.usage == Usage(5, 5)
    assert completion.finish_reason == "stop"
    assert completion.t_first_output is not None and completion.t_send is not None
    assert completion.t_send < completion.t_first_output <= completion.t_done


def test_completions_stream(serve: Callable[[Script], ScriptedServer]) -> None:
    events = sse(
        {"choices": [{"index": 0, "text": "Once", "finish_reason": None}]},
        {"choices": [{"index": 0, "text": " upon", "finish_reason": "length"}]},
        DONE,
    )
    server = serve(answer(chunked_sse(events)))
    request = GenerationRequest(api="completions", model="m", prompt="Tell")
    with client_for(server.url) as client:
        chunks = collect(client, request)
    assert [c.text for c in chunks] == ["Once", " upon"]
    assert server.requests[0].path == "/v1/completions"
    assert server.requests[0].json()["prompt"] == "Tell"


def test_abandoned_stream_closes_its_connection(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(CHUNKED_SSE_HEAD + chunk(sse(delta("a"))))
        conn.wait_for_close()  # the client must hang up, not wait for more

    server = serve(script)
    with client_for(server.url) as client:
        with client.stream(chat()) as stream:
            for item in stream:
                assert item.text == "a"
                break
        assert stream.t_done is not None
        assert client.transport._idle == []


# -- connections --------------------------------------------------------------------------------


def test_connection_is_reused_across_requests(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer(chunked_sse(VLLM_EVENTS), chunked_sse(VLLM_EVENTS)))
    with client_for(server.url) as client:
        first = client.stream(chat("a"))
        assert "".join(c.text for c in first) == "Hello world"
        second = client.stream(chat("b"))
        assert "".join(c.text for c in second) == "Hello world"
    assert server.connections == 1
    assert len(server.requests) == 2
    assert first.connect_s is not None
    assert second.connect_s is None  # a pooled connection: no setup time


def _sinks_alive() -> int:
    return sum(isinstance(o, http_core._Sink) for o in gc.get_objects())


def test_finished_requests_leave_no_cycles_for_the_garbage_collector(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    """A cycle per request is freed only by a full collection, which at thousands of
    requests a second comes a minute later with tens of thousands of objects waiting: the
    heap grows around them. Every exchange must be freed by reference counting alone."""
    answered = serve(answer(*[chunked_sse(VLLM_EVENTS)] * 3))

    def close_unanswered(conn: Connection) -> None:
        assert conn.read_request() is not None

    unanswered = serve(close_unanswered)
    gc.collect()
    before = _sinks_alive()
    gc.disable()
    try:
        with client_for(answered.url) as client:
            for _ in range(3):
                assert "".join(c.text for c in collect(client, chat())) == "Hello world"
        with client_for(unanswered.url) as client, pytest.raises(ConnectError):
            collect(client, chat())
        left = _sinks_alive() - before
    finally:
        gc.enable()
    assert left == 0, f"{left} exchanges were left in reference cycles"


def test_stale_pooled_connection_is_replaced(serve: Callable[[Script], ScriptedServer]) -> None:
    closed = threading.Event()

    def script(conn: Connection) -> None:
        if conn.index == 0:
            assert conn.read_request() is not None
            conn.send(chunked_sse(VLLM_EVENTS))  # keep-alive response ...
            conn.close()  # ... then the server drops the idle connection
            closed.set()
        else:
            answer(chunked_sse(VLLM_EVENTS))(conn)

    server = serve(script)
    with client_for(server.url) as client:
        assert "".join(c.text for c in collect(client, chat("a"))) == "Hello world"
        assert len(client.transport._idle) == 1
        assert closed.wait(SCRIPT_TIMEOUT)
        stream = client.stream(chat("b"))
        assert "".join(c.text for c in stream) == "Hello world"
    assert server.connections == 2
    assert [r.json()["messages"][0]["content"] for r in server.requests] == ["a", "b"]
    assert stream.connect_s is not None  # the retry opened a new connection


def test_stale_connection_in_the_pool_is_retried_on_a_new_one(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    """The retry path on its own: a pooled socket whose server side is already closed."""
    closed = threading.Event()

    def script(conn: Connection) -> None:
        if conn.index == 0:
            conn.close()  # the idle connection the server drops
            closed.set()
        else:
            answer(chunked_sse(VLLM_EVENTS))(conn)

    server = serve(script)
    with client_for(server.url) as client:
        stale = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        assert closed.wait(SCRIPT_TIMEOUT)
        client.transport._idle.append(stale)
        stream = client.stream(chat("b"))
        assert "".join(c.text for c in stream) == "Hello world"
        assert stale.fileno() == -1  # the stale socket was closed, not pooled again
    assert server.connections == 2
    assert len(server.requests) == 1
    assert stream.connect_s is not None  # the retry opened a new connection


def _above_select_limit(sock: socket.socket) -> socket.socket:
    """``sock`` moved to a file descriptor >= 1024, where ``select()`` cannot go (a load
    test with more than about a thousand users has most of its connections there)."""
    import fcntl
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= 1100:
        if hard != resource.RLIM_INFINITY and hard <= 1100:
            pytest.skip(f"the open files limit ({hard}) leaves no descriptor above 1024")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    high = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD, 1024)
    moved = socket.socket(sock.family, sock.type, sock.proto, fileno=high)
    sock.close()
    assert moved.fileno() >= 1024
    return moved


@pytest.mark.parametrize("server_closed", [False, True], ids=["alive", "closed"])
def test_an_idle_connection_above_fd_1024_is_checked_without_error(
    serve: Callable[[Script], ScriptedServer], server_closed: bool
) -> None:
    """An idle connection on fd >= 1024 is reused when alive and dropped when the server
    closed it; ``select()`` raised ``ValueError: filedescriptor out of range``."""
    closed = threading.Event()

    def script(conn: Connection) -> None:
        if conn.index == 0 and server_closed:
            conn.close()
            closed.set()
        else:
            answer(chunked_sse(VLLM_EVENTS))(conn)

    server = serve(script)
    with client_for(server.url) as client:
        idle = _above_select_limit(socket.create_connection(("127.0.0.1", server.port), 2))
        if server_closed:
            assert closed.wait(SCRIPT_TIMEOUT)
        client.transport._idle.append(idle)
        stream = client.stream(chat("b"))
        assert "".join(c.text for c in stream) == "Hello world"
    assert (stream.connect_s is not None) is server_closed  # reused unless found closed
    assert server.connections == (2 if server_closed else 1)


def test_new_connection_closed_before_answering(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(conn: Connection) -> None:
        assert conn.read_request() is not None

    server = serve(script)
    with client_for(server.url) as client, pytest.raises(ConnectError, match="closed"):
        collect(client, chat())
    assert server.connections == 1  # a fresh connection is not retried


def test_connection_refused(free_port: int) -> None:
    with client_for(f"http://127.0.0.1:{free_port}") as client:
        stream = client.stream(chat())
        with pytest.raises(ConnectError) as info:
            list(stream)
    assert f"127.0.0.1:{free_port}" in str(info.value)
    assert stream.t_send is None
    assert stream.t_done is not None


def test_closed_transport_refuses_requests(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer())
    client = client_for(server.url)
    client.close()
    with pytest.raises(ConnectError, match="closed"):
        client.stream(chat())


# -- HTTP errors --------------------------------------------------------------------------------


def test_http_500_with_json_body(serve: Callable[[Script], ScriptedServer]) -> None:
    body = {"error": {"message": "engine crashed", "type": "InternalServerError", "code": 500}}
    server = serve(answer(json_response(500, body)))
    with client_for(server.url) as client:
        stream = client.stream(chat())
        with pytest.raises(HTTPStatusError) as info:
            list(stream)
    error = info.value
    assert error.status == 500
    assert error.reason == "Internal Server Error"
    assert "engine crashed" in error.body_excerpt
    assert error.retry_after is None
    assert str(error).startswith("HTTP 500 Internal Server Error: ")
    assert stream.status == 500


def test_http_429_with_retry_after(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer(json_response(429, {"error": "slow down"}, {"Retry-After": "2"})))
    with client_for(server.url) as client, pytest.raises(HTTPStatusError) as info:
        collect(client, chat())
    assert info.value.status == 429
    assert info.value.retry_after == 2.0
    assert "Retry-After 2 s" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("1.5", 1.5), ("-3", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)
def test_retry_after_forms(
    serve: Callable[[Script], ScriptedServer], value: str, expected: float | None
) -> None:
    server = serve(answer(response(429, b"", {"Retry-After": value})))
    with client_for(server.url) as client, pytest.raises(HTTPStatusError) as info:
        collect(client, chat())
    assert info.value.retry_after == expected


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_request_written_on_a_reused_connection_is_never_resent(
    serve: Callable[[Script], ScriptedServer], how: str
) -> None:
    """The server takes the second request on the kept-alive connection, then closes (or
    resets) it without answering: the request may have been acted on, so the client fails
    it with ConnectError instead of sending it again behind the caller's back."""

    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(chunked_sse(VLLM_EVENTS))
        assert conn.read_request() is not None
        if how == "reset":
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    server = serve(script)
    with client_for(server.url) as client:
        assert "".join(c.text for c in collect(client, chat("a"))) == "Hello world"
        word = "reset" if how == "reset" else "closed"
        with pytest.raises(ConnectError, match=f"server {word} the connection before answering"):
            collect(client, chat("b"))
    assert server.connections == 1
    assert len(server.requests) == 2


def test_http_404_on_a_wrong_path_then_the_connection_is_reused(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    server = serve(in_turn(response(404, b'{"detail":"Not Found"}'), chunked_sse(VLLM_EVENTS)))
    with client_for(server.url + "/api") as client:
        with pytest.raises(HTTPStatusError) as info:
            collect(client, chat())
        assert info.value.status == 404
        assert "Not Found" in info.value.body_excerpt
        assert "".join(c.text for c in collect(client, chat())) == "Hello world"
    assert server.paths == ["/api" + CHAT_PATH] * 2
    assert server.connections == 1  # the error body was read, so the connection was kept


# -- broken streams ----------------------------------------------------------------------------


def test_non_json_event(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer(chunked_sse(sse(delta("ok")) + b"data: not json\n\n" + sse(DONE))))
    with client_for(server.url) as client:
        chunks, error = collect_until_error(client, chat(), MalformedEventError)
    assert [c.text for c in chunks] == ["ok"]
    assert "not json" in str(error)


def test_connection_dropped_mid_stream(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(once(CHUNKED_SSE_HEAD + chunk(sse(delta("a"), delta("b")))))
    with client_for(server.url) as client:
        chunks, error = collect_until_error(client, chat(), StreamCutError)
    assert [c.text for c in chunks] == ["a", "b"]
    assert "before the response ended" in str(error)


def test_connection_reset_mid_stream(serve: Callable[[Script], ScriptedServer]) -> None:
    got_first = threading.Event()

    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(CHUNKED_SSE_HEAD + chunk(sse(delta("a"))))
        conn.wait(got_first)
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = serve(script)
    chunks: list[Chunk] = []
    with client_for(server.url) as client, pytest.raises(StreamCutError) as info:
        for item in client.stream(chat()):
            chunks.append(item)
            got_first.set()
    assert [c.text for c in chunks] == ["a"]
    assert "reset" in str(info.value)


def test_cut_chunked_body_with_capitalised_coding(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    sse_head = head(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "Chunked"})
    server = serve(once(sse_head + chunk(sse(delta("a")))))
    with client_for(server.url) as client:
        chunks, _ = collect_until_error(client, chat(), StreamCutError)
    assert [c.text for c in chunks] == ["a"]


def test_connection_dropped_inside_a_content_length_body(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    events = sse(delta("a"))
    server = serve(once(head(200, {"Content-Length": str(len(events) + 500)}) + events))
    with client_for(server.url) as client:
        chunks, _ = collect_until_error(client, chat(), StreamCutError)
    assert [c.text for c in chunks] == ["a"]


def test_close_delimited_stream_ending_inside_an_event(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    server = serve(once(head(200) + sse(delta("a")) + b'data: {"choices": [{"delta"'))
    with client_for(server.url) as client:
        chunks, error = collect_until_error(client, chat(), StreamCutError)
    assert [c.text for c in chunks] == ["a"]
    assert "inside an event" in str(error)


def test_stream_without_done(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer(chunked_sse(sse(delta("a"), delta("b", finish="stop")))))
    with client_for(server.url) as client:
        chunks, error = collect_until_error(client, chat(), MissingDoneError)
    assert [c.text for c in chunks] == ["a", "b"]
    assert "[DONE]" in str(error)


def test_error_event_inside_a_200_stream(serve: Callable[[Script], ScriptedServer]) -> None:
    error_event = {
        "error": {"message": "out of KV cache", "type": "InternalServerError", "code": 500}
    }
    server = serve(answer(chunked_sse(sse(delta("a"), error_event, DONE))))
    with client_for(server.url) as client:
        chunks, error = collect_until_error(client, chat(), ServerErrorEvent)
    assert [c.text for c in chunks] == ["a"]
    assert isinstance(error, ServerErrorEvent)
    assert error.code == 500
    assert error.error_type == "InternalServerError"
    assert "out of KV cache" in str(error)


def test_garbage_instead_of_http(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(once(b"SSH-2.0-OpenSSH_9.6\r\nthis is not http\r\n\r\n"))
    with client_for(server.url) as client, pytest.raises(ProtocolError) as info:
        collect(client, chat())
    assert type(info.value) is ProtocolError
    assert "invalid HTTP response" in str(info.value)


def test_bad_chunked_framing(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(once(CHUNKED_SSE_HEAD + b"zz\r\nnot a chunk\r\n"))
    with client_for(server.url) as client, pytest.raises(ProtocolError):
        collect(client, chat())


def test_stream_with_lone_cr_line_endings(serve: Callable[[Script], ScriptedServer]) -> None:
    events = sse(delta("a"), delta("b"), DONE).replace(b"\n", b"\r")
    server = serve(answer(chunked_sse(events)))
    with client_for(server.url) as client:
        assert [c.text for c in collect(client, chat())] == ["a", "b"]


# -- timeouts ------------------------------------------------------------------------------------


def test_read_timeout_before_the_headers(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.server.stopping.wait(SCRIPT_TIMEOUT)  # never answers

    server = serve(script)
    with client_for(server.url, timeouts=Timeouts(connect=2, read=0.2)) as client:
        started = perf_counter()
        with pytest.raises(ReadTimeout, match=r"0\.2 s"):
            collect(client, chat())
        elapsed = perf_counter() - started
    assert 0.15 <= elapsed < 3.0


def test_read_timeout_in_the_middle_of_a_stream(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(CHUNKED_SSE_HEAD + chunk(sse(delta("a"))))
        conn.server.stopping.wait(SCRIPT_TIMEOUT)

    server = serve(script)
    with client_for(server.url, timeouts=Timeouts(connect=2, read=0.2)) as client:
        chunks, _ = collect_until_error(client, chat(), ReadTimeout)
    assert [c.text for c in chunks] == ["a"]


def test_total_timeout_while_events_trickle(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(CHUNKED_SSE_HEAD)
        n = 0
        while not conn.server.stopping.wait(0.05):  # one event every 50 ms, forever
            conn.send(chunk(sse(delta(f"t{n}"))))
            n += 1

    server = serve(script)
    timeouts = Timeouts(connect=2, read=SCRIPT_TIMEOUT, total=0.3)
    with client_for(server.url, timeouts=timeouts) as client:
        stream = client.stream(chat())
        chunks: list[Chunk] = []
        with pytest.raises(TotalTimeout, match=r"0\.3 s"):
            for item in stream:
                chunks.append(item)
    assert chunks, "events arrived before the limit"
    assert stream.t_send is not None and stream.t_done is not None
    assert 0.29 <= stream.t_done - stream.t_send < 3.0


def test_events_slower_than_nothing_but_faster_than_the_read_timeout_never_time_out(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    """The read deadline moves with every read: 8 events 0.1 s apart under a 0.25 s read
    timeout take 0.8 s and must all arrive (the lazy timer re-arms, it does not expire)."""

    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(CHUNKED_SSE_HEAD)
        for n in range(8):
            conn.server.stopping.wait(0.1)
            conn.send(chunk(sse(delta(f"t{n}"))))
        conn.send(chunk(sse(b"[DONE]")) + LAST_CHUNK)

    server = serve(script)
    with client_for(server.url, timeouts=Timeouts(connect=2, read=0.25)) as client:
        chunks = list(client.stream(chat()))
    assert [c.text for c in chunks] == [f"t{n}" for n in range(8)]


def test_gevent_sockets_take_the_cooperative_read_path(
    serve: Callable[[Script], ScriptedServer], read_path: str
) -> None:
    server = serve(lambda conn: None)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        reader = CooperativeReader.for_socket(sock)
    assert (reader is not None) == (read_path == "cooperative")


# -- URLs, keys and headers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ("", CHAT_PATH),
        ("/", CHAT_PATH),
        ("/v1", CHAT_PATH),
        ("/v1/", CHAT_PATH),
        ("/proxy/v1", "/proxy" + CHAT_PATH),
        ("/proxy", "/proxy" + CHAT_PATH),
    ],
)
def test_base_url_prefix(
    serve: Callable[[Script], ScriptedServer], suffix: str, expected: str
) -> None:
    server = serve(answer(chunked_sse(VLLM_EVENTS)))
    with client_for(server.url + suffix) as client:
        collect(client, chat())
        assert client.transport.url(CHAT_PATH) == f"http://127.0.0.1:{server.port}{expected}"
    assert server.paths == [expected]


SECRET = "sk-test-8f2c91d0e7"


def test_api_key_sent_as_bearer_and_never_shown(
    serve: Callable[[Script], ScriptedServer], free_port: int
) -> None:
    server = serve(answer(chunked_sse(VLLM_EVENTS)))
    with client_for(server.url, api_key=SECRET) as client:
        collect(client, chat())
        assert SECRET not in repr(client)
        assert SECRET not in repr(client.transport)
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def _failures_with_key(serve: Callable[[Script], ScriptedServer], free_port: int) -> list[LLMError]:
    scripts: list[Script] = [
        answer(json_response(401, {"error": {"message": "invalid api key"}})),
        once(CHUNKED_SSE_HEAD + chunk(sse(delta("a")))),
        answer(chunked_sse(sse(delta("a")))),
        answer(chunked_sse(b"data: {oops\n\n")),
        answer(chunked_sse(sse({"error": {"message": "boom", "type": "E", "code": 500}}))),
        once(b"garbage\r\n\r\n"),
    ]
    urls = [serve(script).url for script in scripts] + [f"http://127.0.0.1:{free_port}"]
    errors: list[LLMError] = []
    for url in urls:
        with client_for(url, api_key=SECRET) as client:
            try:
                collect(client, chat())
            except LLMError as exc:
                errors.append(exc)
    with client_for(f"http://127.0.0.1:{free_port}", api_key=SECRET) as client:
        health = client.health_check()
    assert health.error is not None
    errors.append(ConnectError(health.error))
    return errors


def test_api_key_never_in_exception_messages(
    serve: Callable[[Script], ScriptedServer], free_port: int
) -> None:
    errors = _failures_with_key(serve, free_port)
    assert [type(e).__name__ for e in errors] == [
        "HTTPStatusError",
        "StreamCutError",
        "MissingDoneError",
        "MalformedEventError",
        "ServerErrorEvent",
        "ProtocolError",
        "ConnectError",
        "ConnectError",
    ]
    for error in errors:
        for text in (str(error), repr(error), *map(str, error.args)):
            assert SECRET not in text, type(error).__name__


def test_api_key_from_environment(
    serve: Callable[[Script], ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-key-123")
    server = serve(answer(chunked_sse(VLLM_EVENTS), chunked_sse(VLLM_EVENTS)))
    with client_for(server.url) as client:
        collect(client, chat())
        assert "env-key-123" not in repr(client)
    with client_for(server.url, api_key="explicit-key") as client:
        collect(client, chat())
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer env-key-123",
        "Bearer explicit-key",
    ]


def test_no_authorization_without_a_key(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer(chunked_sse(VLLM_EVENTS)))
    with client_for(server.url) as client:
        collect(client, chat())
    assert "authorization" not in server.requests[0].headers


def test_extra_headers_are_sent(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(
        route({"/health": response(200, b""), "/v1/models": json_response(200, {"data": []})})
    )
    server_stream = serve(answer(chunked_sse(VLLM_EVENTS)))
    headers = {"X-Request-Tag": "run-7", "X-Tenant": "team a"}
    with client_for(server_stream.url, headers=headers) as client:
        collect(client, chat())
    with client_for(server.url, headers=headers) as client:
        assert client.health_check().healthy
    for request in [*server_stream.requests, *server.requests]:
        assert request.headers["x-request-tag"] == "run-7"
        assert request.headers["x-tenant"] == "team a"
    assert b"X-Request-Tag: run-7\r\n" in server_stream.requests[0].raw


# -- health and models ---------------------------------------------------------------------------

MODELS = {"object": "list", "data": [{"id": "llama-3", "object": "model"}, {"id": "qwen"}]}


def test_health_check_healthy(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(route({"/health": response(200, b""), "/v1/models": json_response(200, MODELS)}))
    with client_for(server.url) as client:
        health = client.health_check()
    assert health.healthy
    assert health.endpoint == f"{server.url}/health"
    assert health.models == ["llama-3", "qwen"]
    assert health.error is None
    assert health.latency_ms is not None and health.latency_ms >= 0
    assert server.paths == ["/health", "/v1/models"]
    assert all(r.method == "GET" for r in server.requests)
    assert server.connections == 1


def test_health_check_falls_back_to_models_when_health_is_404(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    server = serve(route({"/v1/models": json_response(200, MODELS)}))
    with client_for(server.url) as client:
        health = client.health_check()
    assert health.healthy
    assert health.endpoint == f"{server.url}/v1/models"
    assert health.models == ["llama-3", "qwen"]
    assert server.paths == ["/health", "/v1/models"]


def test_health_check_unhealthy_when_refused(free_port: int) -> None:
    with client_for(f"http://127.0.0.1:{free_port}") as client:
        health = client.health_check()
    assert not health.healthy
    assert health.endpoint == f"http://127.0.0.1:{free_port}/health"
    assert health.error is not None
    assert "cannot connect" in health.error
    assert "refused" in health.error.lower()
    assert health.models == []


def test_health_check_unhealthy_on_503(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(route({"/health": response(503, b"loading model")}))
    with client_for(server.url) as client:
        health = client.health_check()
    assert not health.healthy
    assert health.error is not None
    assert "503" in health.error
    assert "loading model" in health.error


def test_list_models(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(route({"/v1/models": json_response(200, MODELS)}))
    with client_for(server.url + "/v1") as client:
        assert client.list_models() == ["llama-3", "qwen"]
        assert client.list_models() == ["llama-3", "qwen"]
    assert server.paths == ["/v1/models"] * 2
    assert server.connections == 1


@pytest.mark.parametrize("body", [b"[]", b"not json", b'{"data": [{"name": "x"}]}', b'{"data": 3}'])
def test_list_models_malformed(serve: Callable[[Script], ScriptedServer], body: bytes) -> None:
    server = serve(route({"/v1/models": response(200, body)}))
    with client_for(server.url) as client, pytest.raises(MalformedEventError, match="model list"):
        client.list_models()


def test_list_models_http_error(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(route({}))
    with client_for(server.url) as client, pytest.raises(HTTPStatusError) as info:
        client.list_models()
    assert info.value.status == 404


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["localhost:8000", "ftp://x", "", "http://", "127.0.0.1", "http://host:notaport"]
)
def test_parse_base_url_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_base_url(url)
    with pytest.raises(ConfigError):
        OpenAIClient(url)


def test_parse_base_url_message_names_the_url() -> None:
    with pytest.raises(ConfigError, match=r"'localhost:8000'.*http://"):
        parse_base_url("localhost:8000")


def test_parse_base_url_parts() -> None:
    origin = parse_base_url(" http://127.0.0.1:8000/v1/ ")
    assert (origin.scheme, origin.host, origin.port, origin.prefix) == (
        "http",
        "127.0.0.1",
        8000,
        "/v1",
    )
    assert origin.host_header == "127.0.0.1:8000"
    https = parse_base_url("https://example.com")
    assert (https.port, https.prefix, https.host_header) == (443, "", "example.com")
    assert parse_base_url("http://example.com").host_header == "example.com"


def test_transport_repr_hides_headers() -> None:
    transport = HttpTransport("http://127.0.0.1:9", headers={"Authorization": f"Bearer {SECRET}"})
    assert SECRET not in repr(transport)
    assert "127.0.0.1:9" in repr(transport)


@pytest.mark.parametrize(
    "kwargs",
    [{"connect": 0}, {"connect": -1.0}, {"read": 0}, {"read": -0.5}, {"total": 0}, {"total": -3}],
)
def test_timeouts_reject_non_positive_values(kwargs: dict[str, float]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=f"{name} timeout must be > 0"):
        Timeouts(**kwargs)


def test_timeouts_defaults() -> None:
    timeouts = Timeouts()
    assert timeouts.connect > 0 and timeouts.read > 0
    assert timeouts.total is None
