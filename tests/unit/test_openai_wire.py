"""The OpenAI wire format: request payloads, stream events and non-streamed bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sagellm_users._backends.base import Chunk, GenerationRequest, Usage
from sagellm_users._backends.openai import _parse_body, build_payload, parse_event
from sagellm_users._errors import MalformedEventError, ServerErrorEvent

T = 123.456


def _event(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _chat_chunk(*choices: dict[str, Any], **extra: Any) -> bytes:
    return _event(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": list(choices),
            **extra,
        }
    )


def _delta(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


# -- build_payload ----------------------------------------------------------------------------


def test_chat_payload_with_messages() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    request = GenerationRequest(api="chat", model="m", messages=messages, max_tokens=16)
    assert build_payload(request) == {
        "model": "m",
        "messages": messages,
        "max_tokens": 16,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_chat_payload_turns_a_prompt_into_one_user_message() -> None:
    payload = build_payload(GenerationRequest(api="chat", model="m", prompt="Tell a story"))
    assert payload["messages"] == [{"role": "user", "content": "Tell a story"}]
    assert "prompt" not in payload


def test_chat_payload_prefers_messages_over_prompt() -> None:
    messages = [{"role": "user", "content": "from messages"}]
    request = GenerationRequest(api="chat", prompt="from prompt", messages=messages)
    assert build_payload(request)["messages"] == messages


def test_completions_payload_with_prompt() -> None:
    request = GenerationRequest(api="completions", model="m", prompt="Once upon", max_tokens=8)
    assert build_payload(request) == {
        "model": "m",
        "prompt": "Once upon",
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_completions_payload_turns_messages_into_a_prompt() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "first"},
        {"role": "user", "content": "second"},
        {"role": "user", "content": [{"type": "image_url"}]},
    ]
    payload = build_payload(GenerationRequest(api="completions", messages=messages))
    assert payload["prompt"] == "first\nsecond"
    assert "messages" not in payload


def test_include_usage_only_when_streaming() -> None:
    streamed = build_payload(GenerationRequest(prompt="p", stream=True))
    plain = build_payload(GenerationRequest(prompt="p", stream=False))
    assert streamed["stream"] is True
    assert streamed["stream_options"] == {"include_usage": True}
    assert plain["stream"] is False
    assert "stream_options" not in plain


def test_ignore_eos_only_when_true() -> None:
    assert build_payload(GenerationRequest(prompt="p", ignore_eos=True))["ignore_eos"] is True
    assert "ignore_eos" not in build_payload(GenerationRequest(prompt="p", ignore_eos=False))


def test_optional_fields_omitted_when_unset() -> None:
    payload = build_payload(GenerationRequest(prompt="p"))
    assert "temperature" not in payload
    assert "max_tokens" not in payload


def test_temperature_zero_is_sent() -> None:
    assert build_payload(GenerationRequest(prompt="p", temperature=0.0))["temperature"] == 0.0
    assert build_payload(GenerationRequest(prompt="p", temperature=0.7))["temperature"] == 0.7


def test_extra_body_is_applied_last_and_wins() -> None:
    request = GenerationRequest(
        model="m",
        prompt="p",
        max_tokens=16,
        temperature=0.5,
        extra_body={
            "max_tokens": 99,
            "temperature": 1.5,
            "stream_options": {"include_usage": False},
            "top_k": 20,
            "min_tokens": 4,
        },
    )
    payload = build_payload(request)
    assert payload["max_tokens"] == 99
    assert payload["temperature"] == 1.5
    assert payload["stream_options"] == {"include_usage": False}
    assert payload["top_k"] == 20
    assert payload["min_tokens"] == 4
    assert payload["messages"] == [{"role": "user", "content": "p"}]


def test_build_payload_does_not_change_the_request() -> None:
    extra: dict[str, Any] = {"top_k": 3}
    request = GenerationRequest(prompt="p", extra_body=extra)
    build_payload(request)
    assert request.extra_body == {"top_k": 3}
    assert request.messages is None


# -- parse_event: chat -------------------------------------------------------------------------


def test_role_only_chunk_is_no_step() -> None:
    # vLLM sends it as the first token arrives, before that token's own chunk: neither
    # TTFT nor a decode step.
    chunk = parse_event(_chat_chunk(_delta(role="assistant", content="")), T)
    assert chunk == Chunk(T, response_id="chatcmpl-1")
    assert not chunk.has_output and not chunk.step


def test_role_only_chunk_without_content_key() -> None:
    chunk = parse_event(_chat_chunk(_delta(role="assistant")), T)
    assert not chunk.has_output and not chunk.step
    assert chunk.text == ""
    null = parse_event(_chat_chunk(_delta(role="assistant", content=None)), T)
    assert not null.step


def test_role_with_the_first_token_is_a_step() -> None:
    chunk = parse_event(_chat_chunk(_delta(role="assistant", content="Hi")), T)
    assert chunk.step and chunk.has_output and chunk.text == "Hi"
    finish = parse_event(_chat_chunk(_delta(role="assistant", content="", finish="stop")), T)
    assert finish.step, "the step that ended the request, though it also names the role"


_DELTA_FIELDS: dict[str, list[Any]] = {
    "role": ["assistant"],
    "content": ["", None, "x"],
    "reasoning_content": ["", "r"],
    "reasoning": ["", "r"],
    "tool_calls": [[], [{"index": 0, "function": {"arguments": "{"}}]],
}


def _deltas() -> list[dict[str, Any] | None]:
    """Every delta made of the fields above (each absent or one of its values), and none."""
    deltas: list[dict[str, Any]] = [{}]
    for key, values in _DELTA_FIELDS.items():
        deltas = [*deltas, *({**d, key: v} for d in deltas for v in values)]
    return [None, *deltas]


@pytest.mark.parametrize("finish", [None, "stop"])
@pytest.mark.parametrize("token_ids", [None, [], [7]])
def test_every_choice_shape_reads_by_the_metric_definitions(
    finish: str | None, token_ids: list[int] | None
) -> None:
    """A decode step is any chunk but chat's opening one (the role, no output, no finish
    reason, no token ids) and the end alone (a finish reason and no content at all: no key,
    or null); output is text, reasoning, tool calls or token ids. Checked for every
    combination of a delta's fields, against these definitions written plainly."""
    for delta in _deltas():
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if delta is None:
            choice["text"] = "t"  # completions
        else:
            choice["delta"] = delta
        if token_ids is not None:
            choice["token_ids"] = token_ids
        chunk = parse_event(_chat_chunk(choice), T)
        d = delta or {}
        produced = any(
            d.get(k) for k in ("content", "reasoning_content", "reasoning", "tool_calls")
        )
        opening = delta is not None and "role" in d and not produced
        opening = opening and not finish and not token_ids
        end_alone = delta is not None and finish is not None and d.get("content") is None
        end_alone = end_alone and not produced and not token_ids
        text = d.get("content") or "" if delta is not None else "t"
        assert chunk.step is not (opening or end_alone), choice
        assert chunk.has_output is bool(produced or token_ids or text), choice
        assert chunk.text == text, choice
        assert chunk.finish_reason == finish, choice
        thought = d.get("reasoning") or d.get("reasoning_content")
        held_back = "" in (d.get("reasoning"), d.get("reasoning_content"))
        held_back = held_back and not token_ids and not d.get("tool_calls")
        reasoning = chunk.step and not d.get("content") and bool(thought or held_back)
        assert chunk.reasoning is reasoning, choice


