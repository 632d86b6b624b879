"""Token counters: a local tokenizer.json, the server's /tokenize, the 4-characters estimate.

The tokenizer is a real byte-level BPE (the kind GPT-2, Llama 3 and Qwen ship), trained here
offline on standard-library sources, so no test needs the network or a model download.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer

from sagellm_users._errors import ConfigError
from sagellm_users._workloads.build import output_counter
from sagellm_users._workloads.tokens import (
    EstimateCounter,
    ServerCounter,
    TokenCounter,
    load_tokenizer,
    server_counter,
)
from tests.fake_tokenize import TokenizeClient
from tests.offline_tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("model"))


def test_loads_a_directory_or_the_file(tokenizer_json: Path) -> None:
    for path in (tokenizer_json.parent, tokenizer_json, str(tokenizer_json)):
        counter = load_tokenizer(path)
        assert counter.source == "tokenizer"
        assert counter.description == f"tokenizer {Path(path)} (tokenizer.json)"
    text = "Return a list of the words in the string, using sep as the delimiter string."
    ids = counter.encode(text)
    assert counter.count(text) == len(ids) > 5
    assert counter.decode(ids) == text


def test_counts_leave_special_tokens_out(tokenizer_json: Path) -> None:
    raw = Tokenizer.from_file(str(tokenizer_json))
    text = "the quick brown fox"
    with_bos = raw.encode(text).ids
    assert raw.id_to_token(with_bos[0]) == "<s>"  # the template adds BOS by default
    counter = load_tokenizer(tokenizer_json)
    assert counter.encode(text) == with_bos[1:]
    assert counter.count("") == 0


def test_counters_share_one_protocol(tokenizer_json: Path) -> None:
    counters: list[TokenCounter] = [load_tokenizer(tokenizer_json), EstimateCounter()]
    assert [c.source for c in counters] == ["tokenizer", "estimate"]


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=r"tokenizer path '.*nope' does not exist"):
        load_tokenizer(missing)


def test_directory_without_tokenizer_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(ConfigError) as info:
        load_tokenizer(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "has no tokenizer.json" in message
    assert "pip install transformers" in message and "\n" not in message


def test_directory_without_tokenizer_json_uses_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class SlowTokenizer:
        def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
            assert not add_special_tokens
            return [len(word) for word in text.split()]

        def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
            return " ".join("x" * i for i in ids)

        def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
            raise NotImplementedError

    loaded: list[tuple[str, dict[str, Any]]] = []

    def from_pretrained(path: str, **kw: Any) -> SlowTokenizer:
        loaded.append((path, kw))
        return SlowTokenizer()

    fake = types.ModuleType("transformers")
    fake.AutoTokenizer = types.SimpleNamespace(from_pretrained=from_pretrained)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "transformers", fake)
    counter = load_tokenizer(tmp_path)
    assert loaded == [(str(tmp_path), {"local_files_only": True})]
    assert "transformers" in counter.description
    assert counter.encode("ab c") == [2, 1] and counter.count("ab c") == 2
    assert counter.decode([2, 1]) == "xx x"


def test_transformers_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def from_pretrained(path: str, **kw: Any) -> None:
        raise OSError(f"Can't load tokenizer for '{path}'.\nMake sure ...")

    fake = types.ModuleType("transformers")
    fake.AutoTokenizer = types.SimpleNamespace(from_pretrained=from_pretrained)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "transformers", fake)
    with pytest.raises(ConfigError, match=r"with transformers: Can't load tokenizer") as info:
        load_tokenizer(tmp_path)
    assert "\n" not in str(info.value)


def test_corrupt_tokenizer_json(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": {"type": "BPE", "vocab": 7}}', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_tokenizer(tmp_path)
    message = str(info.value)
    assert message.startswith(f"cannot load tokenizer {str(bad)!r}: ")
    assert "give a valid tokenizer.json" in message and "\n" not in message
    assert len(message) > len(f"cannot load tokenizer {str(bad)!r}: ; ") + 30  # the reason


def test_tokenizers_not_installed(tokenizer_json: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ConfigError, match=r"pip install 'sagellm-locust\[tokenizer\]'"):
        load_tokenizer(tokenizer_json)


def test_server_counts_like_the_mock(served: ServerCounter, mock_url: str) -> None:
    assert served.source == "server"
    assert served.description == f"server /tokenize at {mock_url}"
    assert served.count("one two  three") == 3
    assert served.count("") == 0
    assert len(served.tokenize("a b c d")) == 4


def test_server_counter_with_the_served_model(mock_url: str) -> None:
    with pytest.raises(ConfigError, match=r"HTTP 404.*does not exist.*--tokenizer PATH"):
        server_counter(mock_url, model="not-served")
    counter = server_counter(mock_url, model="mock-llm")
    try:
        assert counter.count("x y") == 2
    finally:
        counter.close()


def test_server_without_tokenize(mock_url: str) -> None:
    host = mock_url + "/not-vllm"  # every route under it answers 404
    with pytest.raises(ConfigError) as info:
        server_counter(host)
    message = str(info.value)
    assert message.startswith(f"cannot count tokens with /tokenize at {host}: ")
    assert "answered 404" in message and "give --tokenizer PATH" in message


def test_unreachable_server(unused_port: int) -> None:
    host = f"http://127.0.0.1:{unused_port}"
    with pytest.raises(ConfigError, match=rf"/tokenize at {host}: .*--tokenizer PATH"):
        server_counter(host)


def test_estimate_counter() -> None:
    counter = EstimateCounter()
    assert counter.source == "estimate"
    assert counter.description == "estimate: 4 characters per token"
    assert counter.count("abcd" * 10) == 10
    assert counter.count("abc") == 1 and counter.count("") == 0


def test_server_counter_counts_its_calls_and_reads_token_strings(
    served: ServerCounter, tokenizer_json: Path
) -> None:
    assert served.calls == 1, "server_counter's check that the route exists"
    assert served.max_model_len == 4096, "from the answer"
    ids, strs = served.pieces("one two three")
    assert len(ids) == 3 and strs is None, "the mock gives no token strings"
    served.count("x")
    assert served.calls == 3
    client = TokenizeClient(Tokenizer.from_file(str(tokenizer_json)), max_model_len=64)
    counter = ServerCounter(client)
    ids, strs = counter.pieces("the quick brown fox")
    assert strs is not None and len(strs) == len(ids) > 4
    assert "".join(strs) == "theĠquickĠbrownĠfox", "byte-level BPE writes a space as Ġ"
    assert counter.tokenize("the quick brown fox") == ids and counter.calls == 2
    with pytest.raises(ConfigError, match=r"HTTP 400.*maximum context length is 64"):
        counter.count("word " * 100)
    assert counter.calls == 3 and counter.max_model_len == 64, "a failed call counts too"


def test_replies_are_counted_only_by_a_local_tokenizer(tmp_path: Path) -> None:
    """A server's /tokenize would add a request per request to the server being measured:
    replies are counted by the workload's local tokenizer, --tokenizer's, or an in-process
    model's, and by nothing else."""
    model = tmp_path / "model"
    build_tokenizer(model)
    local = load_tokenizer(model)
    assert output_counter("", prompts=local) is local
    assert output_counter("server", prompts=EstimateCounter()) is None
    assert output_counter("estimate", model_dirs=[str(model)]) is None
    assert output_counter("", prompts=EstimateCounter()) is None
    named = output_counter(str(model))
    assert named is not None and named.count("hello world") == local.count("hello world")
    assert "_single_token_texts" in vars(named), "built at test start, not in a request"
    found = output_counter("auto", model_dirs=["", str(tmp_path / "none"), str(model)])
    assert found is not None and found.source == "tokenizer"
