"""From a client's chunks to a request's record: the one place a stream becomes metrics.

The gevent users fold a live stream; the asyncio client folds the chunks it gathered. Both
give the same record for the same chunks, so every metric has one definition whatever
drove the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sagellm_users._metrics.record import RequestRecord

if TYPE_CHECKING:
    from sagellm_users._backends.base import Chunk, Usage

__all__ = ["fold_chunks"]


def fold_chunks(
    chunks: Iterable[Chunk], record: RequestRecord, text: list[str] | None = None
) -> None:
    """Fold a stream's chunks into its record as they come (the hot loop of every user):
    stamp decode steps, keep the server's token counts (and the reply's
    text into ``text``, when a conversation needs it for its next turn).

    Every chunk that is a decode step is stamped, empty ones included (held-back text, the
    EOS token), and the first one is TTFT: see :attr:`sagellm_users._backends.base.Chunk.step`
    (a non-streamed answer is one chunk with output and no step). When the server reports usage on
    every chunk (vLLM's ``stream_options.continuous_usage_stats``), each step's token
    count is the growth of ``completion_tokens`` since the previous one; that feeds the
    per-token ITL. Steps whose output is the model's reasoning are counted, and the first
    step of the answer after them is marked (TTFO, reasoning and answer ITL apart).
    """
    t_out = record.t_out
    per_chunk: list[int] | None = []
    counted = 0
    answer_pending = record.first_answer_step is None
    for chunk in chunks:
        if record.response_id is None:
            record.response_id = chunk.response_id
        usage = chunk.usage
        completion = usage.completion_tokens if usage is not None else None
        if chunk.step or chunk.has_output:
            if chunk.reasoning:
                record.reasoning_steps += 1
            elif answer_pending and (chunk.has_output or chunk.finish_reason is None):
                # the answer's first token, its text held back or not; a bare EOS step
                # after the reasoning is no answer
                record.first_answer_step = len(t_out)
                answer_pending = False
            t_out.append(chunk.t)
            if text is not None:
                text.append(chunk.text)
            if per_chunk is not None:
                if completion is None:
                    per_chunk = None
                else:
                    per_chunk.append(completion - counted)
                    counted = completion
        if usage is not None:
            _take_usage(record, usage)
        if chunk.finish_reason is not None:
            record.finish_reason = chunk.finish_reason
    if per_chunk and len(per_chunk) == len(t_out):
        record.tokens_per_chunk = per_chunk


def _take_usage(record: RequestRecord, usage: Usage) -> None:
    """The server's counts, as far as this chunk's usage gives them (a later one wins)."""
    if usage.completion_tokens is not None:
        record.usage_completion_tokens = usage.completion_tokens
    if usage.prompt_tokens is not None:
        record.usage_prompt_tokens = usage.prompt_tokens
    if usage.reasoning_tokens is not None:
        record.usage_reasoning_tokens = usage.reasoning_tokens
    if usage.cached_tokens is not None:
        record.usage_cached_tokens = usage.cached_tokens
