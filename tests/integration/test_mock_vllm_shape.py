"""The mock streams as a real vLLM does by default, held against streams captured from one.

What a real vLLM 0.32 sends (tests/vllm_wire.py): a request that does not ignore EOS stops
on it, the EOS token being an empty chunk with ``finish_reason: "stop"`` that usage counts;
some tokens mid-stream carry empty text (held back); the chat stream opens with a role
chunk. A mock that skipped those would let the client's metrics pass on streams no real
server sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from sagellm_users.mock_server import MockServerProcess
from tests.mock_http import stream_all
from tests.vllm_wire import CHAT_EOS, COMPLETIONS_EOS

CHAT = "/v1/chat/completions"
CMPL = "/v1/completions"
USAGE = {"include_usage": True}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """The mock with its defaults, only faster."""
    with MockServerProcess(["--ttft-ms", "2", "--tbt-ms", "0.2"]) as mock:
        assert mock.url is not None
        yield mock.url


def _keys(event: dict[str, Any]) -> tuple[object, ...]:
    """The shape of an event: its keys in order, and those of its choice and delta."""
    choice = event["choices"][0] if event["choices"] else {}
    delta = choice.get("delta", {})
    return (tuple(event), tuple(choice), tuple(delta))


def _captured(events: tuple[bytes, ...]) -> list[dict[str, Any]]:
    return [orjson.loads(e) for e in events]


def test_chat_stops_on_eos_in_vllms_exact_shape(url: str) -> None:
    body = {"model": "mock-llm", "messages": [{"role": "user", "content": "hi"}]}
    events = stream_all(url, CHAT, {**body, "stream": True, "stream_options": USAGE})
    *chunks, usage, done = events
    assert done == "[DONE]"
    role, first, *middle, eos = chunks
    real = _captured(CHAT_EOS)
    assert _keys(role) == _keys(real[0])
    assert _keys(first) == _keys(real[1])
    assert _keys(eos) == _keys(real[-2])
    assert tuple(usage) == tuple(real[-1])
    assert tuple(usage["usage"]) == tuple(real[-1]["usage"])
    assert eos["choices"][0]["delta"] == {"content": ""}
    assert eos["choices"][0]["finish_reason"] == "stop"
    steps = 1 + len(middle) + 1
    assert usage["usage"]["completion_tokens"] == steps, "usage counts the EOS step"
    assert 8 <= steps <= 64, "the default natural length"


def test_completions_stop_on_eos_in_vllms_exact_shape(url: str) -> None:
    body = {"model": "mock-llm", "prompt": "hi", "max_tokens": 200}
    events = stream_all(url, CMPL, {**body, "stream": True, "stream_options": USAGE})
    *chunks, usage, _done = events
    real = _captured(COMPLETIONS_EOS)
    assert [_keys(c) for c in (chunks[0], chunks[-1], usage)] == [
        _keys(real[0]),
        _keys(real[-2]),
        _keys(real[-1]),
    ]
    assert chunks[-1]["choices"][0]["text"] == ""
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage["usage"]["completion_tokens"] == len(chunks)


def test_natural_length_min_tokens_and_ignore_eos_follow_vllm() -> None:
    args = ["--ttft-ms", "1", "--tbt-ms", "0.1", "--natural-output-tokens", "6"]
    with MockServerProcess(args) as mock:
        assert mock.url is not None

        def finish(**extra: Any) -> tuple[int, str, str]:
            body = {"prompt": "x", "max_tokens": 20, "stream": True, "stream_options": USAGE}
            *chunks, usage, _done = stream_all(mock.url or "", CMPL, {**body, **extra})
            last = chunks[-1]["choices"][0]
            assert usage["usage"]["completion_tokens"] == len(chunks)
            return len(chunks), last["finish_reason"], last["text"]

        assert finish() == (6, "stop", "")
        # vLLM keeps EOS out for min_tokens tokens: min_tokens 9 stops on token 10.
        assert finish(min_tokens=9) == (10, "stop", "")
        ignored = finish(ignore_eos=True)
        assert ignored[:2] == (20, "length") and ignored[2] != ""
        assert finish(max_tokens=4)[:2] == (4, "length")
        assert finish(max_tokens=6) == (6, "stop", ""), "EOS as the last allowed token"


def test_held_back_tokens_are_empty_chunks_counted_by_usage() -> None:
    args = ["--ttft-ms", "1", "--tbt-ms", "0.1", "--held-back-rate", "0.1", "--seed", "3"]
    with MockServerProcess(args) as mock:
        assert mock.url is not None
        body = {"prompt": "x", "max_tokens": 400, "ignore_eos": True, "stream": True}
        *chunks, usage, _done = stream_all(mock.url, CMPL, {**body, "stream_options": USAGE})
    texts = [c["choices"][0]["text"] for c in chunks]
    assert usage["usage"]["completion_tokens"] == len(texts) == 400
    held = [i for i, text in enumerate(texts) if text == ""]
    assert 20 <= len(held) <= 60, f"{len(held)} held back of 400 at a rate of 0.1"
    assert 399 not in held, "the last token carries text"
    assert all(not texts[i + 1].isascii() for i in held), "the next token completes it"


def test_held_back_rate_zero_and_natural_length_off() -> None:
    args = ["--ttft-ms", "1", "--tbt-ms", "0.1", "--held-back-rate", "0"]
    with MockServerProcess([*args, "--natural-output-tokens", "off"]) as mock:
        assert mock.url is not None
        body = {"prompt": "x", "max_tokens": 300, "stream": True}
        *chunks, _done = stream_all(mock.url, CMPL, body)
    assert len(chunks) == 300 and chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["choices"][0]["text"] for c in chunks)


def test_generate_strips_eos_as_lmdeploy_does(url: str) -> None:
    body = {"prompt": "x", "max_tokens": 200, "stream": True}
    *events, done = stream_all(url, "/generate", body)
    assert done == "[DONE]"
    *tokens, eos_step, final = events
    assert all(e["output_ids"] for e in tokens), "every token event carries its id"
    assert eos_step["text"] == "" and eos_step["output_ids"] == []
    assert eos_step["meta_info"]["finish_reason"] is None
    assert final["text"] == "" and final["output_ids"] == []
    assert final["meta_info"]["finish_reason"] == {"type": "stop"}
    assert final["meta_info"]["completion_tokens"] == len(tokens), "EOS is not counted"
    length = stream_all(url, "/generate", {**body, "ignore_eos": True, "max_tokens": 5})
    *tokens, final, _done = length
    assert len(tokens) == 5 and all(t["output_ids"] for t in tokens)
    assert final["output_ids"] == [] and final["meta_info"]["finish_reason"] == {"type": "length"}
    assert final["meta_info"]["completion_tokens"] == 5
