"""Synthetic prompts of an exact input length, counted as the server will count them.

Each prompt is fresh random prose: common English words drawn from the synthesizer's own
``random.Random``. Fresh, because two requests that share a prompt prefix let a server's
prefix cache (vLLM's automatic prefix caching, SGLang's radix cache) skip their shared
prefill, and the test would measure cache hits it never meant to send; random words make
a shared prefix of even a few tokens vanishingly rare (the first 7 words alone have 254^7,
about 7e16, choices). Drawn from the given ``rng``, so one seed replays the same prompts.
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
* the server's ``/tokenize``: words only, so choose how many by an interpolating search on
  the word count, at most :data:`MAX_SERVER_CALLS` calls; exact when some word count gives
  ``n`` tokens (always on the mock: one token per word), else the closest, flagged.
* the characters-per-token estimate: ``4 n`` characters, never flagged exact.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from sagellm_users.metrics.record import _CHARS_PER_TOKEN
from sagellm_users.workloads.tokens import TokenCounter, TokenizerCounter

__all__ = ["MAX_SERVER_CALLS", "WORDS", "PromptSynthesizer", "SyntheticPrompt"]

MAX_SERVER_CALLS = 6
"""The most ``/tokenize`` calls one prompt may cost when the server counts."""

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
_SHORTER = {k: tuple(w for w in WORDS if len(w) < k) for k in range(2, 6)}


@dataclass(frozen=True, slots=True)
class SyntheticPrompt:
    """One prompt and its length as the counter counts it."""

    text: str
    tokens: int
    """The count the counter gave for ``text``."""
    exact: bool
    """``tokens`` is the length asked for, counted by a tokenizer or the server."""


class PromptSynthesizer:
    """Makes prompts of a given token length with ``counter``, drawing words from ``rng``."""

    def __init__(self, counter: TokenCounter, rng: random.Random) -> None:
        self.counter = counter
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
        if self.counter.source == "estimate":
            return self._by_chars(n_tokens)
        return self._by_words(n_tokens)

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

    def _by_words(self, n: int) -> SyntheticPrompt:
        pool = self._words(self._enough_words(n))
        k = max(1, min(len(pool), round(n / self._tokens_per_word)))
        below: tuple[int, int] = (0, 0)  # (words, tokens): most words known to give < n
        above: tuple[int, int] | None = None  # fewest words known to give > n
        best: tuple[int, str] | None = None
        for _ in range(MAX_SERVER_CALLS):
            text = " ".join(pool[:k])
            count = self.counter.count(text)
            if best is None or (abs(count - n), count > n) < (abs(best[0] - n), best[0] > n):
                best = (count, text)
            if count == n:
                break
            if count < n:
                below = (k, count)
            else:
                above = (k, count)
            if above is not None and above[0] - below[0] <= 1:
                # No word count gives n: the word after the shorter prefix costs too much,
                # so swap it for a shorter one (shorter words tend to be fewer tokens).
                old = pool[below[0]]
                pool[below[0]] = self._rng.choice(_SHORTER.get(len(old)) or WORDS)
                above, k = None, below[0] + 1
                continue
            step = round((n - count) * k / max(count, 1)) or (1 if count < n else -1)
            k = max(k + step, below[0] + 1)
            if above is not None:
                k = min(k, above[0] - 1)
            if k > len(pool):
                pool += self._words(k - len(pool) + self._enough_words(n - count))
        assert best is not None
        self._learn(best[0], len(best[1].split()))
        return SyntheticPrompt(best[1], best[0], exact=best[0] == n)

    def _by_chars(self, n: int) -> SyntheticPrompt:
        target = round(n * _CHARS_PER_TOKEN)
        text = ""
        while len(text) < target:
            # about five characters a word with its space: draw a little more than needed
            text = " ".join((text, *self._words((target - len(text)) // 4 + 1))).lstrip()
        text = text[:target].rstrip()  # one space less is still n tokens: round(n - 0.25)
        return SyntheticPrompt(text, self.counter.count(text), exact=False)


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

    def plan(self, n: int, rng: random.Random) -> str | None:
        """Random words whose costs add up to ``n``; None when no word fits the last gap."""
        word = rng.choice(WORDS)
        if self.first[word] > n:
            fits = self.first_fits[min(n, len(self.first_fits) - 1)]
            if not fits:
                return None
            word = rng.choice(fits)
        words = [word]
        left = n - self.first[word]
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
