"""Against a real vLLM 0.32 run as a reasoning model's server that reports its prompt
cache: reasoning and answer split as vLLM's own parser splits them, and cached prompt
tokens summed by the client equal vLLM's own prefix-cache counters.

The tiny model has random weights, so it reasons only because its tokenizer has
``<think>``/``</think>`` (ids 2, 3) and vLLM runs DeepSeek R1's parser, which calls every
token before ``</think>`` reasoning; ``logit_bias {"3": 8}`` makes ``</think>`` come after a
few tokens, so most replies reason, then answer. What vLLM 0.32 does, as measured here:

* reasoning streams in ``delta.reasoning``, the answer in ``delta.content``;
* the ``</think>`` token itself gets no event: its step arrives with the answer's first
  token (per-chunk usage says 2 tokens there);
* ``usage.completion_tokens_details.reasoning_tokens`` is 0: vLLM counts only tokens
  between a ``<think>`` and a ``</think>`` the model generated, and R1's template opens the
  reasoning in the prompt. The client counts them from the stream and says so;
* with ``--enable-prompt-tokens-details`` usage carries ``cached_tokens`` (whole blocks of
  128 tokens on CPU), and ``vllm:prefix_cache_hits`` grows by exactly their sum.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagellm_users import OpenAIChatUser, VLLMMessagesUser, VLLMResponsesUser
from tests.locust_harness import LocalRun
from tests.real.conftest import TIER_TIMEOUT_S

pytestmark = [pytest.mark.real_vllm, pytest.mark.timeout(TIER_TIMEOUT_S)]

THINK_END_BIAS = {"3": 8}
MAX_TOKENS = 16
CPU_BLOCK = 128
"""vLLM's KV-cache block on CPU: the unit of a prefix-cache hit."""


def _run(user: type, url: str, *options: str, requests: int = 24) -> LocalRun:
    run = LocalRun(
        [user],
        ["--host", url, "--stop-timeout", "60", "--server-metrics-interval", "1", *options],
    )
    run.run_until(requests=requests, users=3, timeout=240)
    run.environment.events.quit.fire(exit_code=0)
    return run


