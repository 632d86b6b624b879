"""The mock's Responses and Messages routes: every event has the shape of the same event
from a real vLLM 0.32 (field order and value types included), the client reads them back
to the right steps, usage and end, and requests are checked as vLLM checks them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sagellm_users._backends.answer import event_reader
from sagellm_users._backends.base import Chunk, Usage
from sagellm_users._backends.messages import parse_messages_event
from sagellm_users._backends.responses import parse_responses_event
from sagellm_users._errors import ServerErrorEvent
from sagellm_users.mock_server.config import MockServerConfig
from sagellm_users.mock_server.messages_wire import MessagesStreamEncoder, messages_body
from sagellm_users.mock_server.responses_wire import ResponsesStreamEncoder, responses_body
from sagellm_users.mock_server.simulation import EMPTY_TOKEN
from sagellm_users.mock_server.validation import (
    RequestError,
    parse_messages_request,
    parse_responses_request,
    resolve_output_cap,
)
from sagellm_users.mock_server.wire import END_OF_BODY
from tests.newer_apis_wire import (
    MESSAGES_LENGTH,
    RESPONSES_EOS,
    RESPONSES_LENGTH,
    VLLM_REASONING,
    VLLM_THINKING,
)

HEX = "0123456789abcdef0123456789abcdef"
W1, W2, W3 = orjson.dumps(" café"), orjson.dumps(' "q"'), orjson.dumps(" the")


def sse(http_chunks: bytes) -> list[tuple[bytes, bytes]]:
    """Undo the HTTP chunk framing; each chunk must be one named event: (name, data)."""
    out = []
    rest = http_chunks
    while rest:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        chunk, rest = rest[:size], rest[size:]
        assert rest[:2] == b"\r\n"
        rest = rest[2:]
        assert chunk.startswith(b"event: ") and chunk.endswith(b"\n\n")
        name, data = chunk[7:-2].split(b"\ndata: ")
        out.append((name, data))
    return out


def shape(value: Any) -> Any:
    """A JSON value's shape: objects as their keys in order with their values' shapes,
    lists by their first item, scalars by type (so ids, texts and counts may differ)."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return ["list", shape(value[0])] if value else "[]"
    return type(value).__name__


def _runs(names: list[str]) -> list[str]:
    """``names`` with each run of one name (the deltas) as one."""
    return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]


def captured(events: tuple[bytes, ...]) -> dict[str, Any]:
    """vLLM's events by type (the last of each type), from their data lines."""
    by_type: dict[str, Any] = {}
    for event in events:
        data = event.split(b"data: ", 1)[1]
        doc = orjson.loads(data)
        by_type[doc["type"]] = doc
    return by_type


def responses(**kw: Any) -> ResponsesStreamEncoder:
    args: dict[str, Any] = {
        "request_hex": HEX,
        "created": 1796619416,
        "model_json": b'"tiny"',
        "prompt_tokens": 12,
        "max_output_tokens": 5,
    }
    return ResponsesStreamEncoder(**{**args, **kw})


def messages(**kw: Any) -> MessagesStreamEncoder:
    args: dict[str, Any] = {"request_hex": HEX, "model_json": b'"tiny"', "prompt_tokens": 19}
    return MessagesStreamEncoder(**{**args, **kw})


def responses_stream(enc: ResponsesStreamEncoder, finish: str = "length") -> bytes:
    """Five tokens as the generation sends them: the second's text held back."""
    return (
        enc.preamble(0.0)
        + enc.token(W1, 1, 0.0)
        + enc.next_token(EMPTY_TOKEN, 2)
        + enc.next_token(W2, 3)
        + enc.next_token(W3, 4)
        + enc.final_token(EMPTY_TOKEN if finish == "stop" else W1, 5, finish, 0.0)
        + enc.usage(5, 0.0)
    )


def messages_stream(enc: MessagesStreamEncoder, finish: str = "length") -> bytes:
    return (
        enc.preamble(0.0)
        + enc.token(W1, 1, 0.0)
        + enc.next_token(EMPTY_TOKEN, 2)
        + enc.next_token(W2, 3)
        + enc.final_token(EMPTY_TOKEN if finish == "stop" else W3, 4, finish, 0.0)
        + enc.usage(4, 0.0)
    )


# -- the shapes, event by event ---------------------------------------------------------------


def test_every_responses_event_has_vllms_shape() -> None:
    real = captured(RESPONSES_LENGTH)
    events = sse(responses_stream(responses()))
    assert [orjson.loads(d)["sequence_number"] for _, d in events] == list(range(len(events)))
    names = [name.decode() for name, _ in events]
    real_names = [orjson.loads(e.split(b"data: ")[1])["type"] for e in RESPONSES_LENGTH]
    assert _runs(names) == _runs(real_names), "the same events in the same order"
    for name, data in events:
        doc = orjson.loads(data)
        assert doc["type"] == name.decode()
        assert shape(doc) == shape(real[doc["type"]]), name


