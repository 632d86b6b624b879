"""Exact prompt lengths by the server's tokenizer, without asking it during the load.

Why: counting each prompt with the server's ``/tokenize`` while the users send adds
requests to the very server being measured (a search on the word count took up to six per
prompt). On a real vLLM, 8 users sending 64-token prompts for 32 output tokens reached 0.82
of ``vllm bench serve``'s output rate that way, and 0.97 with a local tokenizer: the load
tester changed the load it measured. So the server's tokenizer is asked a bounded number
of questions once per process, before the load, and every prompt is then built locally.

What is measured: which words of :data:`~.synthetic.WORDS` cost exactly one token after a
space (``" the"``), and a few that also cost one at the start of a text (``"the"``). A
prompt of ``n`` tokens is then one such first word and ``n - 1`` such words joined by single
spaces: ``n`` tokens by construction. That holds for tokenizers that split a text at its
spaces before merging (byte-level BPEs with a pre-tokenizer regex: GPT-2, Llama 3, Qwen;
SentencePiece, which does not merge across its ``▁``): each word is encoded on its own and a
text costs the sum of its words. A pool of prompts counted at the start was the other way;
it was not taken because it would have to hold as many prompts as the run sends (unknown,
and unbounded for a long run), or prompts would repeat and hit the server's prefix cache
(see :mod:`.synthetic`).

The calls, :data:`MAX_CALLS` at most whatever the run's length:

1. one word (the anchor), then the word list in chunks after it, so a chunk costs its count
   less the anchor's. When the server gives each token's text (vLLM's
   ``return_token_strs``) the tokens are aligned to their words and a chunk gives every
   word's own cost; otherwise (the mock, older servers) a chunk costing one token per word
   is all single tokens, and one costing more is halved while calls are left. Chunks are
   sized to the server's ``max_model_len``, as a longer text would be refused.
2. samples, each a candidate first word then random one-token words: one counted as its
   word count confirms its first word, and that costs add up in a composition not seen
   before. Samples go on until :data:`FIRST_WORDS` first words are found.

Falling back: a tokenizer that merges across spaces (a chunk counted below its word count,
a token spanning two words, a sample off by more than its first word explains) cannot be
predicted from word costs, nor can one with fewer than :data:`MIN_WORDS` one-token words,
nor one whose ``/tokenize`` fails. Prompts are then built to the length the measured tokens
per word predict (the 4-characters rule when nothing was measured), flagged not exact, and
the summary and report say the lengths are ESTIMATED: ``--tokenizer PATH`` makes them exact.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sagellm_users._errors import ConfigError
from sagellm_users._workloads.synthetic import WORDS
from sagellm_users._workloads.tokens import ServerCounter, TokenCounter

__all__ = [
    "FIRST_WORDS",
    "MAX_CALLS",
    "MIN_WORDS",
    "WordCalibration",
    "calibrate",
]

MAX_CALLS = 32
"""The most ``/tokenize`` calls one calibration makes."""
FIRST_WORDS = 4
"""First words sought; each is confirmed by a sample that also checks the costs add up."""
MIN_WORDS = 32
"""Fewer one-token words than this leave prompts too alike: they are estimated instead."""

_SAMPLE_CALLS = 3 * FIRST_WORDS
"""The most samples tried (each candidate's own call included, where one is needed)."""
_RESERVED = 2 * FIRST_WORDS
"""Calls the chunks leave for the samples."""
_CHUNK_WORDS = (8, 128)
_GROUP = 4
"""Words per group when only counts come back: all four cost one token often enough."""
_SEED = "sagellm/calibration"
"""The same on every process, so every worker of a run picks the same words."""
_SPACE_MARKS = str.maketrans({"Ġ": " ", "▁": " "})
"""How byte-level BPE and SentencePiece token strings write a space."""


class _Unpredictable(Exception):
    """Word costs cannot predict this tokenizer's counts (the reason is the message)."""


class _OutOfCalls(Exception):
    pass


@dataclass(frozen=True, slots=True)
class WordCalibration:
    """What the server's tokenizer taught: the words to build exact prompts from, or why
    prompts are estimated instead."""

    words: tuple[str, ...]
    """Words that cost one token after a space."""
    first: tuple[str, ...]
    """Of those, the ones checked to cost one token at a text's start too."""
    tokens_per_word: float | None
    """Measured over the word list (None when nothing was measured)."""
    calls: int
    """``/tokenize`` calls the calibration made."""
    problem: str = ""
    """Why lengths are estimated; empty when they are exact."""

    @property
    def exact(self) -> bool:
        return not self.problem

    def describe(self) -> str:
        """One line for the report: how the prompts are counted."""
        if self.exact:
            return (
                f"exact, from {len(self.words)} one-token words ({len(self.first)} checked as "
                "first words) measured with the server's /tokenize"
            )
        rate = self.tokens_per_word
        per = "4 characters per token" if rate is None else f"{rate:.2f} tokens per word"
        return f"ESTIMATED at {per}: {self.problem}"


def calibrate(counter: TokenCounter) -> WordCalibration:
    """Measure the words with ``counter`` (the server's ``/tokenize``); never raises for
    what the server answers: a failure is a calibration whose ``problem`` says it."""
    run = _Calibration(counter)
    try:
        words, first = run.measure()
    except _Unpredictable as exc:
        return WordCalibration((), (), run.tokens_per_word(), run.calls, str(exc))
    except ConfigError as exc:
        problem = f"/tokenize failed while measuring the words ({exc})"
        return WordCalibration((), (), run.tokens_per_word(), run.calls, problem)
    return WordCalibration(words, first, run.tokens_per_word(), run.calls)


class _Calibration:
    """One calibration's state: its calls and what they measured."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.server = counter if isinstance(counter, ServerCounter) else None
        self.calls = 0
        self._base = 0
        """The anchor's count, which every chunk's count includes."""
        self._tokens = 0
        self._words = 0
        self._rng = random.Random(_SEED)

    def tokens_per_word(self) -> float | None:
        return self._tokens / self._words if self._words else None

    def ask(
        self, words: Sequence[str], limit: int = MAX_CALLS, *, chunk: bool = False
    ) -> tuple[int, list[int] | None]:
        """The count of ``words`` joined by spaces, and each word's own cost when the
        server's token strings spell the text (None otherwise). A ``chunk`` (the anchor,
        then list words) adds to the measured tokens per word."""
        if self.calls >= limit:
            raise _OutOfCalls
        self.calls += 1
        text = " ".join(words)
        if self.server is None:
            count, strs = self.counter.count(text), None
        else:
            ids, strs = self.server.pieces(text)
            count = len(ids)
        if chunk:
            self._tokens += count - self._base
            self._words += len(words) - 1
        return count, None if strs is None else _align(text, words, strs)

    def measure(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        anchor = WORDS[0]
        self._base, _ = self.ask([anchor])
        size = _chunk_words(None if self.server is None else self.server.max_model_len)
        # Every chunk a like mix of lengths, so any chunk's cost per word is the list's.
        by_length = sorted(WORDS, key=len)
        n = math.ceil(len(by_length) / size)
        ones: list[str] = []
        unsure: list[str] = []
        for chunk in (by_length[i::n] for i in range(n)):
            found = self._ones([anchor, *chunk], chunk=True)
            ones += found if found is not None else []
            unsure += chunk if found is None else []
        # Counts alone: small groups of the shortest words left (most likely single tokens),
        # while calls are left for the samples.
        unsure.sort(key=len)
        for i in range(0, len(unsure), _GROUP):
            try:
                found = self._ones([anchor, *unsure[i : i + _GROUP]], MAX_CALLS - _RESERVED)
            except _OutOfCalls:
                break
            ones += found or []
        words = tuple(w for w in WORDS if w in set(ones))
        if len(words) < MIN_WORDS:
            raise _Unpredictable(
                f"only {len(words)} of {len(WORDS)} common words cost one token each "
                f"(found with {self.calls} calls)"
            )
        return words, self._first_words(words, size)

    def _ones(
        self, text: list[str], limit: int = MAX_CALLS, *, chunk: bool = False
    ) -> list[str] | None:
        """The words after the anchor that cost one token each; None when only the sum is
        known and it says some cost more (which ones is unknown)."""
        count, costs = self.ask(text, limit, chunk=chunk)
        words = text[1:]
        if costs is not None:
            return [w for w, c in zip(words, costs[1:], strict=True) if c == 1]
        cost = count - self._base
        if cost < len(words):
            raise _Unpredictable(
                f"the server's tokenizer merges words across spaces ({len(words)} words "
                f"counted {cost} tokens)"
            )
        return words if cost == len(words) else None

    def _first_words(self, words: tuple[str, ...], size: int) -> tuple[str, ...]:
        """Words that cost one token at a text's start, each confirmed by a sample."""
        first: list[str] = []
        candidates = self._rng.sample(words, len(words))
        limit = min(MAX_CALLS, self.calls + _SAMPLE_CALLS)
        for candidate in candidates:
            if len(first) == FIRST_WORDS:
                break
            sample = [candidate, *self._rng.choices(words, k=size - 1)]
            try:
                count, costs = self.ask(sample, limit)
                if costs is not None:
                    if any(c != 1 for c in costs[1:]):
                        raise _Unpredictable(_not_adding_up(len(sample), count))
                    alone = costs[0]
                elif count == len(sample):
                    alone = 1
                else:  # the candidate costs more at the start, or costs do not add up
                    alone, _ = self.ask([candidate], limit)
                    if alone + len(sample) - 1 != count:
                        raise _Unpredictable(_not_adding_up(len(sample), count))
            except _OutOfCalls:
                break
            if alone == 1:
                first.append(candidate)
        if not first:
            raise _Unpredictable(
                f"no word tried costs one token at a text's start ({self.calls} calls)"
            )
        return tuple(first)


