"""How a response starts and ends when a proxy or gateway is in the way.

Interim 1xx responses before the answer, a stream whose body never ends after ``[DONE]``
(or keeps sending comment pings), a gzip-encoded body, ``data: `` keep-alives: each against
a scripted server on 127.0.0.1 (see ``test_http_client``), on both read paths.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable

import pytest

from sagellm_users._backends import Timeouts
from sagellm_users._backends import openai as openai_module
from sagellm_users._errors import HTTPStatusError, ProtocolError
from tests.unit import test_http_client as scripted
from tests.unit.test_http_client import (
    CHUNKED_SSE_HEAD,
    DONE,
    LAST_CHUNK,
    SCRIPT_TIMEOUT,
    TOKENS,
    USAGE_EVENT,
    VLLM_EVENTS,
    Connection,
    Script,
    ScriptedServer,
    answer,
    chat,
    chunk,
    chunked_sse,
    client_for,
    collect,
    collect_until_error,
    delta,
    head,
    in_turn,
    json_response,
    sse,
)

# The scripted server's fixtures, the two read paths included (autouse).
serve = scripted.serve
read_path = scripted.read_path
no_env_api_key = scripted._no_env_api_key

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
TEXT = "".join(TOKENS)


# -- interim responses -----------------------------------------------------------------------


def test_interim_responses_before_the_stream_are_skipped_and_the_connection_stays_in_step(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    stream = chunked_sse(VLLM_EVENTS)
    server = serve(answer(CONTINUE + EARLY_HINTS + stream, CONTINUE + stream, stream))
    with client_for(server.url) as client:
        for prompt in ("a", "b", "c"):
            with client.stream(chat(prompt)) as response:
                assert "".join(c.text for c in response) == TEXT
                assert response.status == 200
    assert server.connections == 1, "the connection fell out of step after a 1xx"


def test_interim_responses_split_across_reads(serve: Callable[[Script], ScriptedServer]) -> None:
    data = CONTINUE + EARLY_HINTS + chunked_sse(VLLM_EVENTS)

    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        for i in range(0, len(data), 7):
            conn.send(data[i : i + 7])
        conn.wait_for_close()

    server = serve(script)
    with client_for(server.url) as client:
        assert "".join(c.text for c in collect(client, chat())) == TEXT


def test_an_error_after_an_interim_response_keeps_its_status(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    body = {"error": {"message": "no such model", "type": "NotFoundError", "code": 404}}
    server = serve(answer(CONTINUE + json_response(404, body)))
    with client_for(server.url) as client:
        _, error = collect_until_error(client, chat(), HTTPStatusError)
    assert isinstance(error, HTTPStatusError) and error.status == 404
    assert "no such model" in str(error)


# -- the end of a stream ---------------------------------------------------------------------


@pytest.mark.parametrize("total", [10.0, None], ids=["request-timeout", "no-request-timeout"])
def test_done_without_the_body_end_completes_and_closes_the_connection(
    serve: Callable[[Script], ScriptedServer], total: float | None
) -> None:
    """A proxy that forwards [DONE] but holds the response open: the request is complete at
    [DONE]; the connection, whose response never ended, is closed, not pooled."""

    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(CHUNKED_SSE_HEAD + chunk(VLLM_EVENTS))  # no terminator, no close
        conn.wait_for_close()

    server = serve(script)
    timeouts = Timeouts(connect=2, read=SCRIPT_TIMEOUT, total=total)
    with client_for(server.url, timeouts=timeouts) as client:
        with client.stream(chat()) as response:
            chunks = list(response)
        assert "".join(c.text for c in chunks) == TEXT
        assert chunks[-1].usage is not None
        assert response.t_done == chunks[-1].t, "t_done is when [DONE] was read"
        assert client.transport._idle == []
        assert "".join(c.text for c in collect(client, chat())) == TEXT
    assert server.connections == 2


def test_comment_pings_after_done_do_not_hold_the_request(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def script(conn: Connection) -> None:
        assert conn.read_request() is not None
        conn.send(CHUNKED_SSE_HEAD + chunk(VLLM_EVENTS))
        for _ in range(int(SCRIPT_TIMEOUT / 0.01)):  # pings until the client hangs up
            conn.send(chunk(b": ping\n\n"))
            if conn.server.stopping.wait(0.01):
                return
        raise AssertionError("the client kept reading pings after [DONE]")

    server = serve(script)
    with client_for(server.url) as client:
        with client.stream(chat()) as response:
            chunks = list(response)
        assert "".join(c.text for c in chunks) == TEXT
        assert response.t_done == chunks[-1].t
        assert client.transport._idle == []


def test_a_body_end_that_follows_done_in_its_own_write_keeps_the_connection(
    serve: Callable[[Script], ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn writes the terminator after [DONE] as a message of its own. (The grace is
    raised so the test does not depend on how fast this machine schedules the server.)"""
    monkeypatch.setattr(openai_module, "DONE_GRACE_S", SCRIPT_TIMEOUT)

    def script(conn: Connection) -> None:
        while conn.read_request() is not None:
            conn.send(CHUNKED_SSE_HEAD + chunk(VLLM_EVENTS))
            conn.send(chunk(b": after done\n\n"))
            conn.send(LAST_CHUNK)

    server = serve(script)
    with client_for(server.url) as client:
        for _ in range(3):
            with client.stream(chat()) as response:
                chunks = list(response)
            assert "".join(c.text for c in chunks) == TEXT
            assert response.t_done == chunks[-1].t, "the wait for the end is not timed"
    assert server.connections == 1


# -- content coding --------------------------------------------------------------------------


def test_every_request_asks_for_an_uncompressed_body(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    server = serve(answer(chunked_sse(VLLM_EVENTS)))
    with client_for(server.url) as client:
        collect(client, chat())
    assert server.requests[0].headers["accept-encoding"] == "identity"


def test_a_gzipped_stream_is_a_protocol_error_naming_the_coding(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    """A proxy that compresses despite ``identity``: one clear error, no binary garbage,
    and the connection (whose body was not read) is not reused."""
    gz_head = head(
        200,
        {
            "Content-Type": "text/event-stream",
            "Transfer-Encoding": "chunked",
            "Content-Encoding": "gzip",
        },
    )
    stream = gz_head + chunk(gzip.compress(VLLM_EVENTS)) + LAST_CHUNK
    server = serve(in_turn(stream, chunked_sse(VLLM_EVENTS)))
    with client_for(server.url) as client:
        chunks, error = collect_until_error(client, chat(), ProtocolError)
        assert not chunks
        assert type(error) is ProtocolError
        assert "Content-Encoding: gzip" in str(error)
        assert str(error).isprintable()
        assert client.transport._idle == []
        assert "".join(c.text for c in collect(client, chat())) == TEXT


# -- keep-alive events -----------------------------------------------------------------------


def test_empty_data_keep_alives_between_tokens_are_ignored(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    events = b"data: \n\n" + sse(delta("", role="assistant"))
    for token in TOKENS:
        events += b"data:\n\ndata: \r\n\r\n" + sse(delta(token))
    events += b"data:  \n\n" + sse(delta("", finish="stop"), USAGE_EVENT) + b"data: \n\n"
    events += sse(DONE)
    server = serve(answer(chunked_sse(events)))
    with client_for(server.url) as client:
        chunks = collect(client, chat())
    assert "".join(c.text for c in chunks) == TEXT
    assert sum(c.step for c in chunks) == len(TOKENS) + 1  # the tokens and the EOS step
