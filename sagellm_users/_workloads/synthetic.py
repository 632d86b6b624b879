"""Synthetic prompts of an exact input length, counted as the server will count them.

Each prompt is fresh random prose: common English words drawn from the synthesizer's own
``random.Random``. Fresh, because two requests that share a prompt prefix let a server's
prefix cache (vLLM's automatic prefix caching, SGLang's radix cache) skip their shared
prefill, and the test would measure cache hits it never meant to send; random words make
a shared prefix of even a few tokens vanishingly rare (the first 7 words alone have 254^7,
about 7e16, choices; with the fewest one-token words a server's calibration accepts, 4 x
32^6, about 4e9, and a prefix cache shares whole blocks, vLLM's of 16 tokens: 4 x 32^15).
Drawn from the given ``rng``, so one seed replays the same prompts.
Words rather than random characters, because tokenizers split gibberish into many short
tokens and the server's prefill would not see the token mix of real text.

How the length is hit depends on the counter (see :mod:`.tokens`):

* a local tokenizer: the tokens each word costs (at the start, and after a space) are
  measured once; words are then drawn until their costs add up to ``n``, and one encode of
  the text checks it. Encoding is most of the cost (a tokenizer's pre-tokenizer regex runs
  over every character), so one encode per prompt is the floor for a count that is checked,
  not assumed. When costs do not add up (a tokenizer that merges across spaces), the text is
  cut instead: encode, cut the ids at ``n``, decode and encode again until the count is
  ``n`` (a cut inside a word can re-encode one token off, so this is bounded, with a fresh
  draw as the way out). Exact either way.
* the server's ``/tokenize``: never called here, as each call would be a request to the
  server under test during the load. The words that cost one token each were measured once
  before the load (:mod:`.calibration`); a prompt of ``n`` tokens is ``n`` of them. When the
  server's tokenizer did not allow that, ``n`` tokens' worth of words at the measured rate,
  flagged not exact.
* the characters-per-token estimate: ``4 n`` characters, never flagged exact.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sagellm_users._metrics.record import _CHARS_PER_TOKEN
from sagellm_users._workloads.tokens import TokenCounter, TokenizerCounter, counts_locally

if TYPE_CHECKING:
    from sagellm_users._workloads.calibration import WordCalibration

__all__ = ["WORDS", "PromptSynthesizer", "SyntheticPrompt"]

_CUT_ROUNDS = 8
_DRAWS = 4

_WORD_TEXT = """
    a about after again air all also and any are as ask at away back be been began best
    big book both boy but by call came can car child city close come could cut day did
    do does dog down each early earth end even every eye face far feet few find first
    food for form found four from get girl give go good great group grow had hand hard
    has have he head hear help her here high him his home house how idea if in into is
    it just keep kind know land large last later learn leave left let life light like
    line list live long look made make man many may me mean men might mile more most
    move much must my name near need never new next night no not now of off often old on
    once one only open or other our out over own page paper part place plant play point
    put quick read real right river road room run said same saw say sea see seem set she
    show side small so some song soon sound spell start state still stop story study
    such sun take talk tell than that the their them then there these they thing think
    this those three time to too took tree try turn two under until up us use very walk
    want was watch water way we well went were what when where which while white who why
    will with word work world would write year you young your
"""
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())
"""Common lowercase English words of at most five letters: real tokenizers have nearly
all of them, with their leading space, as single tokens."""


@dataclass(frozen=True, slots=True)
class SyntheticPrompt:
    """One prompt and its length as the counter counts it."""

    text: str
    tokens: int
    """The text's length: as a local tokenizer counted it, as the server's tokenizer counts
    it (known from the calibrated words it is made of), or, when not exact, estimated."""
    exact: bool
    """``tokens`` is the length asked for, counted by a tokenizer or the server's."""