def test_the_end_alone_is_no_decode_step() -> None:
    """OpenAI ends a stream with `"delta": {}` and sageLLM's gateway with `"content": null`
    beside the finish reason: no token came with it, so it adds no ITL gap; vLLM's last
    step carries a token (`"content": ""` for EOS) and stays a step."""
    for delta in ({}, {"role": None, "content": None}, {"content": None}):
        chunk = parse_event(_chat_chunk({"index": 0, "delta": delta, "finish_reason": "stop"}), T)
        assert not chunk.step and not chunk.has_output and chunk.finish_reason == "stop"
    eos = parse_event(_chat_chunk(_delta(content="", finish="stop")), T)
    assert eos.step and eos.finish_reason == "stop"


def test_content_delta() -> None:
    chunk = parse_event(_chat_chunk(_delta(content="Hello")), T)
    assert chunk.t == T
    assert chunk.text == "Hello"
    assert chunk.has_output
    assert chunk.finish_reason is None
    assert chunk.usage is None


def test_whitespace_content_counts_as_output() -> None:
    chunk = parse_event(_chat_chunk(_delta(content=" ")), T)
    assert chunk.has_output
    assert chunk.text == " "


def test_empty_last_content_chunk_with_finish_reason() -> None:
    chunk = parse_event(_chat_chunk(_delta(content="", finish="length")), T)
    assert not chunk.has_output
    assert chunk.text == ""
    assert chunk.finish_reason == "length"


