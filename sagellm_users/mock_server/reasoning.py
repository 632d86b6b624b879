"""A reasoning model's stream: its first tokens are reasoning, the rest its answer.

vLLM started with a ``--reasoning-parser`` streams the tokens before the end of thinking as
``delta.reasoning`` (servers before it: ``reasoning_content``) and the answer as
``delta.content``, and counts the reasoning in ``usage.completion_tokens_details``. This
wraps any encoder that can write a reasoning token, so the generation's pacing, faults and
EOS stay what they are; the token loop pays for it only when reasoning is on.
"""

from __future__ import annotations

from time import perf_counter
from typing import Protocol

from .wire import TokenEncoder

__all__ = ["ReasoningEncoder", "ReasoningTokenEncoder"]

_VLLM_FIELD = b'"delta":{"reasoning":'


class ReasoningTokenEncoder(TokenEncoder, Protocol):
    """An encoder that can also write a reasoning token."""

    def reasoning_token(self, word: bytes, n_done: int, t_send: float) -> bytes: ...


class ReasoningEncoder:
    """The first ``reasoning_tokens`` tokens as reasoning (the stream's last token, the EOS
    step when it ends on EOS, always as the answer's), the rest through ``inner``."""

    __slots__ = ("_field", "_inner", "_reasoning")

    def __init__(
        self, inner: ReasoningTokenEncoder, reasoning_tokens: int, field: str = "reasoning"
    ) -> None:
        self._inner = inner
        self._reasoning = reasoning_tokens
        self._field = None if field == "reasoning" else b'"delta":{"%b":' % field.encode()

    @property
    def end_of_stream(self) -> bytes:
        return self._inner.end_of_stream

    def _reasoned(self, word: bytes, n_done: int, t_send: float) -> bytes:
        data = self._inner.reasoning_token(word, n_done, t_send)
        if self._field is not None:
            data = data.replace(_VLLM_FIELD, self._field, 1)
        return data

    def token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        if n_done <= self._reasoning:
            return self._reasoned(word, n_done, t_send)
        return self._inner.token(word, n_done, t_send)

    def next_token(self, word: bytes, n_done: int) -> bytes:
        if n_done <= self._reasoning:
            return self._reasoned(word, n_done, perf_counter())
        return self._inner.next_token(word, n_done)

    def final_token(self, word: bytes, n_done: int, finish_reason: str, t_send: float) -> bytes:
        return self._inner.final_token(word, n_done, finish_reason, t_send)

    def preamble(self, t_send: float) -> bytes:
        return self._inner.preamble(t_send)

    def usage(self, completion_tokens: int, t_send: float) -> bytes:
        return self._inner.usage(completion_tokens, t_send)

    def error(self, message: str, err_type: str, code: int, t_send: float) -> bytes:
        return self._inner.error(message, err_type, code, t_send)
