"""Anthropic's Messages API (``POST /v1/messages``), streamed or not, as vLLM 0.32 serves it.

The request carries ``messages`` (the system messages taken out into ``system``, as the API
wants), ``max_tokens`` (required by the API: :data:`DEFAULT_MAX_TOKENS` when the request
has none), ``temperature`` and ``stream``, then ``extra_body``. vLLM's Anthropic request
model has neither ``ignore_eos`` nor ``min_tokens``; a request asking for one is refused
(see :mod:`.api_fields`).

The stream is typed events (``event: NAME`` then ``data: {"type": NAME, ...}``) and no
``[DONE]``: it ends with ``message_stop``. What becomes a :class:`~.base.Chunk`:

* ``content_block_delta`` with a ``text_delta``: a decode step with its text; with a
  ``thinking_delta``: a step of reasoning (``reasoning``, ``has_output``); with an
  ``input_json_delta``: a step with output (a tool call's arguments); a ``signature_delta``
  (the signature vLLM adds to a thinking block) is no step;
* ``message_start``: the message's id and its input tokens: ``input_tokens`` plus the
  prompt tokens read from or written to the cache (Anthropic counts those apart, and vLLM
  subtracts them from ``input_tokens``), the cache reads as ``cached_tokens``;
* ``message_delta``: the output tokens (``usage.output_tokens``, the whole answer's) and
  the finish: ``end_turn`` and ``stop_sequence`` are ``"stop"``, ``max_tokens`` is
  ``"length"``, ``tool_use`` is ``"tool_calls"``;
* ``message_stop``: the end (``final``);
* ``error``: a :class:`ServerErrorEvent`; ``ping``, ``content_block_start`` and
  ``content_block_stop``: nothing.

vLLM builds this stream from its chat stream and drops the chat deltas whose text is empty
(a token whose text it holds back, the EOS token), so the decode steps a client sees can be
fewer than the output tokens ``usage`` counts.
"""

from __future__ import annotations

from typing import Any

import orjson

from sagellm_users._backends.answer import ends_at
from sagellm_users._backends.api_fields import check_fields
from sagellm_users._backends.base import Chunk, GenerationRequest, Usage
from sagellm_users._backends.json_event import load_object, raise_error_object
from sagellm_users._errors import MalformedEventError, excerpt

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "build_messages_payload",
    "messages_finish",
    "messages_usage",
    "parse_messages_body",
    "parse_messages_event",
]

DEFAULT_MAX_TOKENS = 1024
"""``max_tokens`` of a request that names none: the API requires the field, and 1024 is the
value of Anthropic's own examples (the Messages API reference)."""

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
_loads = orjson.loads


def build_messages_payload(request: GenerationRequest) -> dict[str, Any]:
    """The ``/v1/messages`` body for ``request``; ``extra_body`` is applied last and wins."""
    check_fields(request)
    messages = request.messages
    if messages is None:
        messages = [{"role": "user", "content": request.prompt or ""}]
    system = [m.get("content") for m in messages if m.get("role") == "system"]
    payload: dict[str, Any] = {"model": request.model}
    payload["messages"] = [m for m in messages if m.get("role") != "system"] if system else messages
    max_tokens = request.max_tokens
    payload["max_tokens"] = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if system:
        payload["system"] = _system(system)
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    payload["stream"] = request.stream
    payload.update(request.extra_body)
    return payload


def _system(contents: list[Any]) -> str | list[Any]:
    """The system messages' contents as the API's ``system``: one string when they are all
    text, else a list of content blocks (OpenAI's text parts are Anthropic's text blocks)."""
    if all(isinstance(c, str) for c in contents):
        return "\n\n".join(contents)
    blocks: list[Any] = []
    for content in contents:
        if isinstance(content, str):
            blocks.append({"type": "text", "text": content})
        elif isinstance(content, list):
            blocks.extend(content)
    return blocks


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def messages_usage(raw: Any, *, output: bool = True) -> Usage | None:
    """An Anthropic ``usage`` object as :class:`Usage`: the prompt is ``input_tokens`` plus
    the cache's reads and writes, which Anthropic counts apart. ``output=False`` leaves the
    output tokens out (``message_start`` says 0 or 1 before any is made)."""
    if type(raw) is not dict:
        return None
    prompt = _int(raw.get("input_tokens"))
    cached = _int(raw.get("cache_read_input_tokens"))
    if prompt is not None:
        prompt += (cached or 0) + (_int(raw.get("cache_creation_input_tokens")) or 0)
    completion = _int(raw.get("output_tokens")) if output else None
    return Usage(prompt, completion, cached_tokens=cached)