def test_empty_chunks_are_decode_steps() -> None:
    # vLLM's EOS step and a step whose text it holds back (part of a UTF-8 character).
    eos = parse_event(_chat_chunk(_delta(content="", finish="stop")), T)
    held_back = parse_event(_chat_chunk(_delta(content="")), T)
    assert eos.step and held_back.step
    assert not eos.has_output and not held_back.has_output
    assert parse_event(_chat_chunk(_delta(content="x")), T).step


def test_last_token_with_finish_reason() -> None:
    chunk = parse_event(_chat_chunk(_delta(content="end", finish="stop")), T)
    assert chunk.has_output
    assert chunk.text == "end"
    assert chunk.finish_reason == "stop"


def test_usage_chunk_with_empty_choices() -> None:
    usage = {"prompt_tokens": 12, "total_tokens": 40, "completion_tokens": 28}
    chunk = parse_event(_chat_chunk(usage=usage), T)
    assert chunk.usage == Usage(prompt_tokens=12, completion_tokens=28)
    assert not chunk.has_output
    assert not chunk.step, "a usage-only chunk is no decode step"
    assert chunk.finish_reason is None


def test_null_usage_is_no_usage() -> None:
    # LMDeploy and older servers stream "usage": null on every chunk.
    chunk = parse_event(_chat_chunk(_delta(content="x"), usage=None), T)
    assert chunk.usage is None
    assert chunk.text == "x"


def test_usage_with_missing_or_bad_counts() -> None:
    chunk = parse_event(_chat_chunk(usage={"prompt_tokens": 5, "completion_tokens": "7"}), T)
    assert chunk.usage == Usage(prompt_tokens=5, completion_tokens=None)


def test_usage_on_a_content_chunk() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 1}
    chunk = parse_event(_chat_chunk(_delta(content="a"), usage=usage), T)
    assert chunk.text == "a"
    assert chunk.usage == Usage(3, 1)


@pytest.mark.parametrize(
    "delta",
    [
        {"reasoning_content": "thinking"},
        {"reasoning": "thinking"},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]},
        {"content": None, "reasoning_content": "thinking"},
        {"content": "", "tool_calls": [{"index": 0, "id": "call_1", "type": "function"}]},
    ],
    ids=["reasoning_content", "reasoning", "tool_calls", "null-content", "empty-content"],
)
def test_reasoning_and_tool_calls_count_as_output(delta: dict[str, Any]) -> None:
    chunk = parse_event(_chat_chunk({"index": 0, "delta": delta, "finish_reason": None}), T)
    assert chunk.has_output
    assert chunk.text == ""


def test_token_ids_count_as_output() -> None:
    choice = {"index": 0, "text": "", "token_ids": [42], "finish_reason": None}
    assert parse_event(_event({"choices": [choice]}), T).has_output


def test_multiple_choices_concatenate_text() -> None:
    chunk = parse_event(
        _chat_chunk(_delta(0, content="A"), _delta(1, content="B"), _delta(2, content="")), T
    )
    assert chunk.text == "AB"
    assert chunk.has_output


def test_multiple_choices_finish_reason() -> None:
    chunk = parse_event(
        _chat_chunk(_delta(0, content="", finish="stop"), _delta(1, content="x")), T
    )
    assert chunk.finish_reason == "stop"
    assert chunk.text == "x"


# -- parse_event: completions ------------------------------------------------------------------


def test_completions_text_chunk() -> None:
    data = _event(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": "m",
            "choices": [{"index": 0, "text": " world", "logprobs": None, "finish_reason": None}],
        }
    )
    chunk = parse_event(data, T)
    assert chunk.text == " world"
    assert chunk.has_output


