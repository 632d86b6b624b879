"""A fake ``sagellm_core``: ``LLMEngine(LLMEngineConfig(...))`` with an async ``stream()``.

Like the real engine it streams a start event, one delta per token and an end event, and
its batched prefill fails while the tokenizer has no pad token. Tokens are words.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from time import perf_counter

from sagellm_protocol import Request, StreamEventDelta, StreamEventEnd, StreamEventStart

__version__ = "0.0.0+fake"

__all__ = ["LLMEngine", "LLMEngineConfig", "__version__"]


@dataclass
class LLMEngineConfig:
    model_path: str
    backend_type: str = "auto"
    dtype: str = "auto"
    max_model_len: int = 4096
    ttft_ms: float = 20.0
    itl_ms: float = 5.0
    fail_after: int = 0
    """When > 0, a request ends with finish_reason 'error' after this many tokens."""


class Tokenizer:
    pad_token: str | None = None
    eos_token = "</s>"


class LLMEngine:
    def __init__(self, config: LLMEngineConfig) -> None:
        self.config = config
        self._tokenizer = Tokenizer()
        self.is_running = False

    async def start(self) -> None:
        self.is_running = True

    async def stop(self) -> None:
        self.is_running = False

    async def stream(self, request: Request) -> AsyncIterator[object]:
        if self._tokenizer.pad_token is None:
            raise ValueError("Asking to pad but the tokenizer does not have a padding token")
        if request.prompt:
            prompt = request.prompt
        else:
            turns = [f"<{m.role}> {m.content}" for m in request.messages or ()]
            prompt = " ".join([*turns, "<assistant>"])
        prompt_tokens = len(prompt.split())
        rid = request.request_id
        yield StreamEventStart(rid, prompt_tokens)
        start = perf_counter()
        tokens: list[int] = []
        for k in range(request.max_tokens):
            due = start + (self.config.ttft_ms + k * self.config.itl_ms) / 1e3
            await asyncio.sleep(max(0.0, due - perf_counter()))
            if self.config.fail_after and k == self.config.fail_after:
                yield StreamEventEnd(rid, prompt_tokens, "", tokens, "error", "boom")
                return
            tokens.append(k)
            yield StreamEventDelta(rid, f" w{k}", [k])
        text = "".join(f" w{k}" for k in tokens)
        yield StreamEventEnd(rid, prompt_tokens, text, tokens, "length")
