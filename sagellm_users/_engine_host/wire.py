"""The host's wire: one JSON object per line, over two pipes the parent passes down.

Parent to child:
    ``{"op": "generate", "id": 7, "api": "chat", "prompt": null, "messages": [...],
    "max_tokens": 64, "min_tokens": null, "temperature": null, "ignore_eos": true,
    "extra": {}}``, ``{"op": "abort", "id": 7}``, ``{"op": "shutdown"}``.

Child to parent (``t`` is the child's ``perf_counter()``):
    ``{"ev": "ready", "t": ..., "engine": "vllm", "version": "0.32.0", "model": "..."}``
    once the engine has loaded, or ``{"ev": "fatal", "message": "..."}`` when it cannot;
    per request, any number of ``{"ev": "out", "id": 7, "t": ..., "text": "...", "n": 1,
    "pt": 12, "ct": 3, "fin": null}`` (``n`` new tokens, ``pt`` prompt tokens, ``ct``
    output tokens so far), then ``{"ev": "end", "id": 7, "t": ...}`` or
    ``{"ev": "error", "id": 7, "t": ..., "class": "ValueError", "message": "..."}``.

Lines, not length prefixes: JSON never holds a raw newline, and a line-oriented pipe can
be read with ``cat`` when something goes wrong.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["LineSplitter", "encode"]


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class LineSplitter:
    """Cuts a byte stream into complete lines; keeps a partial line for the next feed."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self.pending + data if self.pending else data
        lines = buffer.split(b"\n")
        self.pending = lines.pop()
        return [line for line in lines if line]
