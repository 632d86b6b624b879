"""The words that cost one token by the server's /tokenize, measured once before the load,
and the prompts built from them without another call.

/tokenize is answered as vLLM answers it, by real tokenizers trained here offline: a
byte-level BPE (GPT-2, Llama 3 and Qwen's kind), the tiny Llama's that the real-vLLM tests
serve, a SentencePiece-style BPE, a word-level one, and a BPE that merges across spaces
(which cannot be predicted from word costs and must say so); also by the mock over HTTP.
Every claim is checked against the tokenizer itself."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from sagellm_users._workloads.calibration import (
    FIRST_WORDS,
    MAX_CALLS,
    MIN_WORDS,
    WordCalibration,
    _align,
    _Unpredictable,
    calibrate,
)
from sagellm_users._workloads.synthetic import WORDS, PromptSynthesizer
from sagellm_users._workloads.tokens import ServerCounter, TokenSource
from tests.fake_tokenize import TokenizeClient
from tests.offline_tokenizer import build_metaspace_tokenizer, build_tokenizer
from tests.real.build_tiny_model import build as build_tiny_model

LENGTHS = (1, 2, 7, 64, 500, 2048)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tokenizer]:
    root = tmp_path_factory.mktemp("tokenizers")
    build_tiny_model(str(root / "tiny"))
    vocab = {word: i for i, word in enumerate(("[UNK]", *WORDS))}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return {
        "byte-level": Tokenizer.from_file(str(build_tokenizer(root / "bpe"))),
        "tiny-llama": Tokenizer.from_file(str(root / "tiny" / "tokenizer.json")),
        "metaspace": build_metaspace_tokenizer(),
        "word-level": word_level,
        "merging": Tokenizer.from_file(str(build_tokenizer(root / "merging", split_words=False))),
    }


def counter_of(tokenizer: Tokenizer) -> Callable[[str], int]:
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def check_claims(tokenizer: Tokenizer, calibration: WordCalibration) -> None:
    """Each word said to cost one token does, after a space; each first word at the start."""
    count = counter_of(tokenizer)
    base = count("a")
    assert [w for w in calibration.words if count(f"a {w}") - base != 1] == []
    assert [w for w in calibration.first if count(w) != 1] == []
    assert set(calibration.first) <= set(calibration.words)


@pytest.mark.parametrize("max_model_len", [4096, 512])
@pytest.mark.parametrize("name", ["byte-level", "tiny-llama", "metaspace", "word-level"])
def test_measured_words_make_exact_prompts_with_no_call_during_load(
    trained: dict[str, Tokenizer], name: str, max_model_len: int
) -> None:
    tokenizer = trained[name]
    client = TokenizeClient(tokenizer, max_model_len=max_model_len)
    counter = ServerCounter(client)
    calibration = calibrate(counter)
    assert calibration.exact, calibration.problem
    assert calibration.calls == client.calls == counter.calls <= MAX_CALLS
    assert len(calibration.words) >= MIN_WORDS and len(calibration.first) == FIRST_WORDS
    check_claims(tokenizer, calibration)
    count = counter_of(tokenizer)
    assert max(count(text) for text in client.texts) <= max_model_len, "no text refused"
    synth = PromptSynthesizer(counter, random.Random(7), calibration)
    for n in LENGTHS:
        prompts = [synth.make(n) for _ in range(20)]
        assert {(p.tokens, p.exact) for p in prompts} == {(n, True)}
        assert {count(p.text) for p in prompts} == {n}, "exactly n by the server's tokenizer"
        assert n < 7 or len({p.text for p in prompts}) == 20
    assert client.calls == calibration.calls, "no /tokenize call once prompts are built"


def test_token_strings_need_few_calls(trained: dict[str, Tokenizer]) -> None:
    """One call for the anchor, one per chunk of the word list, one per first word tried."""
    client = TokenizeClient(trained["tiny-llama"])
    calibration = calibrate(ServerCounter(client))
    assert calibration.exact and calibration.calls <= 1 + 2 + 2 * FIRST_WORDS
    assert len(calibration.words) > 150, "most common words are one token in 8000"


def test_counts_alone_find_single_tokens_in_small_groups(trained: dict[str, Tokenizer]) -> None:
    tokenizer = trained["tiny-llama"]
    client = TokenizeClient(tokenizer, token_strs=False)  # a server that gives no strings
    calibration = calibrate(ServerCounter(client))
    assert calibration.exact, calibration.problem
    assert calibration.calls == client.calls <= MAX_CALLS
    assert len(calibration.words) >= MIN_WORDS
    check_claims(tokenizer, calibration)


class UnevenServer:
    """Counts only (no token strings): one token a word, two from four letters on."""

    source: TokenSource = "server"
    description = "fake server"

    def __init__(self) -> None:
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return sum(1 + len(w) // 4 for w in text.split())


def test_counts_alone_keep_the_short_words_of_an_uneven_server() -> None:
    server = UnevenServer()
    calibration = calibrate(server)
    assert calibration.exact and calibration.calls == server.calls <= MAX_CALLS
    assert len(calibration.words) >= MIN_WORDS
    assert all(len(w) <= 3 for w in calibration.words)
    prompt = PromptSynthesizer(server, random.Random(0), calibration).make(300)
    assert prompt.exact and server.count(prompt.text) == 300


@pytest.mark.parametrize("token_strs", [True, False])
def test_a_tokenizer_that_merges_across_spaces_is_estimated_and_says_why(
    trained: dict[str, Tokenizer], token_strs: bool
) -> None:
    tokenizer = trained["merging"]
    client = TokenizeClient(tokenizer, token_strs=token_strs)
    calibration = calibrate(ServerCounter(client))
    assert not calibration.exact and calibration.words == calibration.first == ()
    assert calibration.calls == client.calls <= MAX_CALLS
    if token_strs:
        assert "merges words across spaces" in calibration.problem
        assert calibration.calls <= 3, "seen in the first chunk"
    assert "ESTIMATED" in calibration.describe() and calibration.problem in calibration.describe()
    count = counter_of(tokenizer)
    real = count(" ".join(WORDS)) / len(WORDS)
    assert calibration.tokens_per_word == pytest.approx(real, rel=0.1)
    synth = PromptSynthesizer(ServerCounter(client), random.Random(3), calibration)
    prompts = [synth.make(300) for _ in range(20)]
    assert not any(p.exact for p in prompts)
    assert sum(count(p.text) for p in prompts) / 20 == pytest.approx(300, rel=0.1)
    assert client.calls == calibration.calls


def test_a_failing_tokenize_is_estimated_and_named(trained: dict[str, Tokenizer]) -> None:
    client = TokenizeClient(trained["byte-level"], max_model_len=4)  # refuses every chunk
    calibration = calibrate(ServerCounter(client))
    assert not calibration.exact and calibration.calls == client.calls == 2
    assert calibration.problem.startswith("/tokenize failed while measuring the words")
    assert "maximum context length is 4 tokens" in calibration.problem
    assert calibration.tokens_per_word is None, "nothing measured: the 4-characters rule"
    assert calibration.describe().startswith("ESTIMATED at 4 characters per token: ")


def test_the_mock_takes_seven_calls(served: ServerCounter) -> None:
    """The mock counts one token a word and gives no token strings: the anchor, two chunks
    of the word list (its max_model_len is 4096) and four samples."""
    checked = served.calls  # server_counter's check that the route exists
    calibration = calibrate(served)
    assert calibration.exact and calibration.words == WORDS and len(calibration.first) == 4
    assert calibration.calls == 7 == served.calls - checked
    assert calibration.describe() == (
        "exact, from 254 one-token words (4 checked as first words) measured with the "
        "server's /tokenize"
    )


def test_every_process_measures_the_same_words(trained: dict[str, Tokenizer]) -> None:
    tokenizer = trained["byte-level"]
    first, second = (calibrate(ServerCounter(TokenizeClient(tokenizer))) for _ in range(2))
    assert first == second, "shared prefixes come out the same on every worker"


@pytest.mark.parametrize(
    ("strs", "costs"),
    [
        (["a", "Ġab", "out", "Ġthe"], [1, 2, 1]),  # byte-level BPE
        (["▁a", "▁about", "▁the"], [1, 1, 1]),  # SentencePiece, its prefix on the first word
        (["▁", "a", "▁ab", "out", "▁", "the"], [2, 2, 2]),  # ... and spaces as tokens
        (["a", "about", "the"], [1, 1, 1]),  # word-level: tokens without their spaces
        (["a", " about", " the"], [1, 1, 1]),  # plain spaces (tokenizers that decode them)
        (["<0x61>", "Ġabout", "Ġthe"], None),  # byte fallback: not read, counts only
        (["a", "Ġabout"], None),  # does not spell the whole text
    ],
)
def test_token_strings_are_aligned_to_their_words(strs: list[str], costs: list[int] | None) -> None:
    assert _align("a about the", ["a", "about", "the"], strs) == costs


def test_a_token_across_a_space_is_a_merge() -> None:
    with pytest.raises(_Unpredictable, match=r"token 'aĠ' spans 'a' and the word after it"):
        _align("a about", ["a", "about"], ["aĠ", "about"])
