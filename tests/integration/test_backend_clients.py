"""Each backend client used alone, outside a load test, against the mock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sagellm_users import (
    FeatureUnavailable,
    GenerationRequest,
    LMDeployClient,
    OpenAIClient,
    SageLLMClient,
    VLLMClient,
    create_client,
)
from sagellm_users._errors import ConfigError
from sagellm_users.mock_server import MockServerProcess


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with MockServerProcess(["--ttft-ms", "2", "--tbt-ms", "1", "--model", "m"]) as mock:
        assert mock.url is not None
        yield mock.url


def chat(max_tokens: int = 4, **kw: object) -> GenerationRequest:
    return GenerationRequest(
        model="m",
        prompt="a b c",
        max_tokens=max_tokens,
        ignore_eos=True,
        **kw,  # type: ignore[arg-type]
    )


def test_vllm_extras(url: str) -> None:
    with VLLMClient(url) as client:
        assert client.tokenize(prompt="one two three") == client.tokenize(prompt="one two three")
        assert len(client.tokenize(prompt="one two three", model="m")) == 3
        messages = [{"role": "user", "content": "x y"}]
        assert len(client.tokenize(messages=messages)) == 2 + 4
        assert client.version() is not None and "sagellm-mock" in client.version()  # type: ignore[operator]
        before = client.server_metrics()
        assert client.generate(chat(min_tokens=2)).ok
        after = client.server_metrics()
    assert after.counters["requests"] == before.counters["requests"] + 1
    assert after.counters["generation_tokens"] - before.counters["generation_tokens"] == 4


def test_missing_optional_routes_are_one_clear_message(url: str) -> None:
    with VLLMClient(url + "/not-vllm") as client:
        with pytest.raises(FeatureUnavailable, match=r"/tokenize answered 404.*not vLLM"):
            client.tokenize(prompt="x")
        with pytest.raises(FeatureUnavailable, match=r"/metrics answered 404"):
            client.server_metrics()
        assert client.version() is None  # a missing /version just leaves it out


def test_lmdeploy_generate_and_openai_routes(url: str) -> None:
    with LMDeployClient(url) as client:
        native = client.generate(chat(api="generate"))
        openai = client.generate(chat(api="chat"))
    assert native.ok and native.chunks == 4 and native.usage is not None
    assert native.usage.completion_tokens == 4 and native.usage.prompt_tokens == 3
    assert native.finish_reason == "length"
    assert openai.ok and openai.chunks == 4


def test_generate_is_lmdeploys_alone(url: str) -> None:
    with OpenAIClient(url) as client, pytest.raises(ConfigError, match="no 'generate' API"):
        client.stream(chat(api="generate"))


def test_sagellm_discovers_models_from_info(url: str) -> None:
    with SageLLMClient(url) as client:
        assert client.list_models() == ["m"]
        assert client.info()["models"][0]["id"] == "m"


def test_a_request_without_a_model_asks_for_the_servers_first_model_once(url: str) -> None:
    """README's "Every client alone" example: no model given. The client asks the server's
    model list once (as the Locust path does) instead of sending ``"model": ""``, which
    every server answers with 404."""
    requests = [GenerationRequest(prompt=f"Count to {n}", max_tokens=3) for n in range(6)]
    with VLLMClient(url) as client:
        results = client.generate_batch(requests, max_concurrent=3)
        assert client.default_model() == "m"
    assert all(r.ok and r.usage is not None for r in results), [r.error for r in results]
    assert all(request.model == "" for request in requests), "the caller's requests untouched"
    with VLLMClient(url, model="pinned") as client:
        assert client.default_model() == "pinned"
        [failed] = client.generate_batch([GenerationRequest(prompt="x", max_tokens=2)])
    assert failed.error_class == "HTTPStatusError" and "pinned" in (failed.error or "")


def test_batch_keeps_order_returns_failures_and_runs_concurrently(url: str) -> None:
    requests = [chat(max_tokens=n) for n in (3, 1, 5, 2, 4, 6)]
    requests.insert(2, GenerationRequest(model="missing", prompt="x", max_tokens=2))
    with create_client("vllm", url) as client:
        results = client.generate_batch(requests, max_concurrent=7)
        pool = client.pool()
    assert [r.usage.completion_tokens if r.usage else None for r in results] == [
        3, 1, None, 5, 2, 4, 6
    ]  # fmt: skip
    failed = results[2]
    assert not failed.ok and failed.error_class == "HTTPStatusError"
    assert "does not exist" in (failed.error or "")
    assert all(r.ok for i, r in enumerate(results) if i != 2)
    assert pool["opened"] == 7 and pool["in_use"] == 0, "seven requests in flight at once"


def test_batch_timeout_fails_only_the_slow_request() -> None:
    with MockServerProcess(["--ttft-ms", "2000", "--tbt-ms", "1", "--model", "m"]) as mock:
        assert mock.url is not None
        with OpenAIClient(mock.url) as client:
            results = client.generate_batch([chat()], timeout=0.05)
            state = client.pool()
    assert results[0].error_class == "TotalTimeout" and "0.05 s" in (results[0].error or "")
    assert state["in_use"] == 0  # the timed-out connection was given back (closed)


def test_batch_rejects_bad_arguments(url: str) -> None:
    with OpenAIClient(url) as client:
        with pytest.raises(ConfigError, match="max_concurrent"):
            client.generate_batch([], max_concurrent=0)
        with pytest.raises(ConfigError, match="timeout"):
            client.generate_batch([], timeout=0)


def test_health_check_reports_pool_and_version(url: str) -> None:
    with VLLMClient(url, eager_connections=2) as client:
        assert client.pool()["idle"] == 2  # opened up front
        health = client.health_check()
    assert health.healthy and health.models == ["m"] and health.version is not None
    assert health.pool["opened"] >= 2 and health.pool["max_idle"] == 256
    assert health.latency_ms is not None and health.latency_ms > 0


def test_idle_connections_are_capped(url: str) -> None:
    with OpenAIClient(url, max_idle=2) as client:
        client.generate_batch([chat() for _ in range(5)], max_concurrent=5)
        state = client.pool()
    assert state["opened"] == 5 and state["idle"] == 2 and state["in_use"] == 0
