"""LMDeploy's ``api_server``: its OpenAI routes and its native ``/generate``.

The OpenAI routes are parsed as any OpenAI server's, with LMDeploy's name for a minimum
output (``min_new_tokens``). Servers before 0.7 stream ``"usage": null``: the user then
counts output tokens by decode steps and flags them estimated.

``/generate`` (``api="generate"``) sends ``{prompt, max_tokens, stream, ignore_eos, ...}``
and streams ``{"text", "output_ids", "meta_info": {"prompt_tokens", "completion_tokens",
"finish_reason"}}`` events, ``completion_tokens`` counting every token so far, so each
event's token count is exact. A generation the engine fails ends with
``finish_reason: {"type": "error"}``, which becomes a :class:`ServerErrorEvent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sagellm_users._backends.answer import EventParser
from sagellm_users._backends.base import Api, Chunk, GenerationRequest, Usage
from sagellm_users._backends.openai import OpenAIClient, load_object
from sagellm_users._errors import MalformedEventError, ServerErrorEvent, excerpt

__all__ = ["LMDeployClient", "build_generate_payload", "parse_generate_event"]

_GENERATE_PATH = "/generate"


def build_generate_payload(request: GenerationRequest) -> dict[str, Any]:
    """The ``/generate`` body: a prompt (chat messages are joined as plain text; the
    native route applies no chat template), then ``extra_body`` last."""
    payload: dict[str, Any] = {"prompt": request.prompt_text(), "stream": request.stream}
    if request.max_tokens is not None:
        payload["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.ignore_eos:
        payload["ignore_eos"] = True
    payload.update(request.extra_body)
    return payload


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_generate_event(data: bytes, t: float) -> Chunk:
    """One ``/generate`` event (or a whole non-streamed answer) as a Chunk stamped ``t``."""
    obj = load_object(data, "/generate event")
    if obj.get("object") == "error" or ("message" in obj and "text" not in obj):
        code = _int(obj.get("code"))
        raise ServerErrorEvent(str(obj.get("message", obj)), obj.get("type"), code)
    meta = obj.get("meta_info")
    if not isinstance(meta, dict) or "text" not in obj:
        raise MalformedEventError(
            f"not an LMDeploy /generate event (no 'text' and 'meta_info'): {excerpt(data)!r}"
        )
    finish = meta.get("finish_reason")
    reason = finish.get("type") if isinstance(finish, dict) else finish
    if reason == "error":
        raise ServerErrorEvent("the engine ended the generation with finish_reason 'error'")
    text = obj.get("text") or ""
    ids = obj.get("output_ids")
    chunk = Chunk(t, text=text if isinstance(text, str) else "")
    # A step when it carries a token: LMDeploy strips the EOS token, so the event of the
    # step that produced it and the final event carry neither text nor ids.
    chunk.has_output = chunk.step = bool(chunk.text) or bool(ids)
    chunk.usage = Usage(_int(meta.get("prompt_tokens")), _int(meta.get("completion_tokens")))
    chunk.finish_reason = reason if isinstance(reason, str) else None
    return chunk


class LMDeployClient(OpenAIClient):
    """A client for LMDeploy's ``api_server`` (``lmdeploy serve api_server``)."""

    backend = "lmdeploy"
    MIN_TOKENS_FIELD = "min_new_tokens"
    PATHS: ClassVar[Mapping[str, str]] = {
        "chat": OpenAIClient.PATHS["chat"],
        "completions": OpenAIClient.PATHS["completions"],
        "generate": _GENERATE_PATH,
    }
    """LMDeploy's api_server has OpenAI's chat and completions routes and its own
    ``/generate``; it serves neither the Responses nor the Messages API."""

    @classmethod
    def build_payload(cls, request: GenerationRequest) -> dict[str, Any]:
        if request.api == "generate":
            return build_generate_payload(request)
        return super().build_payload(request)

    @classmethod
    def parsers(cls, api: Api) -> tuple[EventParser, EventParser]:
        if api == "generate":
            return parse_generate_event, parse_generate_event
        return super().parsers(api)
