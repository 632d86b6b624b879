"""Every backend's User against the mock in that backend's format, with the server view."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from locust import User

from sagellm_users import (
    LMDeployGenerateUser,
    LMDeployUser,
    OpenAIChatUser,
    SageLLMUser,
    VLLMCompletionsUser,
    VLLMUser,
)
from sagellm_users._report.writers import render_markdown
from sagellm_users._users.compare import compare_users
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun


@pytest.fixture(scope="module")
def fast_mock() -> Iterator[str]:
    with MockServerProcess(["--ttft-ms", "5", "--tbt-ms", "2"]) as mock:
        assert mock.url is not None
        yield mock.url


def _run(users: list[type[User]], url: str, *extra: str, requests: int = 12) -> LocalRun:
    args = ["--host", url, "--max-tokens", "8", "--server-metrics-interval", "0.05", *extra]
    run = LocalRun(users, args)
    run.run_until(requests=requests, users=3)
    return run


@pytest.mark.parametrize(
    ("user", "backend", "path"),
    [
        (VLLMUser, "vllm", "/v1/chat/completions"),
        (VLLMCompletionsUser, "vllm", "/v1/completions"),
        (LMDeployUser, "lmdeploy", "/v1/chat/completions"),
        (LMDeployGenerateUser, "lmdeploy", "/generate"),
        (SageLLMUser, "sagellm", "/v1/chat/completions"),
    ],
)
def test_each_user_streams_its_backend_format(
    fast_mock: str, user: type[User], backend: str, path: str
) -> None:
    run = _run([user], fast_mock, "--ignore-eos")
    ok = [r for r in run.records if r.ok]
    assert len(ok) >= 12 and not [r for r in run.records if r.status == "error"]
    assert {r.backend for r in ok} == {backend} and {r.name for r in ok} == {path}
    assert all(r.output_tokens == 8 and r.output_tokens_source == "usage" for r in ok)
    assert all(len(r.t_out) == 8 for r in ok)
    if path == "/generate":  # every event carries the running token count
        assert all(r.tokens_per_chunk == [1] * 8 for r in ok)


def test_the_report_holds_the_server_view_and_its_counts_match(fast_mock: str) -> None:
    run = _run([VLLMUser], fast_mock, "--ignore-eos", requests=20)
    report = run.runtime.final_report
    assert report is not None and len(report.server) == 1
    server = report.server[0]
    assert server.host == fast_mock and server.version is not None
    assert "sagellm-mock" in server.version and server.scrapes >= 2
    completed, cancelled = report.total.completed, report.total.cancelled
    # A request the test stopped may have been sent whole before the client let go of it:
    # the server counts it finished, the client cancelled. None is lost the other way.
    assert server.requests is not None
    assert completed <= server.requests <= completed + cancelled
    assert server.generation_tokens is not None
    assert server.generation_tokens >= report.total.total_output_tokens
    assert server.ttft_ms is not None and server.ttft_ms.count == completed
    assert server.itl_ms is not None and server.itl_ms.mean is not None
    assert server.itl_ms.mean == pytest.approx(2.0, abs=0.01)
    p50 = server.itl_ms.percentiles["p50"]  # every gap is in vLLM's first bucket, (0, 10 ms]
    assert p50 is not None and p50.kind == "at_most" and p50.upper is not None
    assert p50.upper <= 2 * server.itl_ms.mean * (1 + 1e-9), "not the bucket's middle, 5 ms"
    assert server.running is not None and server.running.peak <= 3
    assert cancelled <= 3


def test_usage_null_servers_fall_back_to_an_estimate_flagged_as_such() -> None:
    with MockServerProcess(["--ttft-ms", "2", "--tbt-ms", "1", "--stream-usage-null"]) as mock:
        assert mock.url is not None
        run = _run([LMDeployUser], mock.url, "--ignore-eos")
    ok = [r for r in run.records if r.ok]
    assert ok and all(r.output_tokens_source == "estimate" for r in ok)
    assert all(r.output_tokens == 8 for r in ok)  # one token per chunk on this server
    report = run.runtime.final_report
    assert report is not None and report.total.token_provenance.output_estimated == len(ok)


def test_backend_option_sets_the_client_of_unpinned_users(fast_mock: str) -> None:
    run = _run([OpenAIChatUser], fast_mock, "--backend", "sagellm")
    assert {r.backend for r in run.records} == {"sagellm"}


def test_compare_reports_each_backend_on_its_own_rows(fast_mock: str) -> None:
    classes = compare_users(f"vllm={fast_mock},lmdeploy:2={fast_mock}")
    run = _run(list(classes), fast_mock, requests=30)
    report = run.runtime.final_report
    assert report is not None
    host = fast_mock.split("//", 1)[1]
    names = {block.name for block in report.by_name}
    assert names == {f"vllm@{host} /v1/chat/completions", f"lmdeploy@{host} /generate"}
    assert [s.host for s in report.server] == [fast_mock]  # one host, scraped once
    # The names people gave, in Locust's user counts and in every table and legend.
    assert [c.__name__ for c in classes] == [f"vllm@{host}", f"lmdeploy@{host}"]
    assert {block.user for block in report.by_user} == {f"vllm@{host}", f"lmdeploy@{host}"}
    markdown = render_markdown(report).decode()
    assert f"vllm@{host} /v1/chat/completions" in markdown
    assert f"vllm@{host} vllm@{host}" not in markdown and "User1" not in markdown


def test_compare_tells_two_entries_of_one_backend_and_host_apart() -> None:
    classes = compare_users("vllm=http://h:8000,vllm:3=http://h:8000,openai=")
    assert [c.__name__ for c in classes] == ["vllm@h:8000", "vllm@h:8000 #2", "openai@mock"]
    assert [c.weight for c in classes] == [1, 3, 1]


def test_min_tokens_with_lmdeploys_generate_route_stops_before_load(
    fast_mock: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        LocalRun([LMDeployGenerateUser], ["--host", fast_mock, "--min-tokens", "4"])
    assert "--min-tokens: LMDeployGenerateUser sends LMDeploy's native /generate" in (
        capsys.readouterr().err
    )
