"""OpenAI's Responses API (``POST /v1/responses``), streamed or not, as vLLM 0.32 serves it.

The request carries the conversation as ``input`` (a list of ``{"role", "content"}``
messages, or one prompt string), ``max_output_tokens``, ``temperature``, ``stream`` and
vLLM's ``ignore_eos`` (its ``ResponsesRequest`` has no ``min_tokens``: see
:mod:`.api_fields`), then ``extra_body``.

The stream is typed events (``event: NAME`` then ``data: {..., "type": NAME}``) and no
``[DONE]``: it ends with ``response.completed`` (vLLM sends it also when the answer was cut
at ``max_output_tokens``, with ``"status": "incomplete"``), ``response.incomplete`` or
``response.failed``. What becomes a :class:`~.base.Chunk`:

* ``response.output_text.delta``: a decode step with its text;
* ``response.reasoning_text.delta``: a step of reasoning (``reasoning``, ``has_output``);
* ``response.function_call_arguments.delta`` and ``response.custom_tool_call_input.delta``:
  a step with output (a tool call's arguments);
* ``response.completed`` / ``response.incomplete``: the response's id, its usage
  (``input_tokens``, ``output_tokens``, and the details' ``reasoning_tokens`` and
  ``cached_tokens``) and its finish (``"stop"``, or ``"length"`` when
  ``incomplete_details.reason`` is ``max_output_tokens``), marked ``final``;
* ``response.failed`` and ``error`` events: a :class:`ServerErrorEvent`;
* every other event (``response.created``, ``response.in_progress``,
  ``response.output_item.added``, ``response.content_part.added``/``done``,
  ``response.output_text.done``, ...): no step.

vLLM sends no event for a step whose text is empty (a token whose text it holds back, the
EOS token), where its chat stream sends an empty delta: on this route the decode steps a
client sees can be fewer than the tokens ``usage`` counts.
"""

from __future__ import annotations

from typing import Any

import orjson

from sagellm_users._backends.answer import ends_at
from sagellm_users._backends.api_fields import check_fields
from sagellm_users._backends.base import Chunk, GenerationRequest, Usage
from sagellm_users._backends.json_event import load_object, raise_error_object
from sagellm_users._errors import MalformedEventError, ServerErrorEvent, excerpt

__all__ = [
    "build_responses_payload",
    "parse_responses_body",
    "parse_responses_event",
    "responses_finish",
    "responses_usage",
]

_TEXT_DELTA = "response.output_text.delta"
_REASONING_DELTA = "response.reasoning_text.delta"
_TOOL_DELTAS = frozenset(
    {"response.function_call_arguments.delta", "response.custom_tool_call_input.delta"}
)
_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_OPENING = frozenset({"response.created", "response.in_progress"})
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
_loads = orjson.loads


def build_responses_payload(request: GenerationRequest) -> dict[str, Any]:
    """The ``/v1/responses`` body for ``request``; ``extra_body`` is applied last and wins.

    A request with messages sends them as ``input`` (a system message stays one, as vLLM
    renders it through the chat template); a prompt alone is sent as the input string.
    """
    check_fields(request)
    payload: dict[str, Any] = {"model": request.model}
    if request.messages is not None:
        payload["input"] = request.messages
    else:
        payload["input"] = request.prompt or ""
    if request.max_tokens is not None:
        payload["max_output_tokens"] = request.max_tokens
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.ignore_eos:
        payload["ignore_eos"] = True
    payload["stream"] = request.stream
    payload.update(request.extra_body)
    return payload


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def responses_usage(raw: Any) -> Usage | None:
    """A Responses ``usage`` object as :class:`Usage` (None when there is none)."""
    if type(raw) is not dict:
        return None
    out_details, in_details = raw.get("output_tokens_details"), raw.get("input_tokens_details")
    reasoning = out_details.get("reasoning_tokens") if type(out_details) is dict else None
    cached = in_details.get("cached_tokens") if type(in_details) is dict else None
    return Usage(
        _int(raw.get("input_tokens")),
        _int(raw.get("output_tokens")),
        reasoning_tokens=_int(reasoning),
        cached_tokens=_int(cached),
    )


