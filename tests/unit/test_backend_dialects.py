"""Wire dialects of the backends, options that choose them, and comparison specs."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_users._backends import GenerationRequest, LMDeployClient, OpenAIClient
from sagellm_users._backends.lmdeploy import build_generate_payload, parse_generate_event
from sagellm_users._backends.sagellm import SageLLMClient, models_from_info
from sagellm_users._errors import ConfigError, MalformedEventError, ServerErrorEvent
from sagellm_users._users.compare import compare_users
from sagellm_users._users.options import LLMOptions
from tests.locust_harness import parse_args

EVENT = (
    b'{"text":" hi","output_ids":[7],"meta_info":{"prompt_tokens":4,"completion_tokens":2,'
    b'"finish_reason":null,"output_token_logprobs":null}}'
)


def test_generate_event_carries_text_and_running_counts() -> None:
    chunk = parse_generate_event(EVENT, 1.5)
    assert (chunk.t, chunk.text, chunk.has_output) == (1.5, " hi", True)
    assert chunk.usage is not None and (
        chunk.usage.prompt_tokens,
        chunk.usage.completion_tokens,
    ) == (4, 2)
    final = parse_generate_event(EVENT.replace(b"null,", b'{"type":"stop"},', 1), 2.0)
    assert final.finish_reason == "stop"
    assert chunk.step and final.step


def test_generate_events_without_a_token_are_no_decode_steps() -> None:
    # LMDeploy strips the EOS token: the step that produced it and the final event carry
    # no text and no ids, and completion_tokens does not count EOS.
    eos_step = EVENT.replace(b'" hi"', b'""').replace(b"[7]", b"[]")
    final = eos_step.replace(b"null,", b'{"type":"stop"},', 1)
    for data in (eos_step, final):
        chunk = parse_generate_event(data, 3.0)
        assert not chunk.step and not chunk.has_output


@pytest.mark.parametrize(
    ("data", "error", "needle"),
    [
        (EVENT.replace(b"null,", b'{"type":"error"},', 1), ServerErrorEvent, "'error'"),
        (b'{"object":"error","message":"bad","code":400}', ServerErrorEvent, "bad"),
        (b'{"choices":[]}', MalformedEventError, "not an LMDeploy /generate event"),
        (b"[1]", MalformedEventError, "not a JSON object"),
        (b"{", MalformedEventError, "not JSON"),
    ],
)
def test_generate_event_errors(data: bytes, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        parse_generate_event(data, 0.0)


def test_generate_payload_is_plain_text_with_extras_last() -> None:
    request = GenerationRequest(
        messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        max_tokens=9,
        ignore_eos=True,
        extra_body={"top_k": 5, "max_tokens": 3},
    )
    payload = build_generate_payload(request)
    assert payload == {"prompt": "a\nb", "stream": True, "max_tokens": 3, "ignore_eos": True,
                       "top_k": 5}  # fmt: skip


def test_min_tokens_uses_each_servers_name() -> None:
    request = GenerationRequest(prompt="x", min_tokens=4)
    assert OpenAIClient("http://127.0.0.1:9").build_payload(request)["min_tokens"] == 4
    assert LMDeployClient("http://127.0.0.1:9").build_payload(request)["min_new_tokens"] == 4


GATEWAY_INFO: dict[str, Any] = {  # what `sagellm serve` 0.5.4 answers, cut short
    "service": "sageLLM Gateway",
    "state": "ready",
    "registered_engines": [
        {"engine_id": "engine-cpu-1", "model_id": "/models/tiny", "state": "READY"},
        {"engine_id": "engine-cpu-2", "model_id": "/models/other", "state": "READY"},
        {"engine_id": "engine-cpu-3", "model_id": "/models/tiny", "state": "READY"},
    ],
    "primary_engine": {"engine_id": "engine-cpu-1", "model_id": "/models/tiny"},
    "model_path": "/models/tiny",
}


def test_the_gateway_names_its_version_beside_its_service() -> None:
    root = b'{"service":"sageLLM Gateway","version":"0.1.0","endpoints":{"info":"/info"}}'
    assert SageLLMClient.VERSION_ROUTE == "/"
    assert SageLLMClient.version_from(200, root) == "sageLLM Gateway 0.1.0"
    assert SageLLMClient.version_from(200, b'{"version":"0.2"}') == "0.2"
    assert SageLLMClient.version_from(404, b'{"detail":"Not Found"}') is None


@pytest.mark.parametrize(
    ("info", "models"),
    [
        ({"models": ["a", "b"]}, ["a", "b"]),
        ({"models": [{"id": "a"}, {"name": "b"}, 3]}, ["a", "b"]),
        ({"data": [{"id": "a"}]}, ["a"]),
        ({"model": "a"}, ["a"]),
        ({"model_name": "a"}, ["a"]),
        ({"status": "ok"}, []),
        (GATEWAY_INFO, ["/models/tiny", "/models/other"]),
    ],
)
def test_models_from_info_shapes(info: dict[str, Any], models: list[str]) -> None:
    assert models_from_info(info) == models


def test_compare_spec_builds_weighted_pinned_users() -> None:
    users = compare_users("vllm=http://a:1, lmdeploy:3=http://b:2")
    assert [(u.backend, u.api, u.weight, u.host, u.label) for u in users] == [
        ("vllm", "chat", 1, "http://a:1", "vllm@a:1"),
        ("lmdeploy", "generate", 3, "http://b:2", "lmdeploy@b:2"),
    ]
    assert all(not u.abstract for u in users)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("tgi=http://a", "BACKEND one of lmdeploy, openai, sagellm, vllm"),
        ("vllm", "expected BACKEND"),
        ("vllm:0=http://a", "WEIGHT"),
        ("vllm:x=http://a", "WEIGHT"),
        (" , ", "names no backend"),
    ],
)
def test_compare_spec_errors(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        compare_users(spec)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backend", "tgi"], "--backend: unknown backend 'tgi'; choose one of lmdeploy, "),
        (["--min-tokens", "200"], "--min-tokens 200 is more than --max-tokens 128"),
        (["--min-tokens", "-1"], "--min-tokens"),
        (["--server-metrics-interval", "-1"], "--server-metrics-interval"),
    ],
)
def test_backend_options_are_validated(args: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        LLMOptions.from_namespace(parse_args(args))