def messages_finish(stop_reason: Any) -> str | None:
    """Anthropic's ``stop_reason`` in chat's words (``"stop"``, ``"length"``, ...)."""
    if type(stop_reason) is not str:
        return None
    return _STOP_REASONS.get(stop_reason, stop_reason)


def _delta(obj: dict[str, Any], data: bytes, t: float) -> Chunk:
    """A ``content_block_delta``: one step of text, reasoning or tool input."""
    delta = obj.get("delta")
    if type(delta) is not dict:
        raise MalformedEventError(f"content_block_delta without a 'delta': {excerpt(data)!r}")
    kind = delta.get("type")
    if kind == "text_delta":
        text = delta.get("text")
        if type(text) is not str:
            raise MalformedEventError(f"text_delta whose 'text' is not a string: {excerpt(data)!r}")
        return Chunk(t, text, bool(text), True)
    if kind == "thinking_delta":
        return Chunk(t, has_output=True, step=True, reasoning=True)
    if kind == "input_json_delta":
        return Chunk(t, has_output=True, step=True)
    return Chunk(t)  # signature_delta, citations_delta: no token


@ends_at("message_stop")
def parse_messages_event(data: bytes, t: float) -> Chunk:
    """One Messages API stream event as a :class:`Chunk` stamped ``t`` (see the module's
    note for what each event becomes).

    As fast and as strict as chat's :func:`~.openai.parse_event`: a text delta costs two
    Python calls beside the JSON parser's; bytes that are not a JSON object raise
    MalformedEventError, an ``error`` event ServerErrorEvent.
    """
    try:
        obj = _loads(data)
    except orjson.JSONDecodeError:
        obj = load_object(data, "Messages stream event")  # raises, naming what is wrong
    if type(obj) is not dict:
        obj = load_object(data, "Messages stream event")
    kind = obj.get("type")
    if kind == "content_block_delta":
        return _delta(obj, data, t)
    if kind == "message_delta":
        delta = obj.get("delta")
        reason = delta.get("stop_reason") if type(delta) is dict else None
        usage = messages_usage(obj.get("usage"))
        return Chunk(t, usage=usage, finish_reason=messages_finish(reason))
    if kind == "message_stop":
        return Chunk(t, final=True)
    if kind == "message_start":
        message = obj.get("message")
        if type(message) is not dict:
            raise MalformedEventError(f"message_start without a 'message': {excerpt(data)!r}")
        mid = message.get("id")
        usage = messages_usage(message.get("usage"), output=False)
        return Chunk(t, usage=usage, response_id=mid if type(mid) is str else None)
    if kind == "error" or type(kind) is not str:
        raise_error_object(obj)  # Anthropic's ``{"type": "error", "error": {...}}``, vLLM's
        raise MalformedEventError(f"not a Messages API event: {excerpt(data)!r}")
    return Chunk(t)  # ping, content_block_start, content_block_stop


def parse_messages_body(data: bytes, t: float) -> Chunk:
    """A non-streamed Messages answer as one chunk: its text blocks' text, thinking and
    tool blocks as output too, its usage and finish."""
    obj = load_object(data, "Messages body")
    raise_error_object(obj)
    mid = obj.get("id")
    chunk = Chunk(
        t,
        usage=messages_usage(obj.get("usage")),
        finish_reason=messages_finish(obj.get("stop_reason")),
        response_id=mid if type(mid) is str else None,
    )
    texts: list[str] = []
    for block in obj.get("content") or ():
        if type(block) is not dict:
            continue
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if type(text) is str and text:
                texts.append(text)
        elif kind in ("thinking", "redacted_thinking"):
            chunk.has_output = chunk.reasoning = True
        elif kind == "tool_use":
            chunk.has_output = True
    chunk.text = "".join(texts)
    chunk.has_output = chunk.has_output or bool(texts)
    return chunk
