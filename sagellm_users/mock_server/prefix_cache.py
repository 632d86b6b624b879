"""A simulated prefix cache: which of a prompt's leading tokens the server already holds.

vLLM caches the KV of full blocks of prompt tokens, each keyed by its tokens and every
token before it, and evicts the least recently used; a prompt whose first blocks are cached
prefills only the rest, and ``usage.prompt_tokens_details.cached_tokens`` says how many
tokens were read from the cache. This does the same over the mock's token pieces, so the
shorter TTFT and the counts a client reports from usage can be checked against a truth.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson

from .simulation import CHAT_TEMPLATE_TOKENS_PER_MESSAGE

__all__ = ["BLOCK_TOKENS", "PrefixCache", "prompt_pieces"]

BLOCK_TOKENS = 16
"""Tokens per cached block: vLLM's default block size."""


class PrefixCache:
    """At most ``capacity`` blocks, least recently used out first."""

    __slots__ = ("_blocks", "capacity", "hits", "queries")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self.queries = 0
        """Prompt tokens looked up (vLLM's ``prefix_cache_queries`` counter)."""
        self.hits = 0
        """Of them, those found (vLLM's ``prefix_cache_hits``)."""

    def lookup_and_insert(self, tokens: Sequence[str]) -> tuple[int, int]:
        """How many leading tokens of ``tokens`` were cached, and how many this prompt
        newly cached (vLLM's ``cached_tokens`` and ``created_cache_tokens``). As vLLM, the
        last token is always computed (its output starts the answer), so a prompt's last
        block is cached only when a token follows it."""
        blocks = self._blocks
        cached = created = 0
        key = 0
        for start in range(0, len(tokens) - BLOCK_TOKENS, BLOCK_TOKENS):
            key = hash((key, *tokens[start : start + BLOCK_TOKENS]))
            if not created and key in blocks:
                cached += BLOCK_TOKENS
                blocks.move_to_end(key)
            else:
                created += BLOCK_TOKENS
                blocks[key] = None
                if len(blocks) > self.capacity:
                    blocks.popitem(last=False)
        self.queries += len(tokens)
        self.hits += cached
        return cached, created


def prompt_pieces(body: bytes) -> list[str]:
    """A request's prompt as the mock counts its tokens (see :mod:`.simulation`): each
    message's template tokens and the pieces of its text, or a completion prompt's pieces
    (a token-id prompt: its ids). Anything unreadable is an empty prompt: validation has
    already answered such a request."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(doc, dict):
        return []
    pieces: list[str] = []
    system = doc.get("system")
    if isinstance(system, str):
        pieces += _message("system", system)
    for key in ("messages", "input"):
        value = doc.get(key)
        if isinstance(value, list):
            for message in value:
                if isinstance(message, dict):
                    pieces += _message(str(message.get("role")), message.get("content"))
        elif isinstance(value, str):
            pieces += _message("user", value)
    prompt = doc.get("prompt")
    if isinstance(prompt, str):
        pieces += prompt.split()
    elif isinstance(prompt, list) and all(isinstance(p, int) for p in prompt):
        pieces += map(str, prompt)
    return pieces


def _message(role: str, content: Any) -> list[str]:
    pieces = [f"<{role}:{i}>" for i in range(CHAT_TEMPLATE_TOKENS_PER_MESSAGE)]
    if isinstance(content, str):
        pieces += content.split()
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces += part["text"].split()
    return pieces
