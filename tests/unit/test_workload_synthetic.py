"""Synthetic prompts: exactly n tokens by a tokenizer or by words measured with /tokenize
(never calling it again), new text every call, the same texts for the same seed, and
estimates that never claim to be exact."""

from __future__ import annotations

import random

import pytest

from sagellm_users._workloads.calibration import WordCalibration, calibrate
from sagellm_users._workloads.synthetic import WORDS, PromptSynthesizer, SyntheticPrompt
from sagellm_users._workloads.tokens import (
    EstimateCounter,
    ServerCounter,
    TokenCounter,
    TokenizerCounter,
    TokenSource,
    load_tokenizer,
)
from tests.offline_tokenizer import build_tokenizer

LENGTHS = (1, 2, 7, 64, 300, 2048)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TokenizerCounter:
    return load_tokenizer(build_tokenizer(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def merging_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TokenizerCounter:
    """Merges across spaces, so prompts must be cut to length rather than planned."""
    path = build_tokenizer(tmp_path_factory.mktemp("merging"), split_words=False)
    return load_tokenizer(path)


class UnevenServer:
    """A server whose words cost one token, or two from four letters on."""

    source: TokenSource = "server"
    description = "fake server"

    def count(self, text: str) -> int:
        return sum(1 + len(w) // 4 for w in text.split())


class CallCounter:
    """Wraps a counter, counting its calls."""

    def __init__(self, inner: TokenCounter) -> None:
        self.inner = inner
        self.source: TokenSource = inner.source
        self.description = inner.description
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return self.inner.count(text)


def _check_exact(counter: TokenCounter, prompts: list[SyntheticPrompt], n: int) -> None:
    for prompt in prompts:
        assert prompt.exact and prompt.tokens == n
        assert counter.count(prompt.text) == n


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("which", ["tokenizer", "merging_tokenizer"])
def test_tokenizer_lengths_are_exact(n: int, which: str, request: pytest.FixtureRequest) -> None:
    counter: TokenizerCounter = request.getfixturevalue(which)
    synth = PromptSynthesizer(counter, random.Random(n))
    prompts = [synth.make(n) for _ in range(40 if n < 2048 else 10)]
    _check_exact(counter, prompts, n)
    if n >= 7:
        assert len({p.text for p in prompts}) == len(prompts)  # no shared prompt, ever


def test_lengths_may_change_from_call_to_call(tokenizer: TokenizerCounter) -> None:
    synth = PromptSynthesizer(tokenizer, random.Random(3))
    rng = random.Random(4)
    for _ in range(200):
        n = rng.randint(1, 400)
        _check_exact(tokenizer, [synth.make(n)], n)


def test_texts_are_prose_and_differ_from_the_first_words(tokenizer: TokenizerCounter) -> None:
    synth = PromptSynthesizer(tokenizer, random.Random(1))
    prompts = [synth.make(64) for _ in range(50)]
    firsts = {tuple(p.text.split()[:4]) for p in prompts}
    assert len(firsts) == 50  # no two prompts share even a four-word prefix
    words = set(WORDS)
    for prompt in prompts:
        assert prompt.text == prompt.text.strip() and "  " not in prompt.text
        assert set(prompt.text.split()[:-1]) <= words  # only the last word may be cut


@pytest.mark.parametrize("which", ["tokenizer", "merging_tokenizer"])
def test_same_seed_same_prompts(which: str, request: pytest.FixtureRequest) -> None:
    counter: TokenizerCounter = request.getfixturevalue(which)

    def run(seed: int) -> list[str]:
        synth = PromptSynthesizer(counter, random.Random(seed))
        return [synth.make(n).text for n in (5, 64, 300, 5, 64)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_server_counted_prompts_are_exact_and_never_call_the_server(served: ServerCounter) -> None:
    counter = CallCounter(served)
    calibration = calibrate(counter)
    assert calibration.exact and calibration.words == WORDS, "the mock: every word one token"
    calls = counter.calls
    synth = PromptSynthesizer(counter, random.Random(0), calibration)
    for n in (1, 2, 7, 64, 2048):
        prompts = [synth.make(n) for _ in range(5)]
        _check_exact(served, prompts, n)
        assert len({p.text for p in prompts}) == 5 or n < 7
    assert counter.calls == calls, "prompts are built without the server"


def test_a_server_counter_needs_its_calibration(served: ServerCounter) -> None:
    with pytest.raises(ValueError, match=r"need the words measured before the load"):
        PromptSynthesizer(served, random.Random(0))


def test_estimated_by_the_measured_rate_when_words_do_not_add_up() -> None:
    unsure = WordCalibration((), (), 1.5, calls=3, problem="merges across spaces")
    synth = PromptSynthesizer(UnevenServer(), random.Random(0), unsure)
    for n in (1, 2, 300):
        prompt = synth.make(n)
        words = len(prompt.text.split())
        assert not prompt.exact and words == max(1, round(n / 1.5))
        assert prompt.tokens == max(1, round(words * 1.5))
    nothing = WordCalibration((), (), None, calls=1, problem="/tokenize failed")
    prompt = PromptSynthesizer(UnevenServer(), random.Random(0), nothing).make(40)
    assert not prompt.exact and prompt.tokens == 40 and 159 <= len(prompt.text) <= 160


@pytest.mark.parametrize("n", [1, 2, 10, 500, 2048])
def test_estimate_is_about_four_characters_a_token_and_flagged(n: int) -> None:
    counter = EstimateCounter()
    synth = PromptSynthesizer(counter, random.Random(n))
    prompts = [synth.make(n) for _ in range(20)]
    for prompt in prompts:
        assert not prompt.exact
        assert prompt.tokens == counter.count(prompt.text) == n
        assert 4 * n - 1 <= len(prompt.text) <= 4 * n
        assert prompt.text == prompt.text.strip()
    if n >= 10:
        assert len({p.text for p in prompts}) == len(prompts)


@pytest.mark.parametrize("n", [0, -3])
def test_a_prompt_needs_a_token(n: int, tokenizer: TokenizerCounter) -> None:
    counters: list[TokenCounter] = [tokenizer, EstimateCounter(), UnevenServer()]
    calibration = WordCalibration(WORDS, WORDS[:4], 1.0, calls=7)
    for counter in counters:
        with pytest.raises(ValueError, match="at least 1 token"):
            PromptSynthesizer(counter, random.Random(0), calibration).make(n)


def test_prompt_is_frozen() -> None:
    prompt = SyntheticPrompt("a b", 2, exact=True)
    with pytest.raises(AttributeError):
        prompt.tokens = 3  # type: ignore[misc]


def test_word_list() -> None:
    assert 200 <= len(WORDS) <= 300 and len(set(WORDS)) == len(WORDS)
    assert all(w.isalpha() and w.islower() and len(w) <= 5 for w in WORDS)
