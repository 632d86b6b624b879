"""A fake ``sagellm_protocol``: the request and stream-event types ``LLMEngine.stream`` uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ChatMessage",
    "Request",
    "StreamEventDelta",
    "StreamEventEnd",
    "StreamEventStart",
]


@dataclass
class ChatMessage:
    role: str
    content: str


@dataclass
class Request:
    request_id: str
    trace_id: str
    max_tokens: int
    model: str = ""
    prompt: str = ""
    messages: list[ChatMessage] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None


@dataclass
class StreamEventStart:
    request_id: str
    prompt_tokens: int
    event: Literal["start"] = "start"


@dataclass
class StreamEventDelta:
    request_id: str
    content: str
    content_tokens: list[int]
    event: Literal["delta"] = "delta"


@dataclass
class StreamEventEnd:
    request_id: str
    prompt_tokens: int
    content: str
    output_tokens: list[int] = field(default_factory=list)
    finish_reason: str = "length"
    error: str | None = None
    event: Literal["end"] = "end"
