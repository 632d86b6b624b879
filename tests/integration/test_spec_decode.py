"""Speculative decoding: steps that carry several tokens, counted by the client against the
server's own drafts and accepted tokens.

The mock's ``--spec-decode K:P`` groups each answer's tokens into steps as a draft model
with acceptance P would, streams a step as one chunk, and counts vLLM's
``spec_decode_num_drafts`` / ``_draft_tokens`` / ``_accepted_tokens``: so every step the
client sees is a draft, and the tokens beyond one a step are the accepted ones, exactly.
"""

from __future__ import annotations

import json

import pytest

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics.summary import render_summary
from sagellm_users._report.writers import render_markdown
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun

MAX_TOKENS = 24
CONTINUOUS = {"stream_options": {"include_usage": True, "continuous_usage_stats": True}}


def _run(*options: str) -> LocalRun:
    mock = ["--ttft-ms", "5", "--tbt-ms", "2", "--spec-decode", "3:0.6", "--seed", "4"]
    with MockServerProcess(mock) as server:
        assert server.url is not None
        run = LocalRun(
            [OpenAIChatUser],
            [
                "--host", server.url, "--max-tokens", str(MAX_TOKENS), "--ignore-eos",
                "--stop-timeout", "10", "--server-metrics-interval", "1", *options,
            ],
        )  # fmt: skip
        run.run_until(requests=16, users=2)
        run.environment.events.quit.fire(exit_code=0)
    return run


def test_steps_of_several_tokens_match_the_servers_drafts() -> None:
    run = _run("--extra-body", json.dumps(CONTINUOUS))
    ok = [r for r in run.records if r.ok]
    assert len(ok) == len(run.records) >= 16, "none cancelled: the server saw what the client did"
    for r in ok:
        assert r.tokens_per_chunk is not None and sum(r.tokens_per_chunk) == MAX_TOKENS
        assert max(r.tokens_per_chunk) <= 4, "one token and at most 3 accepted drafts a step"
        assert r.tpot is not None and len(r.itl) == len(r.t_out) - 1
    assert sum(len(r.t_out) for r in ok) < MAX_TOKENS * len(ok), "steps carried several"
    report = run.runtime.final_report
    assert report is not None
    t = report.total
    steps = sum(len(r.t_out) for r in ok)
    assert sum(t.step_sizes.values()) == steps
    assert t.tokens_per_step == pytest.approx(MAX_TOKENS * len(ok) / steps)
    assert set(t.step_sizes) <= {"1", "2", "3", "4"} and len(t.step_sizes) > 1
    (server,) = report.server
    assert server.spec_decode_drafts == steps, "one draft a step"
    assert server.spec_decode_draft_tokens == 3 * steps
    assert server.spec_decode_accepted_tokens == MAX_TOKENS * len(ok) - steps
    assert server.spec_acceptance_length == pytest.approx(t.tokens_per_step)
    collector = run.runtime.collector
    summary = render_summary(collector.by_name, collector.total())
    assert f"decode steps carried {t.tokens_per_step:.2f} tokens each on average" in summary
    assert "Tokens per step: decode steps carried" in render_markdown(report).decode()


def test_without_usage_on_every_chunk_the_mean_still_holds() -> None:
    run = _run()
    report = run.runtime.final_report
    assert report is not None
    t = report.total
    assert t.step_sizes == {}, "no per-chunk counts: no spread claimed"
    assert t.tokens_per_step is not None and t.tokens_per_step > 1.2
    (server,) = report.server
    assert server.spec_acceptance_length == pytest.approx(t.tokens_per_step)
