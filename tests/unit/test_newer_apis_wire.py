"""The Responses and Messages APIs on the client side: request bodies, stream events (as
vLLM 0.32 sent them, and every other shape the parsers take), non-streamed bodies, and how
a stream with no ``[DONE]`` ends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sagellm_users._backends.answer import (
    EventReader,
    TerminalEventReader,
    event_reader,
)
from sagellm_users._backends.base import Chunk, GenerationRequest, Usage
from sagellm_users._backends.messages import (
    DEFAULT_MAX_TOKENS,
    build_messages_payload,
    parse_messages_body,
    parse_messages_event,
)
from sagellm_users._backends.openai import OpenAIClient, parse_event
from sagellm_users._backends.responses import (
    build_responses_payload,
    parse_responses_body,
    parse_responses_event,
)
from sagellm_users._backends.vllm import VLLMClient
from sagellm_users._errors import (
    ConfigError,
    MalformedEventError,
    MissingDoneError,
    ServerErrorEvent,
    StreamCutError,
)
from sagellm_users._sse import SSEDecoder
from tests.newer_apis_wire import MESSAGES_LENGTH, RESPONSES_EOS, RESPONSES_LENGTH, body

T = 12.5
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello"},
]


def _data(events: tuple[bytes, ...]) -> list[bytes]:
    """Each captured event's data, as the SSE decoder gives it (``event:`` lines dropped)."""
    decoder = SSEDecoder()
    return decoder.feed(body(events))


def _event(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def _read(parse: Any, events: tuple[bytes, ...]) -> list[Chunk]:
    return [parse(data, T) for data in _data(events)]


# -- request bodies -----------------------------------------------------------------------------


def test_a_responses_body_sends_the_conversation_as_input_and_vllms_ignore_eos() -> None:
    request = GenerationRequest(
        api="responses",
        model="m",
        messages=CONVERSATION,
        max_tokens=16,
        temperature=0.5,
        ignore_eos=True,
        extra_body={"top_k": 4, "temperature": 0.0},
    )
    payload = build_responses_payload(request)
    assert payload == {
        "model": "m",
        "input": CONVERSATION,
        "max_output_tokens": 16,
        "temperature": 0.0,  # extra_body wins
        "ignore_eos": True,
        "stream": True,
        "top_k": 4,
    }
    assert list(payload)[-1] == "top_k", "extra_body goes last"


def test_a_responses_body_sends_a_prompt_as_the_input_string() -> None:
    payload = build_responses_payload(GenerationRequest(api="responses", model="m", prompt="Hi"))
    assert payload == {"model": "m", "input": "Hi", "stream": True}


def test_a_messages_body_takes_the_system_out_and_always_has_max_tokens() -> None:
    request = GenerationRequest(api="messages", model="m", messages=CONVERSATION, stream=False)
    assert build_messages_payload(request) == {
        "model": "m",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": DEFAULT_MAX_TOKENS,
        "system": "Be brief.",
        "stream": False,
    }
    prompt = GenerationRequest(api="messages", model="m", prompt="Hi", max_tokens=8)
    assert build_messages_payload(prompt)["messages"] == [{"role": "user", "content": "Hi"}]
    assert build_messages_payload(prompt)["max_tokens"] == 8


def test_system_parts_become_anthropic_text_blocks() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "One."},
        {"role": "system", "content": [{"type": "text", "text": "Two."}]},
        {"role": "user", "content": "Hi"},
    ]
    payload = build_messages_payload(GenerationRequest(api="messages", messages=messages))
    assert payload["system"] == [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}]


@pytest.mark.parametrize(
    ("api", "field", "value", "says"),
    [
        ("responses", "min_tokens", 4, "/v1/responses has no min_tokens"),
        ("messages", "min_tokens", 4, "Messages API has no min_tokens"),
        ("messages", "ignore_eos", True, "Messages API has no ignore_eos"),
    ],
)
def test_a_field_the_api_would_drop_is_refused(api: Any, field: str, value: Any, says: str) -> None:
    request = GenerationRequest(api=api, model="m", prompt="Hi", **{field: value})
    with pytest.raises(ConfigError, match=says) as refused:
        OpenAIClient.build_payload(request)
    assert "chat API" in str(refused.value)


