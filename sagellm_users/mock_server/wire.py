"""Bytes on the wire: vLLM-shaped JSON chunks and bodies, SSE events, HTTP/1.1 framing.

The shapes are byte for byte those of vLLM 0.32's OpenAI server (captured from a real one;
it serialises stream chunks with ``exclude_unset``):

* chat role chunk: ``choices[0] = {"index":0,"delta":{"role":"assistant","content":""},
  "logprobs":null,"finish_reason":null}`` and top-level ``"prompt_token_ids":null,
  "prompt_text":null``;
* chat content chunk: ``{"index":0,"delta":{"content":" w"},"logprobs":null,
  "finish_reason":null,"token_ids":null}``; the last one carries ``finish_reason`` and
  ``"stop_reason":null`` (before ``token_ids``); when the stream stops on EOS its content
  is ``""`` (the EOS step), and a token whose text is held back is ``""`` too;
* completion chunk: ``{"index":0,"text":" w","logprobs":null,"finish_reason":null,
  "stop_reason":null,"prompt_token_ids":null,"token_ids":null}``;
* usage chunk: ``"choices":[]``, ``"usage":{"prompt_tokens","total_tokens",
  "completion_tokens"}`` in that order (EOS counted), then ``"system_fingerprint"``;
  continuous usage puts the same object, after ``choices``, into every chunk;
* in-stream error: ``{"error": {"message", "type", "param", "code"}}`` written with
  ``json.dumps`` (spaces after separators), as vLLM does, then ``data: [DONE]``;
* error bodies: ``{"error":{"message","type","param","code"}}`` (vLLM's current
  ``ErrorResponse``; the flat ``"object":"error"`` form is from releases before 0.10).

Streaming is the hot path, so a per-request :class:`StreamEncoder` pre-encodes the constant
head and tail of its token chunks once and splices in the pre-encoded word: one bytes
formatting operation per event. Each SSE event is framed as one HTTP chunk, like uvicorn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from time import perf_counter
from typing import Any, ClassVar, Protocol

import orjson

__all__ = [
    "DONE_AND_END",
    "END_OF_BODY",
    "ChatStreamEncoder",
    "CompletionStreamEncoder",
    "StreamEncoder",
    "TokenEncoder",
    "chat_body",
    "completion_body",
    "error_body",
    "http_chunk",
    "response_head",
    "simple_response",
    "stream_head",
    "typed_event",
]

SERVER_HEADER = b"server: sagellm-mock\r\n"
#: What vLLM puts after the usage of its last chunk (``vllm-VERSION-HASH`` there).
SYSTEM_FINGERPRINT = b',"system_fingerprint":"sagellm-mock"'
END_OF_BODY = b"0\r\n\r\n"


def http_chunk(sse_event: bytes) -> bytes:
    """Frame one payload as one HTTP/1.1 chunk."""
    return b"%x\r\n%b\r\n" % (len(sse_event), sse_event)


def typed_event(name: bytes, payload_json: bytes) -> bytes:
    """One SSE event with its name (``event: NAME`` then ``data: ...``), as the Responses
    and Messages APIs send every event, framed as one HTTP/1.1 chunk."""
    return b"%x\r\nevent: %b\ndata: %b\n\n\r\n" % (
        len(name) + len(payload_json) + 16,
        name,
        payload_json,
    )


def _event_chunk(payload_json: bytes) -> bytes:
    # "data: " + json + "\n\n" framed as one HTTP chunk: 8 bytes of SSE framing.
    return b"%x\r\ndata: %b\n\n\r\n" % (len(payload_json) + 8, payload_json)


#: ``data: [DONE]`` followed by the zero-length chunk that ends the body.
DONE_AND_END = http_chunk(b"data: [DONE]\n\n") + END_OF_BODY


def response_head(
    status: int,
    *,
    content_type: bytes | None,
    length: int | None,
    keep_alive: bool,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """Status line and headers; ``length=None`` means ``Transfer-Encoding: chunked``."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()), SERVER_HEADER]
    if content_type is not None:
        lines.append(b"content-type: %b\r\n" % content_type)
    if length is None:
        lines.append(b"transfer-encoding: chunked\r\n")
    else:
        lines.append(b"content-length: %d\r\n" % length)
    lines.extend(b"%b: %b\r\n" % (name, value) for name, value in extra)
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


