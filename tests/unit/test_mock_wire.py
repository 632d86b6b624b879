"""Encoders produce vLLM's exact chunk shapes; the bytes are parsed back to check."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from sagellm_users.mock_server.simulation import EMPTY_TOKEN
from sagellm_users.mock_server.wire import (
    DONE_AND_END,
    ChatStreamEncoder,
    CompletionStreamEncoder,
    StreamEncoder,
    chat_body,
    completion_body,
    error_body,
    response_head,
    simple_response,
)

HEX = "0123456789abcdef0123456789abcdef"
WORD = orjson.dumps(" café")


def events(http_chunks: bytes) -> list[bytes]:
    """Undo the HTTP chunk framing, checking sizes, and return the SSE payloads."""
    out: list[bytes] = []
    rest = http_chunks
    while rest:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n"
            break
        chunk, rest = rest[:size], rest[size:]
        assert rest[:2] == b"\r\n"
        rest = rest[2:]
        assert chunk.startswith(b"data: ") and chunk.endswith(b"\n\n")
        assert chunk.count(b"\n\n") == 1
        out.append(chunk[6:-2])
    return out


def one(http_chunk: bytes) -> dict[str, Any]:
    (payload,) = events(http_chunk)
    doc: dict[str, Any] = orjson.loads(payload)
    return doc


def chat(**kw: Any) -> StreamEncoder:
    return ChatStreamEncoder(
        request_hex=HEX, created=1700000000, model_json=b'"m"', prompt_tokens=7, **kw
    )


def cmpl(**kw: Any) -> StreamEncoder:
    return CompletionStreamEncoder(
        request_hex=HEX, created=1700000000, model_json=b'"m"', prompt_tokens=7, **kw
    )


HEAD_CHAT = {"id": "chatcmpl-" + HEX, "object": "chat.completion.chunk", "created": 1700000000}
HEAD_CMPL = {"id": "cmpl-" + HEX, "object": "text_completion", "created": 1700000000}


def test_chat_stream_chunks_have_vllm_shapes_and_key_order() -> None:
    enc = chat()
    role = one(enc.preamble(0.0))
    assert role == {
        **HEAD_CHAT,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
        "prompt_token_ids": None,
        "prompt_text": None,
    }
    assert list(role) == [
        "id", "object", "created", "model", "choices", "prompt_token_ids", "prompt_text"
    ]  # fmt: skip
    token = one(enc.token(WORD, 1, 0.0))
    assert token == {
        **HEAD_CHAT,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {"content": " café"},
                "logprobs": None,
                "finish_reason": None,
                "token_ids": None,
            }
        ],
    }
    last = one(enc.final_token(WORD, 3, "length", 0.0))
    assert last["choices"] == [
        {
            "index": 0,
            "delta": {"content": " café"},
            "logprobs": None,
            "finish_reason": "length",
            "stop_reason": None,
            "token_ids": None,
        }
    ]
    assert list(last["choices"][0]) == [
        "index", "delta", "logprobs", "finish_reason", "stop_reason", "token_ids"
    ]  # fmt: skip
    usage = one(enc.usage(3, 0.0))
    assert usage == {
        **HEAD_CHAT,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 7, "total_tokens": 10, "completion_tokens": 3},
        "system_fingerprint": "sagellm-mock",
    }
    assert list(usage["usage"]) == ["prompt_tokens", "total_tokens", "completion_tokens"]
    eos = one(enc.final_token(EMPTY_TOKEN, 4, "stop", 0.0))
    assert eos["choices"][0]["delta"] == {"content": ""}
    assert eos["choices"][0]["finish_reason"] == "stop"


def test_completion_stream_chunks_have_vllm_shapes() -> None:
    enc = cmpl()
    assert enc.preamble(0.0) == b""
    choice = {
        "index": 0,
        "text": " café",
        "logprobs": None,
        "finish_reason": None,
        "stop_reason": None,
        "prompt_token_ids": None,
        "token_ids": None,
    }
    assert one(enc.token(WORD, 1, 0.0)) == {**HEAD_CMPL, "model": "m", "choices": [choice]}
    last = one(enc.final_token(WORD, 2, "stop", 0.0))
    assert last["choices"] == [{**choice, "finish_reason": "stop"}]
    assert one(enc.usage(2, 0.0)) == {
        **HEAD_CMPL,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 7, "total_tokens": 9, "completion_tokens": 2},
        "system_fingerprint": "sagellm-mock",
    }


def test_fast_and_general_token_paths_agree() -> None:
    plain = chat()
    fancy = chat(continuous_usage=True)
    a = one(plain.token(WORD, 4, 0.0))
    b = one(fancy.token(WORD, 4, 0.0))
    assert b.pop("usage") == {"prompt_tokens": 7, "total_tokens": 11, "completion_tokens": 4}
    assert a == b


def test_continuous_usage_rides_on_every_chunk() -> None:
    enc = chat(continuous_usage=True)
    role = one(enc.preamble(0.0))
    assert role["usage"] == {"prompt_tokens": 7, "total_tokens": 7, "completion_tokens": 0}
    assert list(role) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "prompt_token_ids",
        "prompt_text",
    ]
    last = one(enc.final_token(WORD, 5, "length", 0.0))
    assert last["usage"]["completion_tokens"] == 5
    enc2 = cmpl(continuous_usage=True)
    assert one(enc2.token(WORD, 2, 0.0))["usage"]["total_tokens"] == 9


@pytest.mark.parametrize("make", [chat, cmpl])
def test_send_timestamps_are_added_to_every_json_chunk(make: Any) -> None:
    enc = make(t_request=12.5)
    chunks = [
        enc.token(WORD, 1, 13.25),
        enc.final_token(WORD, 2, "length", 13.25),
        enc.usage(2, 13.25),
        enc.error("boom", "InternalServerError", 500, 13.25),
    ]
    if make is chat:
        chunks.append(enc.preamble(13.25))
    for chunk in chunks:
        doc = one(chunk)
        assert doc["mock_t_request"] == 12.5 and doc["mock_t_send"] == 13.25


def test_stream_error_event_matches_vllm_json_dumps_output() -> None:
    (payload,) = events(chat().error("Internal server error", "InternalServerError", 500, 0.0))
    expected = {
        "error": {
            "message": "Internal server error",
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    }
    assert payload == json.dumps(expected).encode()


def test_done_marker_ends_the_chunked_body() -> None:
    assert events(DONE_AND_END) == [b"[DONE]"]
    assert DONE_AND_END.endswith(b"0\r\n\r\n")


def test_non_ascii_survives_the_framing() -> None:
    word = orjson.dumps(" 数据🙂")
    assert one(chat().token(word, 1, 0.0))["choices"][0]["delta"]["content"] == " 数据🙂"


def test_chat_body_shape() -> None:
    doc = orjson.loads(
        chat_body(
            request_hex=HEX,
            created=1,
            model="m",
            text=" a b",
            finish_reason="length",
            prompt_tokens=5,
            completion_tokens=2,
        )
    )
    assert doc["id"] == "chatcmpl-" + HEX and doc["object"] == "chat.completion"
    (choice,) = doc["choices"]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == " a b"
    assert choice["message"]["tool_calls"] == []
    assert (choice["finish_reason"], choice["stop_reason"], choice["logprobs"]) == (
        "length",
        None,
        None,
    )
    assert doc["usage"] == {
        "prompt_tokens": 5,
        "total_tokens": 7,
        "completion_tokens": 2,
        "prompt_tokens_details": None,
    }
    assert "mock_t_send" not in doc


def test_completion_body_shape_and_timestamps() -> None:
    doc = orjson.loads(
        completion_body(
            request_hex=HEX,
            created=1,
            model="m",
            text=" x",
            finish_reason="stop",
            prompt_tokens=1,
            completion_tokens=1,
            timestamps=(1.5, 2.5),
        )
    )
    assert doc["object"] == "text_completion" and doc["id"] == "cmpl-" + HEX
    assert doc["choices"][0]["text"] == " x" and doc["choices"][0]["finish_reason"] == "stop"
    assert doc["usage"]["total_tokens"] == 2
    assert (doc["mock_t_request"], doc["mock_t_send"]) == (1.5, 2.5)


def test_error_body_is_vllm_error_response() -> None:
    assert orjson.loads(error_body("bad", "BadRequestError", 400)) == {
        "error": {"message": "bad", "type": "BadRequestError", "param": None, "code": 400}
    }


def test_response_heads() -> None:
    head = response_head(200, content_type=b"text/plain", length=None, keep_alive=False)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"transfer-encoding: chunked\r\n" in head and b"connection: close\r\n" in head
    resp = simple_response(429, b"{}", keep_alive=True, extra=((b"retry-after", b"2"),))
    assert resp.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert b"content-length: 2\r\n" in resp and b"retry-after: 2\r\n" in resp
    assert b"connection: close" not in resp and resp.endswith(b"\r\n\r\n{}")