def test_reasoning_and_answer_split_as_vllms_parser_splits_them(reasoning_vllm: str) -> None:
    extra = {
        "logit_bias": THINK_END_BIAS,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    run = _run(
        OpenAIChatUser, reasoning_vllm,
        "--max-tokens", str(MAX_TOKENS), "--ignore-eos", "--extra-body", json.dumps(extra),
    )  # fmt: skip
    ok = [r for r in run.records if r.ok]
    assert len(ok) == len(run.records) >= 24, "none failed or cancelled"
    reasoned = [r for r in ok if r.reasoning_steps]
    answered = [r for r in reasoned if r.first_answer_step is not None]
    # About 2 in 3 replies reason (measured: 18 and 19 of 27) before the biased </think>
    # ends the reasoning; a quarter is far below what sampling can fall to.
    assert len(reasoned) >= len(ok) // 4 and answered, "the bias ends the reasoning early"
    for r in ok:
        counts = r.tokens_per_chunk
        assert counts is not None and sum(counts) == r.output_tokens == MAX_TOKENS, r
    for r in reasoned:
        assert r.usage_reasoning_tokens == 0, "vLLM 0.32 counts none for R1's template"
        assert r.reasoning_usage_contradicted and r.reasoning_tokens_source == "usage"
        assert r.tokens_per_chunk is not None
        assert r.reasoning_tokens == sum(r.tokens_per_chunk[: r.reasoning_steps])
    for r in answered:
        k = r.first_answer_step
        assert k == r.reasoning_steps, "reasoning first, then the answer"
        assert r.tokens_per_chunk is not None and r.tokens_per_chunk[k] >= 2, (
            "</think> has no event: it comes with the answer's first token"
        )
        # events read together share their read's stamp: the tiny model's steps are quicker
        # than vLLM's API server streams them, so reasoning and answer may come in one read
        assert r.ttfo is not None and r.ttft is not None and r.ttfo >= r.ttft
        assert r.ttfo - r.ttft == pytest.approx(r.t_out[k] - r.t_out[0])
        assert len(r.itl_reasoning) == k - 1
        assert len(r.itl_answer) == len(r.t_out) - k - 1
    report = run.runtime.final_report
    assert report is not None
    t = report.total
    assert t.reasoning_requests == len(reasoned) == t.reasoning_usage_zero
    assert t.total_reasoning_tokens == sum(r.reasoning_tokens for r in reasoned)
    assert t.ttfo_ms is not None and t.ttfo_ms.count == len(answered)
    print(
        f"\nchat: {len(ok)} requests, {len(reasoned)} reasoned, {len(answered)} answered after; "
        f"{t.total_reasoning_tokens} reasoning tokens counted from the stream (vLLM's usage: 0); "
        f"TTFT p50 {t.ttft_ms.median:.1f} ms, TTFO p50 {t.ttfo_ms.median:.1f} ms"
    )


def test_the_responses_api_streams_reasoning_events(reasoning_vllm: str) -> None:
    """The same split on /v1/responses: ``response.reasoning_text.delta`` events first."""
    extra = {"logit_bias": THINK_END_BIAS}
    run = _run(
        VLLMResponsesUser, reasoning_vllm,
        "--max-tokens", str(MAX_TOKENS), "--ignore-eos", "--extra-body", json.dumps(extra),
        requests=12,
    )  # fmt: skip
    ok = [r for r in run.records if r.ok]
    assert len(ok) == len(run.records) >= 12
    reasoned = [r for r in ok if r.reasoning_steps]
    assert reasoned and all(r.output_tokens == MAX_TOKENS for r in ok)
    for r in reasoned:
        assert r.first_answer_step in (None, r.reasoning_steps)
        assert r.reasoning_usage_contradicted, "usage says 0 here too"
        assert 0 < r.reasoning_tokens <= MAX_TOKENS


def test_the_messages_api_streams_thinking(reasoning_vllm: str) -> None:
    """/v1/messages streams the reasoning as ``thinking_delta`` in a thinking block. Its
    request model has no logit_bias, so nothing but chance ends the random model's
    reasoning: nearly every reply is all thinking, and Anthropic's usage has no reasoning
    count, so the client counts the reasoning steps (and says so)."""
    run = _run(VLLMMessagesUser, reasoning_vllm, "--max-tokens", "8", requests=12)
    done = [r for r in run.records if r.ok]
    assert len(done) == len(run.records) >= 12
    # a reply whose first token is EOS (1 in 8,000) has no event here: nothing to split
    ok = [r for r in done if r.t_out]
    assert all(r.output_tokens == 1 for r in done if not r.t_out) and len(ok) >= 10
    for r in ok:
        assert r.output_tokens <= 8 and r.output_tokens_source == "usage"  # EOS may come
        assert r.reasoning_steps >= 1 and r.first_answer_step in (None, r.reasoning_steps)
        assert r.usage_reasoning_tokens is None and r.reasoning_tokens_source == "estimate"
        assert r.reasoning_tokens == r.reasoning_steps <= 8
    # a random </think> (1 token in 8,000) may end one reply's thinking; hardly two
    thinking_only = [r for r in ok if r.first_answer_step is None]
    assert len(thinking_only) >= len(ok) - 2
    report = run.runtime.final_report
    assert report is not None
    t = report.total
    assert t.reasoning_requests == t.reasoning_tokens_estimated == len(ok)
    assert (t.ttfo_ms.count if t.ttfo_ms else 0) == len(ok) - len(thinking_only)


def test_cached_prompt_tokens_add_up_to_vllms_own_hits(reasoning_vllm: str, tmp_path: Path) -> None:
    """Two shared 300-token system prompts: after each group's first request, their first
    two blocks come from the cache; the client's sums equal vLLM's counters exactly."""
    workload = tmp_path / "workload.toml"
    workload.write_text(
        'name = "shared"\nseed = 2\ninput_tokens = "8:8"\noutput_tokens = 4\n'
        "[shared_prefix]\ngroups = 2\ntokens = 300\n"
    )
    run = _run(OpenAIChatUser, reasoning_vllm, "--workload", str(workload), "--ignore-eos")
    ok = [r for r in run.records if r.ok]
    assert len(ok) == len(run.records) >= 24, "none failed or cancelled"
    assert all(r.usage_cached_tokens is not None for r in ok), "vLLM said for every request"
    assert all((r.usage_cached_tokens or 0) % CPU_BLOCK == 0 for r in ok), "whole blocks"
    hits = [r for r in ok if r.usage_cached_tokens]
    assert len(hits) >= len(ok) - 4, "all but the groups' first requests (and races)"
    report = run.runtime.final_report
    assert report is not None
    t = report.total
    (server,) = report.server
    assert server.prefix_cache_hits == t.total_cached_tokens
    assert server.prefix_cache_queries == t.total_input_tokens
    assert server.prefix_cache_hit_rate == pytest.approx(t.cache_hit_share)
    assert [g.group for g in report.prefix_groups] == [0, 1]
    assert all(g.cache_hit_share and g.cache_hit_share > 0.5 for g in report.prefix_groups)
    print(
        f"\ncache: {len(ok)} requests, {t.total_cached_tokens} of {t.total_input_tokens} prompt "
        f"tokens cached ({t.cache_hit_share:.1%}); vLLM's counters: {server.prefix_cache_hits} "
        f"hits of {server.prefix_cache_queries} queried"
    )