_STREAM_HEADS = {
    ka: response_head(
        200, content_type=b"text/event-stream; charset=utf-8", length=None, keep_alive=ka
    )
    for ka in (True, False)
}


def stream_head(keep_alive: bool) -> bytes:
    """Headers of a 200 SSE response (pre-encoded)."""
    return _STREAM_HEADS[keep_alive]


def simple_response(
    status: int,
    body: bytes,
    *,
    keep_alive: bool,
    content_type: bytes | None = b"application/json",
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """A complete response with a ``content-length`` body."""
    head = response_head(
        status, content_type=content_type, length=len(body), keep_alive=keep_alive, extra=extra
    )
    return head + body


def error_body(message: str, err_type: str, code: int, param: str | None = None) -> bytes:
    """vLLM's ``ErrorResponse`` body."""
    return orjson.dumps(
        {"error": {"message": message, "type": err_type, "param": param, "code": code}}
    )


def _timestamps(t_request: float, t_send: float) -> bytes:
    return b',"mock_t_request":%r,"mock_t_send":%r' % (t_request, t_send)


def usage_details(cache: tuple[int, int] | None, reasoning_tokens: int | None) -> bytes:
    """The usage object's details, as vLLM 0.32 adds them: the prompt tokens read from its
    prefix cache and those it newly cached, when started with
    ``--enable-prompt-tokens-details``; reasoning tokens with a ``--reasoning-parser``."""
    out = b""
    if cache is not None:
        out += b',"prompt_tokens_details":{"cached_tokens":%d,"created_cache_tokens":%d}' % cache
    if reasoning_tokens is not None:
        out += b',"completion_tokens_details":{"reasoning_tokens":%d}' % reasoning_tokens
    return out


def _usage(prompt_tokens: int, completion_tokens: int, details: bytes = b"") -> bytes:
    return b',"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d%b}' % (
        prompt_tokens,
        prompt_tokens + completion_tokens,
        completion_tokens,
        details,
    )


class TokenEncoder(Protocol):
    """What a streaming generation needs from its wire format (see :class:`StreamEncoder`,
    the LMDeploy ``/generate`` encoder and the Responses and Messages encoders).

    ``end_of_stream`` is what follows a stream's last event: ``data: [DONE]`` and the
    body's end on OpenAI's and LMDeploy's routes, the body's end alone on the APIs whose
    last event ends the stream (Responses, Messages)."""

    @property
    def end_of_stream(self) -> bytes: ...

    def token(self, word: bytes, n_done: int, t_send: float) -> bytes: ...

    def next_token(self, word: bytes, n_done: int) -> bytes: ...

    def final_token(self, word: bytes, n_done: int, finish_reason: str, t_send: float) -> bytes: ...

    def preamble(self, t_send: float) -> bytes: ...

    def usage(self, completion_tokens: int, t_send: float) -> bytes: ...

    def error(self, message: str, err_type: str, code: int, t_send: float) -> bytes: ...


class StreamEncoder:
    """Encodes one streaming request's events as ready-to-write HTTP chunks.

    ``t_request`` set means ``--send-timestamps``: every JSON event gets
    ``mock_t_request`` and ``mock_t_send`` (the ``t_send`` passed to each call).
    ``null_usage`` means ``--stream-usage-null``: every event carries ``"usage":null``,
    as LMDeploy servers before 0.7 streamed, and no usage chunk follows.
    ``cache`` (prompt tokens read from the cache and newly cached) and ``reasoning_tokens``
    (of this request, when the server simulates a prefix cache or a reasoning model) go into
    the final usage's details.
    """

    ID_PREFIX: ClassVar[bytes]
    OBJECT: ClassVar[bytes]
    end_of_stream = DONE_AND_END
    #: JSON from the opening of ``choices[0]`` up to where the token's text goes.
    TEXT_OPEN: ClassVar[bytes]
    #: JSON after the token's text, up to and including the ``]`` closing ``choices``.
    MID_CLOSE: ClassVar[bytes]
    FINAL_CLOSE: ClassVar[bytes]  # with one %b for the finish reason

    __slots__ = (
        "_chunks",
        "_continuous",
        "_fast_len",
        "_head",
        "_null",
        "_plain",
        "_pre",
        "_prompt_tokens",
        "_t_request",
        "_tail",
        "cache",
        "reasoning_tokens",
    )

    def __init__(
        self,
        *,
        request_hex: str,
        created: int,
        model_json: bytes,
        prompt_tokens: int,
        continuous_usage: bool = False,
        t_request: float | None = None,
        null_usage: bool = False,
    ) -> None:
        self._pre = b'{"id":"%b%b","object":"%b","created":%d,"model":%b,"choices":[' % (
            self.ID_PREFIX,
            request_hex.encode(),
            self.OBJECT,
            created,
            model_json,
        )
        self._prompt_tokens = prompt_tokens
        self._continuous = continuous_usage
        self._t_request = t_request
        self._null = b',"usage":null' if null_usage and not continuous_usage else b""
        self._plain = not continuous_usage and t_request is None
        self._head = b"data: " + self._pre + self.TEXT_OPEN
        self._tail = self.MID_CLOSE + self._null + b"}\n\n"
        self._fast_len = len(self._head) + len(self._tail)
        self._chunks: dict[bytes, bytes] = {}  # word -> chunk, when chunks do not vary
        self.cache: tuple[int, int] | None = None
        self.reasoning_tokens: int | None = None

    def _extras(self, n_done: int, t_send: float) -> bytes:
        out = _usage(self._prompt_tokens, n_done) if self._continuous else self._null
        if self._t_request is not None:
            out += _timestamps(self._t_request, t_send)
        return out

    def token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        """A mid-stream token chunk; ``n_done`` counts tokens including this one."""
        if self._plain:
            return b"%x\r\n%b%b%b\r\n" % (self._fast_len + len(word), self._head, word, self._tail)
        return _event_chunk(
            self._pre + self.TEXT_OPEN + word + self.MID_CLOSE + self._extras(n_done, t_send) + b"}"
        )

    def next_token(self, word: bytes, n_done: int) -> bytes:
        """:meth:`token` for the per-token hot path, stamped with the time of the call.

        Without usage or timestamps a word's chunk is the same every time, so it is built
        once per request and reused (the vocabulary is small; a 256-token stream builds
        at most 50).
        """
        if self._plain:
            chunk = self._chunks.get(word)
            if chunk is None:
                chunk = self._chunks[word] = self.token(word, n_done, 0.0)
            return chunk
        return self.token(word, n_done, perf_counter())

    def final_token(self, word: bytes, n_done: int, finish_reason: str, t_send: float) -> bytes:
        """The last token chunk, carrying ``finish_reason`` and ``stop_reason``."""
        close = self.FINAL_CLOSE % finish_reason.encode()
        return _event_chunk(
            self._pre + self.TEXT_OPEN + word + close + self._extras(n_done, t_send) + b"}"
        )

    def preamble(self, t_send: float) -> bytes:
        """Events sent before the first token (chat: the role chunk)."""
        return b""

    def usage(self, completion_tokens: int, t_send: float) -> bytes:
        """The ``include_usage`` chunk: empty ``choices``, the totals, the fingerprint."""
        ts = b"" if self._t_request is None else _timestamps(self._t_request, t_send)
        reasoning = self.reasoning_tokens
        if reasoning is not None:
            reasoning = min(reasoning, completion_tokens)
        details = usage_details(self.cache, reasoning)
        usage = _usage(self._prompt_tokens, completion_tokens, details)
        return _event_chunk(self._pre + b"]" + usage + SYSTEM_FINGERPRINT + ts + b"}")

    def error(self, message: str, err_type: str, code: int, t_send: float) -> bytes:
        """vLLM's in-stream error event (``json.dumps`` spacing)."""
        doc: dict[str, Any] = {
            "error": {"message": message, "type": err_type, "param": None, "code": code}
        }
        if self._t_request is not None:
            doc["mock_t_request"] = self._t_request
            doc["mock_t_send"] = t_send
        return _event_chunk(json.dumps(doc).encode())


class ChatStreamEncoder(StreamEncoder):
    """``chat.completion.chunk`` events, role chunk first."""

    ID_PREFIX = b"chatcmpl-"
    OBJECT = b"chat.completion.chunk"
    TEXT_OPEN = b'{"index":0,"delta":{"content":'
    MID_CLOSE = b'},"logprobs":null,"finish_reason":null,"token_ids":null}]'
    FINAL_CLOSE = b'},"logprobs":null,"finish_reason":"%b","stop_reason":null,"token_ids":null}]'
    ROLE_CHOICE = (
        b'{"index":0,"delta":{"role":"assistant","content":""},'
        b'"logprobs":null,"finish_reason":null}]'
    )
    REASONING_OPEN = b'{"index":0,"delta":{"reasoning":'

    __slots__ = ()

    def reasoning_token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        """A reasoning token: vLLM's delta names it ``reasoning`` (a server with a
        reasoning parser), the answer's tokens ``content``."""
        return _event_chunk(
            self._pre + self.REASONING_OPEN + word + self.MID_CLOSE + self._extras(n_done, t_send)
            + b"}"
        )  # fmt: skip

    def preamble(self, t_send: float) -> bytes:
        usage = _usage(self._prompt_tokens, 0) if self._continuous else self._null
        ts = b"" if self._t_request is None else _timestamps(self._t_request, t_send)
        return _event_chunk(
            self._pre
            + self.ROLE_CHOICE
            + usage
            + b',"prompt_token_ids":null,"prompt_text":null'
            + ts
            + b"}"
        )


class CompletionStreamEncoder(StreamEncoder):
    """``text_completion`` events, one per token."""

    ID_PREFIX = b"cmpl-"
    OBJECT = b"text_completion"
    TEXT_OPEN = b'{"index":0,"text":'
    MID_CLOSE = (
        b',"logprobs":null,"finish_reason":null,"stop_reason":null,'
        b'"prompt_token_ids":null,"token_ids":null}]'
    )
    FINAL_CLOSE = (
        b',"logprobs":null,"finish_reason":"%b","stop_reason":null,'
        b'"prompt_token_ids":null,"token_ids":null}]'
    )

    __slots__ = ()


def _usage_obj(
    prompt_tokens: int, completion_tokens: int, cache: tuple[int, int] | None = None
) -> dict[str, Any]:
    details = None
    if cache is not None:
        details = {
            "cached_tokens": cache[0],
            "created_cache_tokens": cache[1],
            "multimodal_tokens": None,
        }
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": details,
    }


def chat_body(
    *,
    request_hex: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    timestamps: tuple[float, float] | None = None,
    cache: tuple[int, int] | None = None,
) -> bytes:
    """A non-streaming ``chat.completion`` body, fields in vLLM's order."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": [],
        "reasoning_content": None,
    }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
        "token_ids": None,
    }
    doc: dict[str, Any] = {
        "id": f"chatcmpl-{request_hex}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": _usage_obj(prompt_tokens, completion_tokens, cache),
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }
    if timestamps is not None:
        doc["mock_t_request"], doc["mock_t_send"] = timestamps
    return orjson.dumps(doc)


def completion_body(
    *,
    request_hex: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    timestamps: tuple[float, float] | None = None,
    cache: tuple[int, int] | None = None,
) -> bytes:
    """A non-streaming ``text_completion`` body, fields in vLLM's order."""
    choice = {
        "index": 0,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
        "token_ids": None,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
    }
    doc: dict[str, Any] = {
        "id": f"cmpl-{request_hex}",
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": _usage_obj(prompt_tokens, completion_tokens, cache),
        "kv_transfer_params": None,
    }
    if timestamps is not None:
        doc["mock_t_request"], doc["mock_t_send"] = timestamps
    return orjson.dumps(doc)