def test_the_client_routes_each_api_to_its_path_builder_and_parsers() -> None:
    assert VLLMClient.endpoint_path("responses") == "/v1/responses"
    assert VLLMClient.endpoint_path("messages") == "/v1/messages"
    assert VLLMClient.parsers("responses") == (parse_responses_event, parse_responses_body)
    assert VLLMClient.parsers("messages") == (parse_messages_event, parse_messages_body)
    request = GenerationRequest(api="responses", model="m", prompt="Hi", max_tokens=3)
    assert VLLMClient.build_payload(request)["max_output_tokens"] == 3


@pytest.mark.parametrize("backend", ["lmdeploy", "sagellm"])
def test_servers_without_the_newer_apis_refuse_them(backend: str) -> None:
    from sagellm_users._backends import BACKENDS

    client = BACKENDS[backend]
    for api in ("responses", "messages"):
        with pytest.raises(ConfigError, match=f"has no '{api}' API"):
            client.endpoint_path(api)  # type: ignore[attr-defined]


# -- Responses stream events ----------------------------------------------------------------


def test_vllms_responses_stream_gives_a_step_per_text_delta_and_usage_at_the_end() -> None:
    chunks = _read(parse_responses_event, RESPONSES_LENGTH)
    steps = [c for c in chunks if c.step]
    assert [c.text for c in steps] == ["Pure", "RED she est", "WORD"]
    assert all(c.has_output and not c.reasoning for c in steps)
    last = chunks[-1]
    assert last.final and not last.step and sum(c.final for c in chunks) == 1
    assert last.usage == Usage(12, 5, reasoning_tokens=0, cached_tokens=0)
    assert last.finish_reason == "length"  # status incomplete: max_output_tokens
    assert chunks[0].response_id == last.response_id == "resp_a521ffec1457ce26"
    others = [c for c in chunks[:-1] if not c.step]
    assert all(c.usage is None and c.finish_reason is None and not c.text for c in others)


def test_an_eos_first_responses_stream_has_no_step_and_ends_with_stop() -> None:
    chunks = _read(parse_responses_event, RESPONSES_EOS)
    assert not any(c.step or c.has_output for c in chunks)
    assert chunks[-1].final and chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 1


def test_a_reasoning_delta_is_a_step_of_reasoning() -> None:
    event = (
        b'{"content_index":0,"delta":" think","item_id":"rs_b36eb15a577203ac","output_index":0,'
        b'"sequence_number":4,"type":"response.reasoning_text.delta"}'
    )
    chunk = parse_responses_event(event, T)
    assert chunk.step and chunk.has_output and chunk.reasoning and chunk.text == ""


def test_a_completed_response_reports_reasoning_and_cached_tokens() -> None:
    usage = {
        "input_tokens": 40,
        "input_tokens_details": {"cached_tokens": 32, "cache_write_tokens": 0},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 12, "tool_output_tokens": 0},
        "total_tokens": 60,
    }
    event = {
        "response": {"id": "resp_1", "status": "completed", "usage": usage},
        "sequence_number": 9,
        "type": "response.completed",
    }
    chunk = parse_responses_event(_event(event), T)
    assert chunk.usage == Usage(40, 20, reasoning_tokens=12, cached_tokens=32)
    assert chunk.finish_reason == "stop" and chunk.final


def test_a_tool_call_delta_is_a_step_with_output() -> None:
    event = {"delta": '{"a"', "type": "response.function_call_arguments.delta"}
    chunk = parse_responses_event(_event(event), T)
    assert chunk.step and chunk.has_output and not chunk.reasoning


def test_a_responses_error_event_and_a_failed_response_are_server_errors() -> None:
    error = {"code": "server_error", "message": "boom", "param": None, "type": "error"}
    with pytest.raises(ServerErrorEvent, match=r"\[server_error\] boom"):
        parse_responses_event(_event(error), T)
    failed = {
        "response": {"id": "r", "status": "failed", "error": {"code": "x", "message": "bad"}},
        "type": "response.failed",
    }
    with pytest.raises(ServerErrorEvent, match="bad"):
        parse_responses_event(_event(failed), T)
    vllm = {"error": {"message": "Internal", "type": "InternalServerError", "code": 500}}
    with pytest.raises(ServerErrorEvent, match="Internal"):
        parse_responses_event(_event(vllm), T)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"type":"response.output_text.delta","delta":', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"delta":"x"}', "no 'type'"),
        (b'{"type":"response.output_text.delta","delta":3}', "'delta' is not a string"),
        (b'{"type":"response.completed"}', "without a 'response'"),
        (b'{"type":"response.output_text.delta","delta":"\xff"}', "not valid UTF-8"),
    ],
)
def test_a_malformed_responses_event_fails(data: bytes, says: str) -> None:
    with pytest.raises(MalformedEventError, match=says):
        parse_responses_event(data, T)