def test_a_stream_that_ends_on_eos_is_completed_like_vllms() -> None:
    events = sse(responses_stream(responses(), finish="stop"))
    done = orjson.loads(events[-1][1])
    real = captured(RESPONSES_EOS)["response.completed"]["response"]
    assert done["response"]["status"] == real["status"] == "completed"
    assert done["response"]["incomplete_details"] is real["incomplete_details"] is None


def test_every_messages_event_has_vllms_shape() -> None:
    real = captured(MESSAGES_LENGTH)
    events = sse(messages_stream(messages()))
    for name, data in events:
        doc = orjson.loads(data)
        assert doc["type"] == name.decode()
        assert shape(doc) == shape(real[doc["type"]]), name
    kinds = [name for name, _ in events]
    assert kinds == [b"message_start", b"content_block_start", *[b"content_block_delta"] * 3,
                     b"content_block_stop", b"message_delta", b"message_stop"]  # fmt: skip


def test_reasoning_events_have_vllms_shape_and_come_before_the_answer() -> None:
    enc = responses()
    data = enc.preamble(0.0) + enc.reasoning_token(W1, 1, 0.0) + enc.reasoning_token(W2, 2, 0.0)
    data += enc.token(W3, 3, 0.0) + enc.usage(3, 0.0)
    events = [orjson.loads(d) for _, d in sse(data)]
    real = [orjson.loads(e) for e in VLLM_REASONING]
    reasoning = events[2:8]
    assert [shape(e) for e in reasoning[:3]] == [shape(e) for e in real[:3]]
    assert [shape(e) for e in reasoning[4:]] == [shape(e) for e in real[3:]]
    done = events[-1]["response"]
    assert [item["type"] for item in done["output"]] == ["reasoning", "message"]
    assert done["output"][0]["content"][0]["text"] == ' café "q"'
    assert done["usage"]["output_tokens_details"]["reasoning_tokens"] == 2
    message_added = next(e for e in events[8:] if e["type"] == "response.output_item.added")
    assert message_added["output_index"] == 1


def test_thinking_events_have_vllms_shape() -> None:
    enc = messages()
    data = enc.preamble(0.0) + enc.reasoning_token(W1, 1, 0.0) + enc.final_token(W2, 2, "stop", 0)
    events = [orjson.loads(d) for _, d in sse(data + enc.usage(2, 0.0))]
    real = [orjson.loads(e) for e in VLLM_THINKING]
    assert [shape(e) for e in events[1:4]] == [shape(e) for e in real]
    assert events[4] == {"type": "content_block_stop", "index": 0}
    assert events[5]["content_block"] == {"type": "text", "text": ""} and events[5]["index"] == 1
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_the_bodies_have_vllms_shape() -> None:
    body = responses_body(
        request_hex=HEX, created=1, model="tiny", text=" a", finish_reason="length",
        prompt_tokens=12, completion_tokens=5, max_output_tokens=5,
    )  # fmt: skip
    real = captured(RESPONSES_LENGTH)["response.completed"]["response"]
    assert shape(orjson.loads(body)) == shape(real)
    message = messages_body(
        request_hex=HEX, model="tiny", text=" a", finish_reason="stop", prompt_tokens=3,
        completion_tokens=2,
    )  # fmt: skip
    assert list(orjson.loads(message)) == [
        "id",
        "type",
        "role",
        "content",
        "model",
        "stop_reason",
        "usage",
    ]  # fmt: skip  (vLLM's answer, captured: no stop_sequence when null)
    assert orjson.loads(message)["stop_reason"] == "end_turn"


# -- read back by the client ------------------------------------------------------------------


def _read_back(parse: Any, data: bytes) -> list[Chunk]:
    reader = event_reader(parse, 1 << 20)
    payload = b"".join(
        b"event: %b\ndata: %b\n\n" % (name, d) for name, d in sse(data)
    )  # the SSE bytes without the HTTP framing
    chunks = reader.feed(1.0, payload)
    assert reader.done and reader.error is None
    return chunks


@pytest.mark.parametrize("finish", ["length", "stop"])
def test_the_client_reads_a_responses_stream_back(finish: str) -> None:
    chunks = _read_back(parse_responses_event, responses_stream(responses(), finish))
    steps = [c.text for c in chunks if c.step]
    tail = [" café"] if finish == "length" else []
    assert steps == [" café", ' "q"', " the", *tail], "no step for a token without text"
    assert chunks[-1].usage == Usage(12, 5, reasoning_tokens=0, cached_tokens=0)
    assert chunks[-1].finish_reason == finish


