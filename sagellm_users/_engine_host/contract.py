"""What an engine adapter receives and yields, and what it must offer the host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Adapter", "GenerateRequest", "Output", "StartError"]


class StartError(Exception):
    """The engine cannot start; the message says why and what to change."""


@dataclass(slots=True)
class GenerateRequest:
    """One ``generate`` message: the backend-neutral request, as the parent sent it."""

    id: int
    api: str = "chat"
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    min_tokens: int | None = None
    temperature: float | None = None
    ignore_eos: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> GenerateRequest:
        return cls(
            id=int(message["id"]),
            api=str(message.get("api") or "chat"),
            prompt=message.get("prompt"),
            messages=message.get("messages"),
            max_tokens=message.get("max_tokens"),
            min_tokens=message.get("min_tokens"),
            temperature=message.get("temperature"),
            ignore_eos=bool(message.get("ignore_eos")),
            extra=dict(message.get("extra") or {}),
        )

    def sampling(self, max_field: str, min_field: str) -> dict[str, Any]:
        """The sampling settings as keyword arguments for an engine's own config class,
        under its names for the length bounds; unset ones are left to the engine's
        defaults, and ``extra`` goes last so it can set or override any field."""
        kwargs: dict[str, Any] = {"ignore_eos": self.ignore_eos}
        if self.max_tokens is not None:
            kwargs[max_field] = self.max_tokens
        if self.min_tokens is not None:
            kwargs[min_field] = self.min_tokens
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        kwargs.update(self.extra)
        return kwargs

    def chat_messages(self) -> list[dict[str, Any]]:
        """The conversation for a chat API; a bare prompt becomes one user message."""
        if self.messages is not None:
            return self.messages
        return [{"role": "user", "content": self.prompt or ""}]

    def prompt_text(self) -> str:
        """The raw prompt for a completions API; messages are joined as plain text."""
        if self.prompt is not None:
            return self.prompt
        parts = [m.get("content") for m in self.messages or ()]
        return "\n".join(p for p in parts if isinstance(p, str))


@dataclass(slots=True)
class Output:
    """One step of a generation as the engine yielded it, stamped ``t`` on arrival.

    ``new_tokens`` is how many tokens this step added; ``completion_tokens`` the running
    total; ``prompt_tokens`` the prompt's length in tokens, when the engine tells.
    """

    t: float
    text: str
    new_tokens: int
    prompt_tokens: int | None
    completion_tokens: int
    finish_reason: str | None = None

    def to_message(self, request_id: int) -> dict[str, Any]:
        return {
            "ev": "out",
            "id": request_id,
            "t": self.t,
            "text": self.text,
            "n": self.new_tokens,
            "pt": self.prompt_tokens,
            "ct": self.completion_tokens,
            "fin": self.finish_reason,
        }


class Adapter(Protocol):
    """One engine behind the host's common loop."""

    version: str
    """The engine library's version, for the report."""
    model_name: str
    """The name requests and records carry."""

    async def start(self) -> None:
        """Load the model; raise :class:`StartError` (or anything) when it cannot."""

    def stream(self, request: GenerateRequest) -> AsyncIterator[Output]:
        """The request's outputs as the engine yields them; cancelling aborts it."""
        ...

    async def stop(self) -> None:
        """Release the engine (its processes, its memory)."""