def test_completions_empty_last_text_chunk() -> None:
    data = _event({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    chunk = parse_event(data, T)
    assert not chunk.has_output
    assert chunk.step
    assert chunk.finish_reason == "length"


# -- parse_event: errors -----------------------------------------------------------------------


def test_error_object_raises_server_error_event() -> None:
    data = _event(
        {"error": {"message": "KV cache full", "type": "InternalServerError", "code": 500}}
    )
    with pytest.raises(ServerErrorEvent) as info:
        parse_event(data, T)
    assert info.value.error_type == "InternalServerError"
    assert info.value.code == 500
    assert "KV cache full" in str(info.value)
    assert "InternalServerError" in str(info.value)
    assert "500" in str(info.value)


def test_error_object_with_string_code() -> None:
    data = _event({"error": {"message": "bad", "type": "invalid_request_error", "code": "x1"}})
    with pytest.raises(ServerErrorEvent) as info:
        parse_event(data, T)
    assert info.value.code is None
    assert info.value.error_type == "invalid_request_error"
    assert "bad" in str(info.value)


def test_error_as_a_plain_string() -> None:
    with pytest.raises(ServerErrorEvent, match="engine died"):
        parse_event(_event({"error": "engine died"}), T)


def test_object_error_form() -> None:
    data = _event(
        {"object": "error", "message": "context too long", "type": "BadRequestError", "code": 400}
    )
    with pytest.raises(ServerErrorEvent) as info:
        parse_event(data, T)
    assert info.value.error_type == "BadRequestError"
    assert info.value.code == 400
    assert "context too long" in str(info.value)


def test_null_error_field_is_not_an_error() -> None:
    chunk = parse_event(_chat_chunk(_delta(content="ok"), error=None), T)
    assert chunk.text == "ok"


@pytest.mark.parametrize(
    "data",
    [b"not json", b"{", b'{"choices": [', b""],
    ids=["text", "open-brace", "truncated", "empty"],
)
def test_non_json_raises_malformed_event(data: bytes) -> None:
    with pytest.raises(MalformedEventError, match="not JSON"):
        parse_event(data, T)


def test_bytes_that_are_not_utf8_are_named_with_their_offset() -> None:
    data = b'{"choices":[{"delta":{"content":" \xff\xfe"}}]}'
    with pytest.raises(MalformedEventError, match=r"not valid UTF-8 \(byte ff at offset 34\)"):
        parse_event(data, T)


@pytest.mark.parametrize("data", [b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object(data: bytes) -> None:
    with pytest.raises(MalformedEventError, match="not a JSON object"):
        parse_event(data, T)


@pytest.mark.parametrize(
    "choices", [{"index": 0, "text": "x"}, "abc", 7], ids=["object", "string", "number"]
)
def test_choices_not_a_list(choices: Any) -> None:
    with pytest.raises(MalformedEventError, match="'choices' is not a list"):
        parse_event(_event({"choices": choices}), T)


def test_choice_not_an_object() -> None:
    with pytest.raises(MalformedEventError, match="choice is not an object"):
        parse_event(_event({"choices": ["text"]}), T)


def test_malformed_event_message_holds_an_excerpt() -> None:
    with pytest.raises(MalformedEventError) as info:
        parse_event(b"<html>" + b"x" * 1000, T)
    message = str(info.value)
    assert "<html>" in message
    assert len(message) < 300


# -- _parse_body: non-streamed answers ---------------------------------------------------------


def test_non_streamed_chat_body() -> None:
    body = _event(
        {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi there"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
        }
    )
    chunk = _parse_body(body, T)
    assert chunk.t == T
    assert chunk.text == "Hi there"
    assert chunk.has_output
    assert chunk.finish_reason == "stop"
    assert chunk.usage == Usage(4, 2)


def test_non_streamed_completions_body() -> None:
    body = _event(
        {
            "object": "text_completion",
            "choices": [{"index": 0, "text": "42", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1},
        }
    )
    chunk = _parse_body(body, T)
    assert chunk.text == "42"
    assert chunk.has_output
    assert chunk.finish_reason == "length"
    assert chunk.usage == Usage(9, 1)


def test_non_streamed_tool_call_body_counts_as_output() -> None:
    body = _event(
        {
            "choices": [
                {
                    "message": {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    chunk = _parse_body(body, T)
    assert chunk.has_output
    assert chunk.text == ""
    assert chunk.usage is None
    assert chunk.finish_reason == "tool_calls"


def test_non_streamed_empty_answer() -> None:
    body = _event({"choices": [{"message": {"role": "assistant", "content": ""}}]})
    chunk = _parse_body(body, T)
    assert not chunk.has_output
    assert chunk.text == ""


def test_non_streamed_error_body_raises() -> None:
    with pytest.raises(ServerErrorEvent) as info:
        _parse_body(_event({"error": {"message": "nope", "type": "T", "code": 503}}), T)
    assert info.value.code == 503


@pytest.mark.parametrize(("body", "match"), [(b"oops", "not JSON"), (b"[]", "not a JSON object")])
def test_non_streamed_malformed_body(body: bytes, match: str) -> None:
    with pytest.raises(MalformedEventError, match=match):
        _parse_body(body, T)


def test_response_id_is_kept_when_it_is_a_string() -> None:
    assert parse_event(b'{"id":"cmpl-9","choices":[]}', T).response_id == "cmpl-9"
    assert parse_event(b'{"id":7,"choices":[]}', T).response_id is None
    assert parse_event(b'{"choices":[]}', T).response_id is None
