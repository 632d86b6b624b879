"""The Responses and Messages users against the mock, which speaks both as vLLM 0.32 does:
what they measure, what the plugin refuses before load, and the asyncio client alike."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from locust import User

from sagellm_users import (
    AnthropicMessagesUser,
    AsyncClient,
    GenerationRequest,
    OpenAIResponsesUser,
    VLLMMessagesUser,
    VLLMResponsesUser,
)
from sagellm_users._metrics import RequestRecord
from sagellm_users.mock_server import MockServerProcess
from tests.integration.test_config_checks import HOST, _refusal
from tests.locust_harness import LocalRun

# No held-back text: every token but EOS is an event these routes send.
MOCK = ["--ttft-ms", "5", "--tbt-ms", "2", "--held-back-rate", "0"]


@pytest.fixture(scope="module")
def mock() -> Iterator[str]:
    with MockServerProcess(MOCK) as server:
        assert server.url is not None
        yield server.url


def _run(user: type[User], url: str, *extra: str, requests: int = 12) -> list[RequestRecord]:
    run = LocalRun([user], ["--host", url, "--max-tokens", "8", *extra])
    records = run.run_until(requests=requests, users=3)
    assert not [r for r in records if r.status == "error"], [r.error_message for r in records]
    ok = [r for r in records if r.ok]
    assert len(ok) >= requests
    return ok


@pytest.mark.parametrize(
    ("user", "backend"), [(OpenAIResponsesUser, "openai"), (VLLMResponsesUser, "vllm")]
)
def test_a_responses_user_gets_the_tokens_it_asked_one_step_each(
    mock: str, user: type[User], backend: str
) -> None:
    ok = _run(user, mock, "--ignore-eos")
    assert {r.backend for r in ok} == {backend} and {r.name for r in ok} == {"/v1/responses"}
    for r in ok:
        assert r.output_tokens == 8 and r.output_tokens_source == "usage"
        assert len(r.t_out) == 8 and r.finish_reason == "length"
        assert r.ttft is not None and r.t_done is not None and r.t_done >= r.t_out[-1]
        assert r.response_id is not None and r.response_id.startswith("resp_")
        assert r.usage_prompt_tokens is not None and r.usage_prompt_tokens > 0


@pytest.mark.parametrize(
    ("user", "backend"), [(AnthropicMessagesUser, "openai"), (VLLMMessagesUser, "vllm")]
)
def test_a_messages_user_counts_usage_and_a_step_per_token_with_text(
    mock: str, user: type[User], backend: str
) -> None:
    ok = _run(user, mock)
    assert {r.backend for r in ok} == {backend} and {r.name for r in ok} == {"/v1/messages"}
    for r in ok:
        assert 1 <= r.output_tokens <= 8 and r.output_tokens_source == "usage"
        assert r.finish_reason in ("stop", "length")
        # The EOS step has no text, and vLLM's /v1/messages sends no event for it.
        assert len(r.t_out) == r.output_tokens - (r.finish_reason == "stop")
        assert r.response_id is not None and r.response_id.startswith("chatcmpl-")


@pytest.mark.parametrize("user", [OpenAIResponsesUser, AnthropicMessagesUser])
def test_a_reasoning_model_streams_its_reasoning_first(user: type[User]) -> None:
    with MockServerProcess([*MOCK, "--reasoning-tokens", "3"]) as server:
        assert server.url is not None
        ok = _run(user, server.url, "--max-tokens", "8", requests=6)
    for r in ok:
        assert r.reasoning_steps == 3, "the first three tokens, as reasoning events"
        if user is OpenAIResponsesUser:
            assert r.usage_reasoning_tokens == 3


def test_non_streamed_answers_are_read_whole(mock: str) -> None:
    for user in (OpenAIResponsesUser, AnthropicMessagesUser):
        ok = _run(user, mock, "--no-stream", requests=6)
        assert all(r.output_tokens >= 1 and not r.stream for r in ok)


@pytest.mark.parametrize(
    ("fault", "error_class"), [("stream", "ServerErrorEvent"), ("no-usage", "MissingDoneError")]
)
@pytest.mark.parametrize("user", [OpenAIResponsesUser, AnthropicMessagesUser])
def test_a_stream_that_fails_or_never_ends_fails_the_request(
    user: type[User], fault: str, error_class: str
) -> None:
    """An error event fails the request; a body that ends before the API's last event is
    unfinished, as a chat stream without [DONE] is."""
    with MockServerProcess([*MOCK, f"--error-rate-{fault}", "1"]) as server:
        run = LocalRun([user], ["--host", str(server.url), "--max-tokens", "8"])
        records = run.run_until(requests=4, users=2)
    failed = [r for r in records if r.status == "error"]
    assert len(failed) >= 4 and {r.error_class for r in failed} == {error_class}


def test_the_asyncio_client_speaks_both(mock: str) -> None:
    async def measure() -> list[RequestRecord]:
        async with AsyncClient(mock, backend="vllm") as client:
            return [
                await client.measure(GenerationRequest(api=api, prompt="Hi", max_tokens=6))
                for api in ("responses", "messages")
            ]

    responses, messages = asyncio.run(measure())
    assert responses.ok and responses.name == "/v1/responses" and responses.output_tokens == 6
    assert messages.ok and messages.name == "/v1/messages" and messages.output_tokens >= 1


@pytest.mark.parametrize(
    ("user", "args", "line"),
    [
        (
            AnthropicMessagesUser,
            ["--ignore-eos"],
            "sagellm: --ignore-eos: AnthropicMessagesUser sends the 'messages' API, and the "
            "Messages API has no ignore_eos (vLLM's /v1/messages drops it); drop --ignore-eos, "
            "or use a user of the chat API (VLLMUser) for it",
        ),
        (
            VLLMResponsesUser,
            ["--min-tokens", "2"],
            "sagellm: --min-tokens: VLLMResponsesUser sends the 'responses' API, and vLLM's "
            "/v1/responses has no min_tokens (it drops the field); drop --min-tokens, or use "
            "a user of the chat API (VLLMUser) for it",
        ),
        (
            OpenAIResponsesUser,
            ["--backend", "lmdeploy"],
            "sagellm: OpenAIResponsesUser: the lmdeploy backend has no 'responses' API; choose "
            "one of chat, completions, generate, or a backend that has it (--backend)",
        ),
        (
            AnthropicMessagesUser,
            ["--backend", "sagellm"],
            "sagellm: AnthropicMessagesUser: the sagellm backend has no 'messages' API; choose "
            "one of chat, completions, or a backend that has it (--backend)",
        ),
    ],
)
def test_what_cannot_work_is_refused_before_load(
    user: type[User], args: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _refusal([*HOST, *args], capsys, user=user)
    assert code == 1 and lines == [line]


def test_sagellms_gateway_dialect_serves_neither_route() -> None:
    with MockServerProcess(["--dialect", "sagellm-gateway"]) as server:
        for path in ("/v1/responses", "/v1/messages"):
            request = urllib.request.Request(f"{server.url}{path}", b"{}", method="POST")
            with pytest.raises(urllib.error.HTTPError) as answered:
                urllib.request.urlopen(request, timeout=10)
            assert answered.value.code == 404
