"""The fake ``AsyncLLM``: one word per token, first after ``ttft_ms``, then every ``itl_ms``.

Timing is absolute (each token is due at start + ttft + k * itl), so a late wake-up never
accumulates; without ``ignore_eos`` a request stops at ``min_tokens`` (or 1) tokens, as a
model that emits EOS early would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from vllm import AsyncEngineArgs
from vllm.sampling_params import RequestOutputKind, SamplingParams

__all__ = ["AsyncLLM"]


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = False


class Tokenizer:
    """Words are tokens."""

    def __init__(self, chat_template: bool) -> None:
        self.chat_template = "{{ messages }}" if chat_template else None

    def apply_chat_template(
        self, messages: list[dict[str, Any]], tokenize: bool, add_generation_prompt: bool
    ) -> str:
        assert not tokenize
        turns = [f"<{m['role']}> {m['content']}" for m in messages]
        if add_generation_prompt:
            turns.append("<assistant>")
        return " ".join(turns)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [len(word) for word in text.split()]
        return [1, *ids] if add_special_tokens else ids


class AsyncLLM:
    def __init__(self, args: AsyncEngineArgs) -> None:
        self.args = args
        self.tokenizer = Tokenizer(args.chat_template)
        self.closed = False

    @classmethod
    def from_engine_args(cls, engine_args: AsyncEngineArgs) -> AsyncLLM:
        if engine_args.fail_start:
            raise RuntimeError(engine_args.fail_start)
        return cls(engine_args)

    def get_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    async def generate(
        self, prompt: dict[str, Any], sampling_params: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        assert sampling_params.output_kind is RequestOutputKind.DELTA
        if "prompt_token_ids" in prompt:
            prompt_ids = list(prompt["prompt_token_ids"])
        else:
            prompt_ids = self.tokenizer.encode(prompt["prompt"])
        n = sampling_params.max_tokens
        if not sampling_params.ignore_eos:
            n = min(n, max(1, sampling_params.min_tokens))
        start = perf_counter()
        for k in range(n):
            due = start + (self.args.ttft_ms + k * self.args.itl_ms) / 1e3
            await asyncio.sleep(max(0.0, due - perf_counter()))
            last = k == n - 1
            reason = ("length" if n == sampling_params.max_tokens else "stop") if last else None
            yield RequestOutput(
                request_id,
                prompt_ids,
                [CompletionOutput(f" w{k}", [k], reason)],
                finished=last,
            )

    def shutdown(self) -> None:
        self.closed = True
