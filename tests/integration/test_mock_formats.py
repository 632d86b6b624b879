"""The mock speaks every backend's dialect: vLLM's /tokenize, /version and histograms,
LMDeploy's /generate and its usage-null streams, and a sageLLM gateway's /info."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from sagellm_users._metrics.server import parse_vllm_metrics
from sagellm_users.mock_server import MockServerProcess
from tests.mock_http import call, stream_all

GENERATE = "/generate"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with MockServerProcess(["--ttft-ms", "5", "--tbt-ms", "2", "--model", "m"]) as mock:
        assert mock.url is not None
        yield mock.url


def _json(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, _headers, data = call(url, method, path, body)
    return status, orjson.loads(data)


def test_tokenize_counts_what_generation_counts(url: str) -> None:
    status, doc = _json(url, "POST", "/tokenize", {"prompt": "one two  three"})
    assert status == 200
    assert doc["count"] == 3 == len(doc["tokens"]) and doc["max_model_len"] == 4096
    assert doc["token_strs"] is None
    _, again = _json(url, "POST", "/tokenize", {"prompt": "one two three"})
    assert again["tokens"] == doc["tokens"]  # stable ids, whitespace runs do not matter
    messages = [{"role": "user", "content": "a b"}, {"role": "user", "content": "c"}]
    _, chat = _json(url, "POST", "/tokenize", {"messages": messages, "model": "m"})
    _, body = _json(url, "POST", "/v1/chat/completions", {"messages": messages, "max_tokens": 1})
    assert chat["count"] == 3 + 2 * 4 == body["usage"]["prompt_tokens"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({}, 400, "'prompt'"),
        ({"prompt": "x", "model": "other"}, 404, "does not exist"),
        (b"{not json", 400, "JSON decode error"),
    ],
)
def test_tokenize_rejects_bad_requests(url: str, body: Any, status: int, needle: str) -> None:
    got, doc = _json(url, "POST", "/tokenize", body)
    assert got == status and needle in doc["error"]["message"]


def test_version_and_info(url: str) -> None:
    status, version = _json(url, "GET", "/version")
    assert status == 200 and "sagellm-mock" in version["version"]
    status, info = _json(url, "GET", "/info")
    assert status == 200 and info["models"] == [{"id": "m", "max_model_len": 4096}]


def test_generate_streams_lmdeploy_events(url: str) -> None:
    body = {"prompt": "a b c", "max_tokens": 4, "stream": True, "ignore_eos": True}
    events = stream_all(url, GENERATE, body)
    assert events[-1] == "[DONE]"
    *tokens, final = events[:-1]
    assert len(tokens) == 4
    for n, event in enumerate(tokens, 1):
        assert list(event) == ["text", "output_ids", "meta_info"]
        assert len(event["output_ids"]) == 1
        meta = event["meta_info"]
        assert meta["prompt_tokens"] == 3 and meta["completion_tokens"] == n
        assert meta["finish_reason"] is None
    # As LMDeploy's engine does, an event of its own ends the generation.
    assert (final["text"], final["output_ids"]) == ("", [])
    assert final["meta_info"]["completion_tokens"] == 4
    assert final["meta_info"]["finish_reason"] == {"type": "length"}


def test_generate_without_stream_and_with_input_ids(url: str) -> None:
    status, doc = _json(url, "POST", GENERATE, {"input_ids": [5, 6], "max_tokens": 3})
    assert status == 200
    assert len(doc["output_ids"]) == 3 and doc["text"].count(" ") == 3
    assert doc["meta_info"]["prompt_tokens"] == 2
    assert doc["meta_info"]["completion_tokens"] == 3
    assert doc["meta_info"]["finish_reason"] == {"type": "length"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"max_tokens": 3}, "exactly one of prompt or input_ids"),
        ({"prompt": "x", "input_ids": [1]}, "exactly one of prompt or input_ids"),
        ({"prompt": ""}, "must not be an empty string"),
        ({"prompt": "x", "max_tokens": 0}, "must be a positive integer"),
    ],
)
def test_generate_errors_use_lmdeploy_error_response(
    url: str, body: dict[str, Any], needle: str
) -> None:
    status, doc = _json(url, "POST", GENERATE, body)
    assert status == 400
    assert doc["object"] == "error" and doc["code"] == 400 and needle in doc["message"]


def test_usage_null_streams_carry_no_counts() -> None:
    with MockServerProcess(["--ttft-ms", "1", "--tbt-ms", "1", "--stream-usage-null"]) as mock:
        assert mock.url is not None
        body = {"prompt": "x", "max_tokens": 3, "stream": True, "ignore_eos": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        events = stream_all(mock.url, "/v1/completions", body)
    assert events[-1] == "[DONE]" and len(events) == 4  # three tokens, no usage chunk
    assert all(e["usage"] is None for e in events[:-1])


def test_metrics_histograms_hold_what_was_served(url: str) -> None:
    before = parse_vllm_metrics(call(url, "GET", "/metrics")[2].decode(), 0.0)
    for _ in range(3):
        stream_all(url, GENERATE, {"prompt": "a", "max_tokens": 5, "stream": True,
                                   "ignore_eos": True})  # fmt: skip
    after = parse_vllm_metrics(call(url, "GET", "/metrics")[2].decode(), 1.0)
    ttft = after.histograms["ttft"].minus(before.histograms["ttft"])
    itl = after.histograms["itl"].minus(before.histograms["itl"])
    assert ttft.count == 3 and itl.count == 3 * 4
    assert itl.mean == pytest.approx(0.002)
    assert ttft.mean is not None and 0.005 <= ttft.mean < 0.1
    requests = after.counters["requests"] - before.counters["requests"]
    tokens = after.counters["generation_tokens"] - before.counters["generation_tokens"]
    assert (requests, tokens) == (3, 15)