def test_an_unknown_responses_event_is_no_step() -> None:
    chunk = parse_responses_event(b'{"type":"response.audio.delta","delta":"AAAA"}', T)
    assert chunk == Chunk(T)


def test_a_non_streamed_response_is_one_chunk_with_its_text_and_usage() -> None:
    text_item = {
        "id": "msg_1",
        "type": "message",
        "content": [{"type": "output_text", "text": "Hello there"}],
    }
    doc = {
        "id": "resp_1",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [{"id": "rs_1", "type": "reasoning", "content": []}, text_item],
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    chunk = parse_responses_body(_event(doc), T)
    assert chunk.text == "Hello there" and chunk.has_output and chunk.reasoning
    assert chunk.usage == Usage(3, 4) and chunk.finish_reason == "length"
    assert chunk.response_id == "resp_1" and not chunk.step


# -- Messages stream events -----------------------------------------------------------------


def test_vllms_messages_stream_gives_a_step_per_text_delta_and_usage_in_two_parts() -> None:
    chunks = _read(parse_messages_event, MESSAGES_LENGTH)
    steps = [c for c in chunks if c.step]
    assert [c.text for c in steps] == ["arison", "tin", "nans", " number", "ca"]
    start = chunks[0]
    assert start.response_id == "chatcmpl-93dfab5bc323af2a"
    assert start.usage == Usage(19, None), "message_start's output count is no count yet"
    delta = chunks[-2]
    assert delta.usage == Usage(19, 5) and delta.finish_reason == "length"
    assert chunks[-1].final and sum(c.final for c in chunks) == 1


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("tool_use", "tool_calls"), ("refusal", "refusal")],
)  # fmt: skip
def test_anthropic_stop_reasons_in_chats_words(reason: str, finish: str) -> None:
    event = {
        "type": "message_delta",
        "delta": {"stop_reason": reason},
        "usage": {"output_tokens": 7},
    }
    chunk = parse_messages_event(_event(event), T)
    assert chunk.finish_reason == finish and chunk.usage == Usage(None, 7)


def test_message_start_counts_the_cache_into_the_prompt() -> None:
    usage = {
        "input_tokens": 8,
        "output_tokens": 1,
        "cache_creation_input_tokens": 4,
        "cache_read_input_tokens": 20,
    }
    event = {"type": "message_start", "message": {"id": "msg_1", "usage": usage}}
    assert parse_messages_event(_event(event), T).usage == Usage(32, None, cached_tokens=20)


@pytest.mark.parametrize(
    ("delta", "step", "reasoning"),
    [
        ({"type": "thinking_delta", "thinking": " hm"}, True, True),
        ({"type": "input_json_delta", "partial_json": '{"a'}, True, False),
        ({"type": "signature_delta", "signature": "ab12"}, False, False),
    ],
)
def test_content_block_deltas_other_than_text(
    delta: dict[str, str], step: bool, reasoning: bool
) -> None:
    event = {"type": "content_block_delta", "index": 0, "delta": delta}
    chunk = parse_messages_event(_event(event), T)
    assert (chunk.step, chunk.has_output, chunk.reasoning) == (step, step, reasoning)


@pytest.mark.parametrize(
    "data",
    [b'{"type":"ping"}', b'{"type":"content_block_stop","index":0}'],
)
def test_pings_and_block_bookkeeping_are_no_steps(data: bytes) -> None:
    assert parse_messages_event(data, T) == Chunk(T)


def test_a_messages_error_event_is_a_server_error() -> None:
    event = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    with pytest.raises(ServerErrorEvent, match=r"\[overloaded_error\] Overloaded"):
        parse_messages_event(event, T)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"type":"content_block_delta"', "not JSON"),
        (b'"message_stop"', "not a JSON object"),
        (b'{"delta":{}}', "not a Messages API event"),
        (b'{"type":"content_block_delta","index":0}', "without a 'delta'"),
        (b'{"type":"content_block_delta","delta":{"type":"text_delta"}}', "not a string"),
        (b'{"type":"message_start"}', "without a 'message'"),
    ],
)
def test_a_malformed_messages_event_fails(data: bytes, says: str) -> None:
    with pytest.raises(MalformedEventError, match=says):
        parse_messages_event(data, T)