class PromptSynthesizer:
    """Makes prompts of a given token length with ``counter``, drawing words from ``rng``.

    A counter that asks a server needs its ``calibration`` (:func:`.calibration.calibrate`),
    made once before the load and shared by every user: this never calls that counter."""

    def __init__(
        self,
        counter: TokenCounter,
        rng: random.Random,
        calibration: WordCalibration | None = None,
    ) -> None:
        if calibration is None and not counts_locally(counter):
            raise ValueError(
                f"prompts counted by {counter.description} need the words measured before "
                "the load (calibrate the counter once and pass the calibration)"
            )
        self.counter = counter
        self.calibration = calibration
        self._rng = rng
        self._tokens_per_word = 1.0
        """Learned from the prompts made so far, to draw about the right number of words."""
        self._costs: _WordCosts | None = None
        self._costs_work = isinstance(counter, TokenizerCounter)
        """Word costs are measured on first use, and given up at the first miscount."""

    def make(self, n_tokens: int) -> SyntheticPrompt:
        """A new random prompt of ``n_tokens`` tokens (exactly, unless flagged otherwise)."""
        if n_tokens < 1:
            raise ValueError(f"a prompt needs at least 1 token, not {n_tokens}")
        if isinstance(self.counter, TokenizerCounter):
            return self._by_tokens(self.counter, n_tokens)
        calibration = self.calibration
        if calibration is None or calibration.tokens_per_word is None:
            return self._by_chars(n_tokens)
        if calibration.exact:
            return self._by_calibration(calibration, n_tokens)
        return self._by_rate(calibration.tokens_per_word, n_tokens)

    def continuation(self, n_tokens: int) -> SyntheticPrompt:
        """Text that adds ``n_tokens`` tokens to a text it follows after a space (exactly,
        unless flagged otherwise): the blocks of a prompt built piece by piece."""
        if n_tokens < 1:
            raise ValueError(f"a continuation needs at least 1 token, not {n_tokens}")
        counter = self.counter
        if isinstance(counter, TokenizerCounter):
            return self._continuation_by_tokens(counter, n_tokens)
        calibration = self.calibration
        if calibration is not None and calibration.exact:
            return SyntheticPrompt(
                " ".join(self._rng.choices(calibration.words, k=n_tokens)), n_tokens, exact=True
            )
        return self.make(n_tokens)

    def _continuation_by_tokens(self, tokenizer: TokenizerCounter, n: int) -> SyntheticPrompt:
        if self._costs_work and self._costs is None:
            self._costs = _WordCosts.measure(tokenizer)
            self._costs_work = self._costs is not None
        lead = WORDS[0]
        base = tokenizer.count(lead)
        if self._costs_work and self._costs is not None:
            text = self._costs.plan(n, self._rng, first=False)
            if text is not None and tokenizer.count(f"{lead} {text}") - base == n:
                return SyntheticPrompt(text, n, exact=True)
        text = self.make(n).text
        added = tokenizer.count(f"{lead} {text}") - base
        return SyntheticPrompt(text, added, exact=added == n)

    def _words(self, k: int) -> list[str]:
        return self._rng.choices(WORDS, k=k)

    def _learn(self, tokens: int, words: int) -> None:
        if tokens > 0 and words > 0:
            self._tokens_per_word = 0.5 * self._tokens_per_word + 0.5 * tokens / words

    def _enough_words(self, n: int) -> int:
        """Words expected to give a little more than ``n`` tokens."""
        return math.ceil(n * 1.1 / self._tokens_per_word) + 2

    def _by_tokens(self, tokenizer: TokenizerCounter, n: int) -> SyntheticPrompt:
        if self._costs_work and self._costs is None:
            self._costs = _WordCosts.measure(tokenizer)
            self._costs_work = self._costs is not None
        if self._costs_work and self._costs is not None:
            text = self._costs.plan(n, self._rng)
            if text is not None:
                if tokenizer.count(text) == n:
                    return SyntheticPrompt(text, n, exact=True)
                self._costs_work = False  # costs do not add up here: cut texts instead
        return self._by_cutting(tokenizer, n)

    def _by_cutting(self, tokenizer: TokenizerCounter, n: int) -> SyntheticPrompt:
        best: tuple[int, str] | None = None
        for _ in range(_DRAWS):
            words = self._words(self._enough_words(n))
            text = " ".join(words)
            ids = tokenizer.encode(text)
            while len(ids) < n:  # rare: the learned ratio was too low
                words += self._words(self._enough_words(n - len(ids)))
                text = " ".join(words)
                ids = tokenizer.encode(text)
            self._learn(len(ids), len(words))
            for _ in range(_CUT_ROUNDS):
                if len(ids) == n:
                    return SyntheticPrompt(text, n, exact=True)
                if best is None or abs(len(ids) - n) < abs(best[0] - n):
                    best = (len(ids), text)
                if len(ids) > n:
                    text = tokenizer.decode(ids[:n])
                else:  # the cut re-encoded short: add a word, cut again next round
                    text = f"{text} {self._rng.choice(WORDS)}"
                ids = tokenizer.encode(text)
        assert best is not None
        return SyntheticPrompt(best[1], best[0], exact=False)

    def _by_calibration(self, calibration: WordCalibration, n: int) -> SyntheticPrompt:
        first = self._rng.choice(calibration.first)
        words = self._rng.choices(calibration.words, k=n - 1)
        return SyntheticPrompt(" ".join((first, *words)), n, exact=True)

    def _by_rate(self, tokens_per_word: float, n: int) -> SyntheticPrompt:
        k = max(1, round(n / tokens_per_word))
        tokens = max(1, round(k * tokens_per_word))
        return SyntheticPrompt(" ".join(self._words(k)), tokens, exact=False)

    def _by_chars(self, n: int) -> SyntheticPrompt:
        target = round(n * _CHARS_PER_TOKEN)
        text = ""
        while len(text) < target:
            # about five characters a word with its space: draw a little more than needed
            text = " ".join((text, *self._words((target - len(text)) // 4 + 1))).lstrip()
        text = text[:target].rstrip()  # one space less is still n tokens: round(n - 0.25)
        # the estimate's own rule, whatever the counter: a server is not asked during load
        return SyntheticPrompt(text, round(len(text) / _CHARS_PER_TOKEN), exact=False)


class _WordCosts:
    """The tokens each word of :data:`WORDS` adds to a text: at its start, and after a space.

    With a tokenizer that splits words apart before merging (every byte-level BPE and
    SentencePiece one), these add up exactly to the text's count.
    """

    def __init__(self, first: dict[str, int], after: dict[str, int]) -> None:
        self.first = first
        self.after = after
        self.mean_after = sum(after.values()) / len(after)
        top = max(*first.values(), *after.values())
        self.first_fits = [[w for w in WORDS if first[w] <= r] for r in range(top + 1)]
        self.after_fits = [[w for w in WORDS if after[w] <= r] for r in range(top + 1)]

    @classmethod
    def measure(cls, tokenizer: TokenizerCounter) -> _WordCosts | None:
        """The costs under ``tokenizer``; None when some word seems to cost nothing."""
        base = tokenizer.count(WORDS[0])
        first = {w: tokenizer.count(w) for w in WORDS}
        after = {w: tokenizer.count(f"{WORDS[0]} {w}") - base for w in WORDS}
        if min(first.values()) < 1 or min(after.values()) < 1:
            return None
        return cls(first, after)

    def plan(self, n: int, rng: random.Random, *, first: bool = True) -> str | None:
        """Random words whose costs add up to ``n`` (``first``: at a text's start, else
        after a space, to be appended to another text); None when no word fits the last
        gap."""
        words: list[str] = []
        left = n
        if first:
            word = rng.choice(WORDS)
            if self.first[word] > n:
                fits = self.first_fits[min(n, len(self.first_fits) - 1)]
                if not fits:
                    return None
                word = rng.choice(fits)
            words.append(word)
            left -= self.first[word]
        while left > 0:
            for drawn in rng.choices(WORDS, k=math.ceil(left / self.mean_after) + 2):
                word = drawn
                if self.after[word] > left:  # only near the end: a gap smaller than the word
                    fits = self.after_fits[left]
                    if not fits:
                        return None
                    word = rng.choice(fits)
                words.append(word)
                left -= self.after[word]
                if left == 0:
                    break
        return " ".join(words)
