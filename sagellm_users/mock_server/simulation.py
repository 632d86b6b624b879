"""The fake model: what it says, how long it takes, and when it fails. Pure logic, no I/O.

Everything random is drawn from seeded generators, so a given ``--seed`` and request order
always give the same texts, lengths, timings and faults. Faults come from their own
generator and take exactly one draw per generation request, so the fault sequence does not
depend on the requests' contents.

Prompt token counting (documented rule, no tokenizer): a completion prompt counts one token
per whitespace-separated piece (a token-id list counts its length); a chat prompt counts the
pieces of every message's text content plus 4 per message for the chat template.

Output follows a real vLLM stream (checked against vLLM 0.32): unless ``ignore_eos`` is
set, generation stops on an EOS token drawn from ``natural_output_tokens``; the EOS token
is the last decode step, sent as a chunk with empty text and ``finish_reason: "stop"``, and
usage counts it. A share of the tokens (``held_back_rate``) carry empty text, as
vLLM sends a token whose text it holds back (the first half of a multi-byte character):
the next token carries a multi-byte word, as if it completed the character.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .config import MockServerConfig
from .faults import FAULT_RATE_FIELDS, HTTP_FAULTS, RESPONSE_FAULTS, Fault, fault_for_field

__all__ = [
    "EMPTY_TOKEN",
    "TOKEN_JSON",
    "TOKEN_TEXT",
    "VOCABULARY",
    "Fault",
    "Plan",
    "Planner",
    "count_chat_prompt_tokens",
    "count_completion_prompt_tokens",
    "output_length",
]

#: Words the fake model emits, each as one token " word". A few are non-ASCII (2-, 3- and
#: 4-byte UTF-8) so clients' UTF-8 handling is exercised on every run.
VOCABULARY: tuple[str, ...] = (
    "the", "a", "model", "token", "stream", "server", "load", "test", "latency", "batch",
    "cache", "prefill", "decode", "request", "user", "answer", "is", "of", "and", "to",
    "in", "fast", "slow", "queue", "GPU", "memory", "kernel", "attention", "layer", "weight",
    "data", "result", "value", "time", "first", "next", "final", "output", "input", "text",
    "café", "naïve", "über", "façade", "数据", "模型", "速度", "ñandú", "Ωmega", "🙂",
)  # fmt: skip

#: Each vocabulary token (" word") pre-encoded as a JSON string literal, ready to splice.
TOKEN_JSON: tuple[bytes, ...] = tuple(orjson.dumps(" " + w) for w in VOCABULARY)

#: A token with no text: the EOS step, or a token whose text is held back.
EMPTY_TOKEN = b'""'

#: The text of each pre-encoded token, for bodies that are built as a whole.
TOKEN_TEXT: dict[bytes, str] = {
    **{orjson.dumps(" " + w): " " + w for w in VOCABULARY},
    EMPTY_TOKEN: "",
}

#: Words that are several bytes in UTF-8: the token after a held-back one carries one.
_MULTIBYTE_JSON = tuple(orjson.dumps(" " + w) for w in VOCABULARY if not w.isascii())

CHAT_TEMPLATE_TOKENS_PER_MESSAGE = 4


def _text_pieces(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"].split())
        return total
    return 0


def count_chat_prompt_tokens(messages: Sequence[Any]) -> int:
    """Pieces of each message's text content, plus 4 per message for the template."""
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        total += _text_pieces(content) + CHAT_TEMPLATE_TOKENS_PER_MESSAGE
    return total


def count_completion_prompt_tokens(prompt: str | Sequence[int]) -> int:
    """Whitespace-separated pieces of a text prompt, or the length of a token-id list."""
    if isinstance(prompt, str):
        return len(prompt.split())
    return len(prompt)


def output_length(
    max_tokens: int,
    *,
    ignore_eos: bool,
    min_tokens: int,
    natural: int | None,
) -> tuple[int, str]:
    """How many tokens a request generates (as usage counts them), and its finish reason.

    ``natural`` is the position of the EOS token the fake model would emit, counting EOS
    (a natural length of 5 is four visible tokens, then EOS). As in vLLM, ``min_tokens``
    keeps EOS out until that many tokens came, so EOS is at least token
    ``min_tokens + 1``. Without ``ignore_eos`` the stream stops on EOS with ``"stop"``
    when EOS fits in ``max_tokens``; otherwise (EOS ignored, no natural length, or the cap
    comes first) it runs to exactly ``max_tokens`` with ``"length"``.
    """
    if ignore_eos or natural is None:
        return max_tokens, "length"
    eos_at = max(natural, min_tokens + 1)
    if eos_at <= max_tokens:
        return eos_at, "stop"
    return max_tokens, "length"


