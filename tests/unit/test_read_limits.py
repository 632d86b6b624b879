"""The read limits: a huge header line, a huge or endless error body and a huge SSE event
are each a classified failure (or a cut excerpt), with what the client holds bounded.

Servers here misbehave as gateways and proxies do: a multi-megabyte header line, an error
page of many megabytes, a chunked error body that never ends. Memory is held to account
with ``tracemalloc`` (the peak of what Python allocated while the request ran), never by
timing or RSS.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from sagellm_users._backends import GenerationRequest, OpenAIClient
from sagellm_users._errors import HTTPStatusError, ResponseTooLargeError
from sagellm_users._limits import ReadLimits, format_size, parse_size
from sagellm_users._users.options import LLMOptions, add_arguments
from tests.unit import test_http_client as scripted
from tests.unit.test_http_client import (
    CHUNKED_SSE_HEAD,
    DONE,
    LAST_CHUNK,
    VLLM_EVENTS,
    Connection,
    Script,
    ScriptedServer,
    answer,
    chat,
    chunk,
    client_for,
    collect,
    collect_until_error,
    delta,
    head,
    json_response,
    response,
    sse,
)
from tests.unit.test_options import StubParser

# The scripted servers' fixtures: both read paths, no API key from the environment.
serve = scripted.serve
read_path = scripted.read_path
_no_env_api_key = scripted._no_env_api_key

MIB = 1024 * 1024
BOUND = MIB
"""What one request may allocate at its peak here: the limits are 64 KiB, reads 64 KiB."""


class Peak:
    """The peak of Python's allocations from :meth:`start` (after the test built its
    multi-megabyte payloads) on."""

    def start(self) -> None:
        tracemalloc.start()

    def __call__(self) -> int:
        return tracemalloc.get_traced_memory()[1]


@pytest.fixture
def peak() -> Iterator[Peak]:
    try:
        yield Peak()
    finally:
        tracemalloc.stop()


def _pool_is_empty(client: OpenAIClient) -> bool:
    state = client.transport.pool_state()
    return state.idle == 0 and state.in_use == 0


# -- the response head ----------------------------------------------------------------------


def test_a_huge_header_line_fails_past_the_limit_without_buffering_it(
    serve: Callable[[Script], ScriptedServer], peak: Peak
) -> None:
    line = b"X-Gateway-Trace: " + b"t" * (8 * MIB) + b"\r\n"
    data = head(200, {"Content-Type": "text/event-stream"})[:-2] + line + b"\r\n"
    server = serve(answer(data + sse(delta("a"), DONE)))
    peak.start()
    with client_for(server.url) as client:
        with pytest.raises(ResponseTooLargeError) as info:
            collect(client, chat())
        assert _pool_is_empty(client)  # the connection was closed, not kept
    message = str(info.value)
    assert "the response headers passed the 64 KiB limit" in message
    assert "--max-header-size" in message
    assert peak() < BOUND, peak()


@pytest.mark.parametrize("over", [0, 1])
def test_a_head_of_exactly_the_limit_passes_and_one_byte_more_fails(
    serve: Callable[[Script], ScriptedServer], over: int
) -> None:
    body = sse(delta("a"), DONE)
    data = head(200, {"Content-Length": str(len(body)), "X-Pad": "p" * 100})
    limit = len(data) - over
    server = serve(answer(data + body))
    with client_for(server.url, limits=ReadLimits(header=limit)) as client:
        if over:
            with pytest.raises(ResponseTooLargeError, match=r"passed the [\d,]+ bytes limit"):
                collect(client, chat())
        else:
            assert [c.text for c in collect(client, chat())] == ["a"]


# -- error bodies ---------------------------------------------------------------------------


def test_a_huge_error_body_is_read_to_the_limit_then_the_connection_closed(
    serve: Callable[[Script], ScriptedServer], peak: Peak
) -> None:
    body = b'{"error": {"message": "upstream failed", "pad": "' + b"p" * (16 * MIB) + b'"}}'
    server = serve(answer(response(500, body, {"Content-Type": "application/json"})))
    peak.start()
    with client_for(server.url) as client:
        with pytest.raises(HTTPStatusError) as info:
            collect(client, chat())
        assert _pool_is_empty(client)
    error = info.value
    assert error.status == 500
    assert "upstream failed" in error.body_excerpt
    assert error.body_cut is not None
    assert "body cut at the 64 KiB limit" in str(error)
    assert "--max-error-body" in str(error)
    assert peak() < BOUND, peak()


def test_an_endless_error_body_fails_at_the_limit(
    serve: Callable[[Script], ScriptedServer], peak: Peak
) -> None:
    """A chunked error page that never ends: bytes keep coming, so no read timeout fires;
    the request ends once the limit is read, not at the request timeout."""
    page = chunk(b"<html>502 Bad Gateway</html>" + b" " * 16_000)

    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(head(502, {"Transfer-Encoding": "chunked", "Content-Type": "text/html"}))
        while True:  # until the client hangs up (an OSError ends the script)
            conn.send(page)

    server = serve(script)
    peak.start()
    with client_for(server.url) as client:
        with pytest.raises(HTTPStatusError) as info:
            collect(client, chat())
        assert _pool_is_empty(client)
    assert info.value.status == 502
    assert "502 Bad Gateway" in info.value.body_excerpt
    assert "body cut at the 64 KiB limit" in str(info.value)
    assert peak() < BOUND, peak()


def test_an_error_body_within_the_limit_is_read_whole_and_the_connection_kept(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    error = {"error": {"message": "bad model", "type": "NotFoundError", "code": 404}}
    server = serve(answer(json_response(404, error), json_response(404, error)))
    with client_for(server.url, limits=ReadLimits(error_body=1024)) as client:
        for _ in range(2):
            with pytest.raises(HTTPStatusError) as info:
                collect(client, chat())
            assert info.value.body_cut is None
            assert "body cut" not in str(info.value)
        assert client.transport.pool_state().opened == 1  # read to its end: reused


def test_error_body_limit_zero_reads_none(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer(json_response(500, {"error": "x"})))
    client = client_for(server.url, limits=ReadLimits(error_body=0))
    with client, pytest.raises(HTTPStatusError) as info:
        collect(client, chat())
    assert info.value.body_excerpt == ""
    assert "body cut at the 0 bytes limit" in str(info.value)


# -- events and non-streamed answers --------------------------------------------------------


def test_an_event_past_the_limit_fails_the_stream_after_the_events_before_it(
    serve: Callable[[Script], ScriptedServer], peak: Peak
) -> None:
    big = b"data: " + b"x" * (4 * MIB) + b"\n\n"
    body = chunk(sse(delta("a"))) + chunk(big) + chunk(sse(DONE)) + LAST_CHUNK
    server = serve(answer(CHUNKED_SSE_HEAD + body))
    peak.start()
    with client_for(server.url, limits=ReadLimits(event=64 * 1024)) as client:
        chunks, error = collect_until_error(client, chat(), ResponseTooLargeError)
        assert _pool_is_empty(client)
    assert [c.text for c in chunks] == ["a"]
    assert "an SSE event passed the 64 KiB limit" in str(error)
    assert "--max-event-size" in str(error)
    assert peak() < BOUND, peak()


def test_a_non_streamed_answer_past_the_event_limit_fails(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    body = {"choices": [{"message": {"content": "y" * 10_000}}]}
    server = serve(answer(json_response(200, body)))
    client = client_for(server.url, limits=ReadLimits(event=4096))
    with client, pytest.raises(ResponseTooLargeError, match=r"response body passed the 4 KiB"):
        client.generate(GenerationRequest(api="chat", model="m", prompt="hi", stream=False))


def test_default_limits_pass_an_ordinary_stream(serve: Callable[[Script], ScriptedServer]) -> None:
    server = serve(answer(CHUNKED_SSE_HEAD + chunk(VLLM_EVENTS) + LAST_CHUNK))
    with client_for(server.url) as client:
        assert "".join(c.text for c in collect(client, chat())) == "Hello world"


# -- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("65536", 65536), ("64KiB", 65536), ("16 MiB", 16 * MIB), ("10MB", 10**7), ("1kb", 1000)],
)
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text, "--max-event-size") == size


@pytest.mark.parametrize("text", ["", "lots", "-1", "10 XB", "KiB"])
def test_bad_sizes_name_the_option(text: str) -> None:
    with pytest.raises(ValueError, match=r"--max-event-size: cannot read .* as a size"):
        parse_size(text, "--max-event-size")


def test_sizes_format_in_the_unit_that_divides_them() -> None:
    assert [format_size(n) for n in (65536, 16 * MIB, 1500, 0)] == [
        "64 KiB",
        "16 MiB",
        "1,500 bytes",
        "0 bytes",
    ]


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="header limit must be an integer >= 1"):
        ReadLimits(header=0)
    assert ReadLimits(error_body=0).error_body == 0


def test_plain_requests_are_bounded_by_the_event_limit_too(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    """/v1/models, /health, /metrics: a body past the limit fails instead of growing."""
    server = serve(answer(response(200, b"m" * 10_000, {"Content-Type": "text/plain"})))
    client = client_for(server.url, limits=ReadLimits(event=4096))
    with client, pytest.raises(ResponseTooLargeError, match=r"body passed the 4 KiB limit"):
        client.get("/metrics")


# -- the options ----------------------------------------------------------------------------


def _options(*args: str) -> LLMOptions:
    stub = StubParser()
    add_arguments(stub)
    return LLMOptions.from_namespace(stub.parser.parse_args(list(args)))


def test_the_options_default_to_the_limits_defaults_and_are_in_the_web_ui() -> None:
    assert _options().read_limits == ReadLimits()
    stub = StubParser()
    add_arguments(stub)
    for flag in ("--max-header-size", "--max-error-body", "--max-event-size"):
        assert stub.locust_kwargs[flag] == {}, flag  # shown in the start form


def test_the_options_take_sizes() -> None:
    opts = _options(
        "--max-header-size", "1MiB", "--max-error-body", "0", "--max-event-size", "32 MiB"
    )
    assert opts.read_limits == ReadLimits(header=MIB, error_body=0, event=32 * MIB)
    assert opts.for_report()["max_event_size"] == 32 * MIB


def test_a_size_from_the_web_form_is_a_string_like_the_command_line() -> None:
    """Locust's form keeps an option's type: these are strings, parsed as on the command
    line (an empty field is the default)."""
    namespace = StubParser()
    add_arguments(namespace)
    parsed = namespace.parser.parse_args([])
    parsed.max_event_size = ""
    parsed.max_error_body = "2KiB"
    assert LLMOptions.from_namespace(parsed).read_limits == ReadLimits(error_body=2048)
