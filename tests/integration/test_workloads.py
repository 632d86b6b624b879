"""Workloads under Locust's own runners against the mock: exact prompt lengths, open-loop
rate accuracy and lag, multi-turn sessions, and open loop across workers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from sagellm_users import GenerationRequest, OpenAIChatUser, OpenAICompletionsUser, RequestRecord
from sagellm_users._report.workload import render_arrivals
from sagellm_users._users import runtime_of
from sagellm_users._workloads import load_tokenizer
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun, start_cluster, wait_until
from tests.offline_tokenizer import build_tokenizer


class PromptKeepingUser(OpenAICompletionsUser):
    """Keeps every prompt it sends, to count it again after the run."""

    prompts: list[str] = []  # noqa: RUF012  # one list per test, reset by the test

    def build_request(self) -> GenerationRequest:
        request = super().build_request()
        assert request.prompt is not None
        type(self).prompts.append(request.prompt)
        return request


def test_prompts_have_exact_lengths_by_the_servers_tokenize(mock_url: str) -> None:
    run = LocalRun(
        [OpenAICompletionsUser],
        ["--host", mock_url, "--input-tokens", "37:91", "--max-tokens", "2", "--seed", "5"],
    )
    records = run.run_until(40, users=4)
    ok = [r for r in records if r.ok]
    assert len(ok) >= 40
    for record in ok:
        assert record.prompt_tokens is not None and 37 <= record.prompt_tokens <= 91
        # the mock counts a completion prompt exactly as its /tokenize does
        assert record.usage_prompt_tokens == record.prompt_tokens
    assert len({r.prompt_tokens for r in ok}) > 10, "lengths are drawn, not fixed"
    info = run.runtime.workload_info
    assert info is not None and info["token_source"] == "server"


def test_prompts_have_exact_lengths_by_a_local_tokenizer(mock_url: str, tmp_path: Path) -> None:
    tokenizer = build_tokenizer(tmp_path / "tok")
    PromptKeepingUser.prompts = []
    run = LocalRun(
        [PromptKeepingUser],
        [
            *("--host", mock_url, "--input-tokens", "300", "--max-tokens", "2"),
            *("--tokenizer", str(tokenizer.parent)),
        ],
    )
    records = run.run_until(20, users=2)
    counter = load_tokenizer(tokenizer)
    prompts = PromptKeepingUser.prompts
    assert len(prompts) >= 20 and len(set(prompts)) == len(prompts), "no prompt sent twice"
    assert {counter.count(p) for p in prompts} == {300}
    assert {r.prompt_tokens for r in records} == {300}
    assert runtime_of(run.environment).workload_info["token_source"] == "tokenizer"  # type: ignore[index]


def _rate_run(mock_url: str, users: int, rate: float, kind: str) -> LocalRun:
    return LocalRun(
        [OpenAIChatUser],
        [
            *("--host", mock_url, "--input-tokens", "16", "--max-tokens", "2"),
            *("--request-rate", str(rate), "--arrival", kind, "--seed", "9"),
        ],
    )


def test_open_loop_constant_rate_is_kept_within_two_percent(mock_url: str) -> None:
    run = _rate_run(mock_url, users=12, rate=50.0, kind="constant")
    records = run.run_until(150, users=12)
    stats = run.runtime.collector.arrivals
    assert stats.requests >= 150
    assert all(r.intended_wall is not None for r in records if r.status != "cancelled")
    assert stats.intended_rate == pytest.approx(50.0, rel=1e-6)
    assert stats.achieved_rate == pytest.approx(50.0, rel=0.02)
    lag = stats.lag.percentile(90)
    assert lag is not None and lag < 0.010, "12 slots for ~3 in flight: requests start on time"


def test_open_loop_poisson_follows_its_schedule(mock_url: str) -> None:
    run = _rate_run(mock_url, users=16, rate=60.0, kind="poisson")
    run.run_until(150, users=16)
    stats = run.runtime.collector.arrivals
    assert stats.intended_rate is not None and stats.achieved_rate is not None
    # The schedule's own sample is random (about 1/sqrt(150) around 60/s); the sends
    # follow that sample closely.
    assert stats.intended_rate == pytest.approx(60.0, rel=0.35)
    assert stats.achieved_rate == pytest.approx(stats.intended_rate, rel=0.02)


def test_an_overloaded_client_shows_its_lag(mock_url: str) -> None:
    # One in-flight slot; each request takes ~56 ms (40 ms TTFT + 2 tokens), so at most
    # ~18/s can start: the rest start late, and the report says so.
    run = _rate_run(mock_url, users=1, rate=100.0, kind="constant")
    run.run_until(25, users=1)
    report = run.runtime.final_report
    assert report is not None and report.arrivals is not None
    arrivals = report.arrivals
    assert arrivals.late >= 20
    assert arrivals.achieved_rate is not None and arrivals.achieved_rate < 25
    assert arrivals.lag_ms.max is not None and arrivals.lag_ms.max > 500
    text = render_arrivals(arrivals)
    assert "fell behind the schedule" in text and "target 100 req/s" in text


def test_multi_turn_sessions_grow_their_history(tmp_path: Path) -> None:
    workload = tmp_path / "chat.toml"
    workload.write_text(
        "input_tokens = 20\noutput_tokens = 3\n[session]\nturns = 3\ninput_tokens = 5\n",
        encoding="utf-8",
    )
    # Every token one word, so a reply of 3 tokens is 3 words of history: a held-back
    # token (empty text, its word carried by the next one) would make the reply a word
    # shorter than its token count, as a real server's text can be.
    mock = MockServerProcess(["--ttft-ms", "5", "--tbt-ms", "2", "--held-back-rate", "0"])
    url = mock.start()
    try:
        run = LocalRun([OpenAIChatUser], ["--host", url, "--workload", str(workload)])
        records = run.run_until(18, users=2)
    finally:
        mock.stop()
    sessions: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in records:
        if record.ok:
            assert record.session is not None
            sessions[record.session].append(record)
    complete = [s for s in sessions.values() if len(s) == 3]
    assert len(complete) >= 4
    for turns in complete:
        assert [r.turn for r in turns] == [1, 2, 3]
        prompt = [r.usage_prompt_tokens for r in turns]
        # mock chat counting: words + 4 per message; each turn adds the reply (3 tokens
        # of one-word pieces) and a 5-token question, 2 messages more
        assert prompt == [24, 24 + 3 + 5 + 8, 24 + 2 * (3 + 5 + 8)]
    report = run.runtime.final_report
    assert report is not None
    assert [t.turn for t in report.turns] == [1, 2, 3]
    assert report.turns[0].input_tokens.mean == 24


def test_workers_share_the_open_loop_rate(mock_url: str, fast_reports: None) -> None:
    args = ["--host", mock_url, "--input-tokens", "16", "--max-tokens", "2"]
    args += ["--request-rate", "40", "--arrival", "constant"]
    master_env, master, workers = start_cluster(args)
    master.start(8, spawn_rate=8)
    arrivals = runtime_of(master_env).collector.arrivals
    assert wait_until(lambda: arrivals.requests >= 100, timeout=30)
    master.quit()
    for worker in workers:
        worker.quit()
    plans = [runtime_of(w.environment).arrivals for w in workers]
    assert sorted(p.plan.rank for p in plans if p is not None and p.plan is not None) == [0, 1]
    assert all(p is not None and p.plan is not None and p.plan.share == 20.0 for p in plans)
    assert arrivals.intended_rate == pytest.approx(40.0, rel=0.01)
    assert arrivals.achieved_rate == pytest.approx(40.0, rel=0.03)