def _hold_back(words: list[bytes], last: int, rate: float, rng: random.Random) -> None:
    """Empty the text of about ``rate`` of the tokens ``words[:last]``, the next token
    carrying a multi-byte word: geometric skips, so a plan costs a draw per held-back
    token, not per token. The first token may be held back too, as vLLM does when it is
    the start of a character: its empty chunk is still the first token."""
    if rate <= 0.0:
        return
    log_miss = math.log1p(-rate) if rate < 1.0 else -math.inf
    i = -1
    while True:
        i += 1 + (int(math.log(1.0 - rng.random()) / log_miss) if log_miss > -math.inf else 0)
        if i >= last:
            return
        words[i] = EMPTY_TOKEN
        words[i + 1] = rng.choice(_MULTIBYTE_JSON)
        i += 1  # the token that completes the character is not held back itself


@dataclass(slots=True)
class Plan:
    """One request's predetermined generation: tokens, finish reason and timing.

    ``gaps_s`` holds the ``n_tokens - 1`` base inter-token gaps when jitter is on, else is
    ``None`` and every gap is ``tbt_s``. ``error_at`` is the token index at which the
    injected ``fault`` happens (-1: none; see :mod:`.faults` for where each one falls).
    """

    request_hex: str
    n_tokens: int
    finish_reason: str
    words: list[bytes]
    ttft_s: float
    tbt_s: float
    gaps_s: list[float] | None
    error_at: int
    fault: Fault = Fault.NONE
    tokens_after: list[int] | None = None
    """Speculative decoding: each word is a step of several tokens, and this holds the
    tokens done after each step (see :mod:`.spec_decode`); None: a word is a token."""

    def tokens_done(self, steps: int) -> int:
        """Tokens generated once ``steps`` words are out."""
        after = self.tokens_after
        return steps if after is None or not steps else after[steps - 1]

    def base_gap(self, index: int) -> float:
        """Base gap in seconds between token ``index`` and token ``index + 1``."""
        gaps = self.gaps_s
        return self.tbt_s if gaps is None else gaps[index]


class Planner:
    """Draws faults and plans from the seeded generators of one server process."""

    def __init__(self, config: MockServerConfig, seed: int | None = None) -> None:
        self._config = config
        base = config.seed if seed is None else seed
        self._rng = random.Random(f"sagellm-mock:{base}:tokens")
        self._fault_rng = random.Random(f"sagellm-mock:{base}:faults")
        self._faults = [(name, fault_for_field(name)) for name in FAULT_RATE_FIELDS]
        self._fault_total = config.error_rate_total

    def draw_fault(self) -> Fault:
        """One draw per generation request, whatever the request says."""
        c = self._config
        r = self._fault_rng.random()
        if r >= self._fault_total:
            return Fault.NONE
        for name, fault in self._faults:
            rate = getattr(c, name)
            if r < rate:
                return fault
            r -= rate
        return Fault.NONE  # rounding at the top of the range

    def plan(
        self,
        *,
        max_tokens: int,
        ignore_eos: bool,
        min_tokens: int,
        prompt_tokens: int,
        fault: Fault = Fault.NONE,
    ) -> Plan:
        """Decide a request's tokens and timing up front (see :func:`output_length`)."""
        c = self._config
        rng = self._rng
        natural = None
        if c.natural_output_tokens is not None:
            natural = rng.randint(*c.natural_output_tokens)
        n, finish = output_length(
            max_tokens, ignore_eos=ignore_eos, min_tokens=min_tokens, natural=natural
        )
        eos = finish == "stop"
        words = rng.choices(TOKEN_JSON, k=n)
        if eos:
            words[-1] = EMPTY_TOKEN
        # Held back: tokens 0 .. n-2, and never the one before EOS (its text would have
        # no token to come with).
        _hold_back(words, n - 1 - eos, c.held_back_rate, rng)
        ttft_ms = c.ttft_ms
        if c.ttft_jitter_ms > 0:
            ttft_ms = max(0.0, ttft_ms + rng.uniform(-c.ttft_jitter_ms, c.ttft_jitter_ms))
        ttft_ms += c.ttft_per_input_token_ms * prompt_tokens
        gaps: list[float] | None = None
        if c.tbt_jitter_ms > 0 and n > 1:
            lo, hi = c.tbt_ms - c.tbt_jitter_ms, c.tbt_ms + c.tbt_jitter_ms
            gaps = [max(0.0, rng.uniform(lo, hi)) / 1000.0 for _ in range(n - 1)]
        request_hex = f"{rng.getrandbits(128):032x}"
        if fault is not Fault.NONE:  # the response's id names what was injected into it
            request_hex = f"fault-{fault.value}-{request_hex}"
        return Plan(
            request_hex=request_hex,
            n_tokens=n,
            finish_reason=finish,
            words=words,
            ttft_s=ttft_ms / 1000.0,
            tbt_s=c.tbt_ms / 1000.0,
            gaps_s=gaps,
            error_at=_fault_index(fault, n),
            fault=fault,
        )


def _fault_index(fault: Fault, n_tokens: int) -> int:
    """The token at which ``fault`` strikes: the start, the end, or about halfway."""
    if fault is Fault.NONE or fault in HTTP_FAULTS or fault in RESPONSE_FAULTS:
        return -1
    if fault is Fault.TRICKLE:
        return 0
    if fault in (Fault.NO_DONE, Fault.NO_USAGE, Fault.DONE_NO_END, Fault.DONE_PINGS):
        return n_tokens - 1
    return n_tokens // 2