def responses_finish(response: dict[str, Any]) -> str | None:
    """The finish reason a response's ``status`` says, in chat's words: ``"stop"`` for a
    completed one, ``"length"`` for one cut at ``max_output_tokens``."""
    status = response.get("status")
    if status == "completed":
        return "stop"
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if type(details) is dict else None
        reason = reason if type(reason) is str else "incomplete"
        return _INCOMPLETE_REASONS.get(reason, reason)
    return status if type(status) is str else None


def _failed(response: Any) -> ServerErrorEvent:
    """The error of a ``response.failed`` event (or a failed response body)."""
    error = response.get("error") if type(response) is dict else None
    if type(error) is dict:
        code = error.get("code")
        return ServerErrorEvent(str(error.get("message", error)), str(code) if code else None)
    return ServerErrorEvent("the response failed (status 'failed') and gave no error")


def _end(obj: dict[str, Any], kind: str, data: bytes, t: float) -> Chunk:
    """A terminal event: the whole response, with its usage and how it finished."""
    response = obj.get("response")
    if type(response) is not dict:
        raise MalformedEventError(f"{kind} without a 'response' object: {excerpt(data)!r}")
    if kind == "response.failed" or response.get("status") == "failed":
        raise _failed(response)
    rid = response.get("id")
    return Chunk(
        t,
        usage=responses_usage(response.get("usage")),
        finish_reason=responses_finish(response),
        response_id=rid if type(rid) is str else None,
        final=True,
    )


@ends_at("response.completed")
def parse_responses_event(data: bytes, t: float) -> Chunk:
    """One Responses API stream event as a :class:`Chunk` stamped ``t`` (see the module's
    note for what each event becomes).

    As fast and as strict as chat's :func:`~.openai.parse_event`: a text delta costs this
    call and the JSON parser's; bytes that are not a JSON object raise
    MalformedEventError, an ``error`` or ``response.failed`` event ServerErrorEvent.
    """
    try:
        obj = _loads(data)
    except orjson.JSONDecodeError:
        obj = load_object(data, "Responses stream event")  # raises, naming what is wrong
    if type(obj) is not dict:
        obj = load_object(data, "Responses stream event")
    kind = obj.get("type")
    if kind == _TEXT_DELTA:
        delta = obj.get("delta")
        if type(delta) is not str:
            raise MalformedEventError(f"{kind} whose 'delta' is not a string: {excerpt(data)!r}")
        return Chunk(t, delta, bool(delta), True)
    if kind == _REASONING_DELTA:
        return Chunk(t, has_output=True, step=True, reasoning=True)
    if kind in _ENDS:
        return _end(obj, kind, data, t)
    if kind == "error":
        code = obj.get("code")
        raise ServerErrorEvent(str(obj.get("message", obj)), str(code) if code else None)
    if kind in _TOOL_DELTAS:
        return Chunk(t, has_output=True, step=True)
    if kind in _OPENING:
        response = obj.get("response")
        rid = response.get("id") if type(response) is dict else None
        return Chunk(t, response_id=rid if type(rid) is str else None)
    if type(kind) is not str:
        raise_error_object(obj)  # vLLM's own error object, ``{"error": {...}}``
        raise MalformedEventError(f"not a Responses API event (no 'type'): {excerpt(data)!r}")
    return Chunk(t)  # item and part bookkeeping, done events: no decode step


def parse_responses_body(data: bytes, t: float) -> Chunk:
    """A non-streamed Responses answer (the response object) as one chunk: the text of its
    ``message`` items, reasoning items as output too, its usage and finish."""
    obj = load_object(data, "Responses body")
    raise_error_object(obj)
    if obj.get("status") == "failed":
        raise _failed(obj)
    rid = obj.get("id")
    chunk = Chunk(
        t,
        usage=responses_usage(obj.get("usage")),
        finish_reason=responses_finish(obj),
        response_id=rid if type(rid) is str else None,
    )
    texts: list[str] = []
    for item in obj.get("output") or ():
        if type(item) is not dict:
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if type(part) is dict and part.get("type") == "output_text":
                    text = part.get("text")
                    if type(text) is str and text:
                        texts.append(text)
        elif kind == "reasoning":
            chunk.has_output = chunk.reasoning = True
        elif kind in ("function_call", "custom_tool_call"):
            chunk.has_output = True
    chunk.text = "".join(texts)
    chunk.has_output = chunk.has_output or bool(texts)
    return chunk
