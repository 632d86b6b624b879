"""Speculative decoding: each engine step emits its own token and the draft tokens the
target model accepted, so a stream's chunks carry one token or several.

A draft model proposes ``k`` tokens per step; the target accepts each in order with
probability ``acceptance`` until the first it rejects, and adds one token of its own: a
step emits 1 to ``k + 1`` tokens, at the cost of one target step. vLLM streams a step's
tokens as one chunk, counts them in usage, and exposes the drafts in
``vllm:spec_decode_num_drafts`` / ``_num_draft_tokens`` / ``_num_accepted_tokens``; so does
the mock, which lets a client's tokens-per-step distribution be checked against the truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from time import perf_counter

from .simulation import Plan
from .wire import TokenEncoder

__all__ = ["SpecDecodeCounters", "StepEncoder", "speculate"]


@dataclass
class SpecDecodeCounters:
    """vLLM's speculative-decoding counters, counted as each request is planned."""

    drafts: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0


def speculate(
    plan: Plan, k: int, acceptance: float, rng: random.Random, counters: SpecDecodeCounters
) -> Plan:
    """``plan``'s tokens grouped into steps (each step's words joined into one text), with
    the tokens done after each step in ``tokens_after``; a step's gap is one token's."""
    words, n = plan.words, plan.n_tokens
    steps: list[bytes] = []
    after: list[int] = []
    i = 0
    while i < n:
        size = 1
        while size <= k and rng.random() < acceptance:
            size += 1
        size = min(size, n - i)
        group = words[i : i + size]
        steps.append(group[0] if size == 1 else b'"' + b"".join(w[1:-1] for w in group) + b'"')
        i += size
        after.append(i)
        counters.drafts += 1
        counters.draft_tokens += k
        counters.accepted_tokens += size - 1
    gaps = None if plan.gaps_s is None else plan.gaps_s[: len(steps) - 1]
    return replace(plan, words=steps, n_tokens=len(steps), gaps_s=gaps, tokens_after=after)


class StepEncoder:
    """An encoder driven step by step whose counts are tokens: the generation counts steps
    (``n_done``), and the wire (usage, continuous usage) counts the tokens done by then."""

    __slots__ = ("_after", "_inner")

    def __init__(self, inner: TokenEncoder, tokens_after: list[int]) -> None:
        self._inner = inner
        self._after = tokens_after

    @property
    def end_of_stream(self) -> bytes:
        return self._inner.end_of_stream

    def token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        return self._inner.token(word, self._after[n_done - 1], t_send)

    def next_token(self, word: bytes, n_done: int) -> bytes:
        return self._inner.token(word, self._after[n_done - 1], perf_counter())

    def final_token(self, word: bytes, n_done: int, finish_reason: str, t_send: float) -> bytes:
        return self._inner.final_token(word, self._after[n_done - 1], finish_reason, t_send)

    def preamble(self, t_send: float) -> bytes:
        return self._inner.preamble(t_send)

    def usage(self, completion_tokens: int, t_send: float) -> bytes:
        done = self._after[completion_tokens - 1] if completion_tokens else 0
        return self._inner.usage(done, t_send)

    def error(self, message: str, err_type: str, code: int, t_send: float) -> bytes:
        return self._inner.error(message, err_type, code, t_send)