@pytest.mark.parametrize("finish", ["length", "stop"])
def test_the_client_reads_a_messages_stream_back(finish: str) -> None:
    chunks = _read_back(parse_messages_event, messages_stream(messages(cached_tokens=4), finish))
    assert len([c for c in chunks if c.step]) == (3 if finish == "length" else 2)
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage == [Usage(19, None, cached_tokens=4), Usage(19, 4, cached_tokens=4)]
    assert [c.finish_reason for c in chunks if c.finish_reason] == [finish]


def test_an_error_event_reads_back_as_a_server_error() -> None:
    for enc, parse in ((responses(), parse_responses_event), (messages(), parse_messages_event)):
        ((_, data),) = sse(enc.error("Internal server error", "InternalServerError", 500, 0.0))
        with pytest.raises(ServerErrorEvent, match="Internal server error"):
            parse(data, 0.0)


def test_these_streams_end_at_their_last_event_not_at_done() -> None:
    assert responses().end_of_stream == messages().end_of_stream == END_OF_BODY


def test_send_timestamps_reach_every_event() -> None:
    enc = responses(t_request=1.5)
    events = [orjson.loads(d) for _, d in sse(enc.preamble(2.5) + enc.token(W1, 1, 3.5))]
    assert [(e["mock_t_request"], e["mock_t_send"]) for e in events[-1:]] == [(1.5, 3.5)]
    assert all("mock_t_send" in e for e in events)


# -- requests, checked as vLLM checks them ---------------------------------------------------


def _config(**kw: Any) -> MockServerConfig:
    return MockServerConfig(**{"max_model_len": 64, "default_max_tokens": 16, **kw})


def test_a_responses_request_takes_a_string_or_items() -> None:
    req = parse_responses_request(
        b'{"input":[{"role":"user","content":"a b c"},{"type":"reasoning","summary":[]}],'
        b'"max_output_tokens":8,"stream":true,"ignore_eos":true,"min_tokens":3}'
    )
    assert (req.kind, req.model, req.max_tokens, req.stream) == ("responses", None, 8, True)
    assert req.ignore_eos and req.min_tokens == 0, "vLLM drops min_tokens on this route"
    assert req.prompt_tokens == parse_responses_request(b'{"input":"a b c"}').prompt_tokens


def test_a_messages_request_never_ignores_eos() -> None:
    req = parse_messages_request(
        b'{"model":"m","messages":[{"role":"user","content":"a b"}],"system":"be",'
        b'"max_tokens":4,"ignore_eos":true,"min_tokens":2}'
    )
    assert (req.kind, req.max_tokens, req.ignore_eos, req.min_tokens) == ("messages", 4, False, 0)


@pytest.mark.parametrize(
    ("parse", "body", "schema", "says"),
    [
        (parse_responses_request, b'{"model":"m"}', True, "body.input"),
        (parse_responses_request, b'{"input":7}', True, "body.input"),
        (parse_responses_request, b'{"input":[]}', False, "empty conversation"),
        (parse_responses_request, b'{"input":"a","max_output_tokens":0}', False, "at least 1"),
        (parse_messages_request, b'{"model":"m","messages":[]}', True, "body.max_tokens"),
        (parse_messages_request, b'{"messages":[],"max_tokens":1}', True, "body.model"),
        (
            parse_messages_request,
            b'{"model":"m","messages":[{"role":"tool","content":"x"}],"max_tokens":1}',
            True,
            "body.messages.0.role",
        ),
        (
            parse_messages_request,
            b'{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}',
            True,
            "max_tokens must be positive",
        ),
        (parse_messages_request, b'{"model":"m","messages":[],"max_tokens":1}', False, "empty"),
    ],
)
def test_a_bad_request_is_refused_as_vllm_refuses_it(
    parse: Any, body: bytes, schema: bool, says: str
) -> None:
    with pytest.raises(RequestError) as refused:
        parse(body)
    assert refused.value.status == 400 and refused.value.schema is schema
    assert says in refused.value.message or says == refused.value.param


def test_the_output_cap_is_cut_to_what_fits_and_refused_past_the_context() -> None:
    config = _config()
    req = parse_messages_request(
        b'{"model":"m","messages":[{"role":"user","content":"a b c d"}],"max_tokens":60}'
    )
    assert resolve_output_cap(req, config) == 64 - req.prompt_tokens
    big = parse_messages_request(
        b'{"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":65}'
    )
    with pytest.raises(RequestError, match="max_completion_tokens=65 cannot be greater"):
        resolve_output_cap(big, config)
    unset = parse_responses_request(b'{"input":"a"}')
    assert resolve_output_cap(unset, config) == 16
    long = parse_responses_request(orjson.dumps({"input": " ".join(["w"] * 70)}))
    with pytest.raises(RequestError, match="maximum context length is 64 tokens"):
        resolve_output_cap(long, config)