def _not_adding_up(words: int, count: int) -> str:
    return (
        f"the server's tokenizer does not count words one by one: {words} one-token words "
        f"counted {count} tokens together"
    )


def _chunk_words(max_model_len: int | None) -> int:
    """Words per chunk: up to eight tokens a word (longer than any of the list's) must fit
    the server's context, or it would refuse the text."""
    low, high = _CHUNK_WORDS
    if max_model_len is None:
        return high // 2
    return max(low, min(high, max_model_len // 8))


def _align(text: str, words: Sequence[str], strs: Sequence[str]) -> list[int] | None:
    """Each word's own token count (the space before it included), from the tokens' texts;
    None when they do not spell ``text`` (a format this does not read).

    Raises :class:`_Unpredictable` when a token spans two words (merges across spaces)."""
    ends: list[int] = []
    for w in words:
        ends.append((ends[-1] + 1 if ends else 0) + len(w))
    costs = [0] * len(words)
    at = word = 0
    prefix = not text.startswith(" ")
    for raw in strs:
        piece = raw.translate(_SPACE_MARKS)
        if prefix and piece.startswith(" "):
            piece = piece[1:]  # SentencePiece's dummy prefix: a space the text does not have
            if not piece:  # as a token of its own: one more for the first word
                costs[0] += 1
                continue
        prefix = False
        if not piece:
            return None
        if not text.startswith(piece, at):
            if text.startswith(" ", at) and text.startswith(piece, at + 1):
                at += 1  # a token without its space (the mock's, word-level tokenizers)
            else:
                return None
        while at >= ends[word]:
            word += 1
        end = at + len(piece)
        if end > ends[word]:
            raise _Unpredictable(
                f"the server's tokenizer merges words across spaces (token {raw!r} spans "
                f"{words[word]!r} and the word after it)"
            )
        costs[word] += 1
        at = end
    return costs if at == len(text) else None
