"""Request validation: accepted fields, vLLM-style client errors, context-length limits."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sagellm_users.mock_server import MockServerConfig
from sagellm_users.mock_server.validation import (
    GenerationRequest,
    RequestError,
    parse_chat_request,
    parse_completion_request,
    resolve_max_tokens,
)

MSGS = [{"role": "user", "content": "hello there"}]


def chat(**fields: Any) -> GenerationRequest:
    return parse_chat_request(orjson.dumps({"messages": MSGS, **fields}))


def cmpl(**fields: Any) -> GenerationRequest:
    return parse_completion_request(orjson.dumps({"prompt": "a b c", **fields}))


def test_chat_request_fields() -> None:
    r = chat(
        model="m",
        max_tokens=9,
        min_tokens=2,
        ignore_eos=True,
        stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True},
        temperature=0.3,
        some_unknown_field={"x": 1},
    )
    assert r == GenerationRequest(
        kind="chat",
        model="m",
        prompt_tokens=2 + 4,
        max_tokens=9,
        min_tokens=2,
        ignore_eos=True,
        stream=True,
        include_usage=True,
        continuous_usage=True,
    )


def test_max_completion_tokens_wins_for_chat() -> None:
    assert chat(max_tokens=9, max_completion_tokens=4).max_tokens == 4
    assert cmpl(max_completion_tokens=4).max_tokens is None


def test_stream_options_follow_vllm_defaults() -> None:
    assert chat(stream=True).include_usage is False
    assert chat(stream=True, stream_options={}).include_usage is True
    r = chat(stream=True, stream_options={"include_usage": False, "continuous_usage_stats": True})
    assert (r.include_usage, r.continuous_usage) == (False, False)


def test_completion_prompts() -> None:
    assert cmpl().prompt_tokens == 3
    assert parse_completion_request(b'{"prompt": [1, 2, 3, 4]}').prompt_tokens == 4
    assert parse_completion_request(b'{"prompt": ["x y"]}').prompt_tokens == 2
    assert parse_completion_request(b'{"prompt": [[5, 6]]}').prompt_tokens == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "JSON decode error"),
        (b"[1, 2]", "valid dictionary"),
        (b'{"model": "m"}', "messages: Field required"),
        (b'{"messages": []}', "non-empty list"),
        (b'{"messages": [{"content": "x"}]}', "'role'"),
        (b'{"messages": [{"role": "user", "content": 3}]}', "content"),
    ],
)
def test_bad_chat_bodies(body: bytes, message: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_chat_request(body)
    assert message in info.value.message
    assert (info.value.status, info.value.err_type) == (400, "BadRequestError")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": 0}, "max_tokens must be at least 1, got 0."),
        ({"max_tokens": -5}, "at least 1"),
        ({"max_tokens": "7"}, "valid integer"),
        ({"max_tokens": True}, "valid integer"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"max_tokens": 3, "min_tokens": 4}, "less than or equal to max_tokens"),
        ({"n": 2}, "n must be 1"),
        ({"stream_options": {"include_usage": True}}, "only be defined when `stream=True`"),
        ({"stream": "yes"}, "valid boolean"),
        ({"model": 5}, "model"),
    ],
)
def test_bad_fields(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError) as info:
        chat(**fields)
    assert message in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{}", "Either prompt or prompt_embeds must be provided"),
        (b'{"prompt": ["a", "b"]}', "single prompt"),
        (b'{"prompt": 12}', "prompt"),
        (b'{"prompt": []}', "prompt"),
    ],
)
def test_bad_completion_bodies(body: bytes, message: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_completion_request(body)
    assert message in info.value.message


def test_max_tokens_resolution_and_context_limits() -> None:
    cfg = MockServerConfig(max_model_len=10, default_max_tokens=64)
    assert resolve_max_tokens(cmpl(), cfg) == 7  # default clipped to the room left
    assert resolve_max_tokens(cmpl(max_tokens=7), cfg) == 7
    with pytest.raises(RequestError, match="too large: 8"):
        resolve_max_tokens(cmpl(max_tokens=8), cfg)
    long_prompt = parse_completion_request(orjson.dumps({"prompt": "w " * 10}))
    with pytest.raises(RequestError, match="maximum context length is 10 tokens"):
        resolve_max_tokens(long_prompt, cfg)
    assert resolve_max_tokens(cmpl(), MockServerConfig(default_max_tokens=5)) == 5