def test_a_non_streamed_message_is_one_chunk() -> None:
    doc = {
        "id": "chatcmpl-1",
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "text", "text": "exclusivedrv"},
        ],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 12, "output_tokens": 5},
    }
    chunk = parse_messages_body(_event(doc), T)
    assert chunk.text == "exclusivedrv" and chunk.reasoning and chunk.has_output
    assert chunk.usage == Usage(12, 5) and chunk.finish_reason == "length"
    error = b'{"type":"error","error":{"type":"NotFoundError","message":"no model"}}'
    with pytest.raises(ServerErrorEvent, match="no model"):
        parse_messages_body(error, T)


# -- where a stream with no [DONE] ends ----------------------------------------------------


def test_the_chat_path_keeps_its_own_reader() -> None:
    assert type(event_reader(parse_event, 1 << 16)) is EventReader
    assert isinstance(event_reader(parse_responses_event, 1 << 16), TerminalEventReader)
    assert isinstance(event_reader(parse_messages_event, 1 << 16), TerminalEventReader)


@pytest.mark.parametrize(
    ("parse", "events"),
    [(parse_responses_event, RESPONSES_LENGTH), (parse_messages_event, MESSAGES_LENGTH)],
)
def test_the_reader_is_done_at_the_last_event_whatever_follows(
    parse: Any, events: tuple[bytes, ...]
) -> None:
    reader = event_reader(parse, 1 << 16)
    data = body(events) + b"event: ping\ndata: {not even json\n\n"
    chunks: list[Chunk] = []
    for i in range(0, len(data), 7):  # reads that split events and lines anywhere
        if not reader.done:
            chunks += reader.feed(T + i, data[i : i + 7])
    assert reader.done and reader.error is None
    assert chunks[-1].final and len(chunks) == len(events)


@pytest.mark.parametrize(
    ("parse", "events", "name"),
    [
        (parse_responses_event, RESPONSES_LENGTH, "response.completed"),
        (parse_messages_event, MESSAGES_LENGTH, "message_stop"),
    ],
)
def test_a_body_that_ends_before_the_last_event_is_unfinished(
    parse: Any, events: tuple[bytes, ...], name: str
) -> None:
    reader = event_reader(parse, 1 << 16)
    chunks = reader.feed(T, body(events[:-1]))
    assert not reader.done and len(chunks) == len(events) - 1
    error = reader.unfinished()
    assert isinstance(error, MissingDoneError) and name in str(error)
    reader.feed(T, events[-1][:20])
    assert isinstance(reader.unfinished(), StreamCutError)


def test_a_done_a_proxy_adds_also_ends_the_stream() -> None:
    reader = event_reader(parse_messages_event, 1 << 16)
    chunks = reader.feed(T, body(MESSAGES_LENGTH[:3]) + b"data: [DONE]\n\n")
    assert reader.done and len(chunks) == 3


def test_an_event_that_fails_stops_the_reader_after_the_chunks_before_it() -> None:
    reader = event_reader(parse_messages_event, 1 << 16)
    bad = b'event: error\ndata: {"type":"error","error":{"type":"x","message":"m"}}\n\n'
    chunks = reader.feed(T, body(MESSAGES_LENGTH[:3]) + bad + MESSAGES_LENGTH[-1])
    assert len(chunks) == 3 and isinstance(reader.error, ServerErrorEvent)
    assert not reader.done


@pytest.mark.parametrize(
    ("block", "data"),
    [
        (b"event: message_stop\ndata: {}\n\n", [b"{}"]),
        (b"event: x\ndata: \n\n", [b""]),
        (b"event: x\ndata:{}\n\n", [b"{}"]),  # no space after the colon: the general path
        (b"event: x\ndata: a\ndata: b\n\n", [b"a\nb"]),  # two data lines
        (b"event: x\nid: 3\ndata: a\n\n", [b"a"]),
        (b"event: x\n\n", []),  # no data: no event
        (b"event: x\r\ndata: a\r\n\r\n", [b"a"]),
    ],
)
def test_named_events_are_decoded_as_the_sse_rules_say(block: bytes, data: list[bytes]) -> None:
    assert SSEDecoder().feed(block) == data
    decoder = SSEDecoder()
    pieces = [decoder.feed(block[i : i + 1]) for i in range(len(block))]
    assert [d for piece in pieces for d in piece] == data, "split at every byte"
