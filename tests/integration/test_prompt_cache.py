"""Prompt caches: cached prompt tokens from usage, the hit share per workload, per shared-
prefix group and per conversation turn, beside the server's own prefix-cache hit rate.

The mock's prefix cache (``--prefix-cache-blocks``) is a truth here: it reports in usage
exactly what it counts in ``vllm:prefix_cache_hits``, so the client's totals must equal the
server's, and a cached prefix must shorten TTFT by its prefill time.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics.summary import render_summary
from sagellm_users._report.workload import render_workload_parts
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun

PREFILL_MS_PER_TOKEN = 0.5
MOCK = [
    "--ttft-ms", "5", "--tbt-ms", "1", "--held-back-rate", "0",
    "--ttft-per-input-token-ms", str(PREFILL_MS_PER_TOKEN), "--prefix-cache-blocks", "4096",
]  # fmt: skip


def _workload(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "workload.toml"
    path.write_text('name = "cache"\nseed = 1\noutput_tokens = 4\n' + body)
    return path


def test_shared_prefixes_hit_the_cache_and_the_server_agrees(tmp_path: Path) -> None:
    workload = _workload(
        tmp_path, 'input_tokens = "8:8"\n[shared_prefix]\ngroups = 2\ntokens = 96\n'
    )
    with MockServerProcess(MOCK) as mock:
        assert mock.url is not None
        options = ["--workload", str(workload), "--ignore-eos", "--stop-timeout", "10"]
        run = LocalRun([OpenAIChatUser], ["--host", mock.url, *options])
        run.run_until(requests=24, users=4)  # requests in flight then finish (stop timeout)
        run.environment.events.quit.fire(exit_code=0)
    ok = [r for r in run.records if r.ok]
    assert len(ok) == len(run.records) >= 24, "none cancelled: the server saw what the client did"
    assert all(r.usage_cached_tokens is not None for r in ok)
    assert {r.prefix_group for r in ok} == {0, 1}
    hits = [r for r in ok if r.usage_cached_tokens]
    misses = [r for r in ok if not r.usage_cached_tokens]
    assert len(misses) >= 2, "each group's first request prefilled its prefix"
    assert len(hits) >= len(ok) - 4
    assert all((r.usage_cached_tokens or 0) % 16 == 0 for r in hits), "whole blocks"
    saved = statistics.median(r.ttft or 0 for r in misses) - statistics.median(
        r.ttft or 0 for r in hits
    )
    cached = statistics.median(r.usage_cached_tokens or 0 for r in hits)
    # the prefill of the cached tokens is skipped (a loose bound: few requests miss, so one
    # stall of the machine moves their median)
    assert saved * 1e3 == pytest.approx(cached * PREFILL_MS_PER_TOKEN, rel=0.5)

    report = run.runtime.final_report
    assert report is not None
    t = report.total
    assert t.cache_reported == t.completed
    assert t.total_cached_tokens == sum(r.usage_cached_tokens or 0 for r in ok)
    assert t.cache_hit_share == pytest.approx(t.total_cached_tokens / t.total_input_tokens)
    assert [g.group for g in report.prefix_groups] == [0, 1]
    assert sum(g.completed for g in report.prefix_groups) == t.completed
    assert all(g.cache_hit_share and g.cache_hit_share > 0.5 for g in report.prefix_groups)
    (server,) = report.server
    assert server.prefix_cache_hits == t.total_cached_tokens, "the client sums what it said"
    assert server.prefix_cache_queries == t.total_input_tokens
    assert server.prefix_cache_hit_rate == pytest.approx(t.cache_hit_share)
    collector = run.runtime.collector
    assert "prompt cache: " in render_summary(collector.by_name, collector.total())
    parts = render_workload_parts(report)
    assert "By shared-prefix group:" in parts and "cached" in parts


def test_later_turns_of_a_conversation_hit_the_cache(tmp_path: Path) -> None:
    """Each turn resends the conversation so far: from the second turn on, what the first
    sent is cached."""
    workload = _workload(
        tmp_path, 'input_tokens = "40:40"\n[session]\nturns = 3\ninput_tokens = "20:20"\n'
    )
    with MockServerProcess(MOCK) as mock:
        assert mock.url is not None
        run = LocalRun(
            [OpenAIChatUser],
            ["--host", mock.url, "--workload", str(workload), "--ignore-eos"],
        )
        run.run_until(requests=18, users=3)
    report = run.runtime.final_report
    assert report is not None
    by_turn = {t.turn: t for t in report.turns}
    assert by_turn[1].total_cached_tokens == 0, "a new conversation's prompt is new"
    assert by_turn[2].cache_hit_share is not None and by_turn[2].cache_hit_share > 0.3
    assert "cached" in render_workload_parts(report)


def test_no_cache_details_no_cache_figures() -> None:
    """vLLM without --enable-prompt-tokens-details says nothing: nothing is claimed."""
    with MockServerProcess(["--ttft-ms", "2", "--tbt-ms", "1"]) as mock:
        assert mock.url is not None
        run = LocalRun([OpenAIChatUser], ["--host", mock.url, "--max-tokens", "4"])
        run.run_until(requests=4, users=1)
    report = run.runtime.final_report
    assert report is not None
    assert report.total.cache_reported == 0 and report.total.cache_hit_share is None
    collector = run.runtime.collector
    assert "prompt cache" not in render_summary(collector.by_name, collector.total())
