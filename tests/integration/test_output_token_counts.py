"""Output tokens when the server sends no usage (sageLLM's gateway, many proxies): counted
by a local tokenizer in the reply's text, flagged ``tokenizer``; chunk counts stay the last
resort, flagged ``estimate``.

The truth: the mock emits each vocabulary word as one token (a held-back token's text rides
with the next), so a word-level tokenizer of its vocabulary counts exactly the tokens it
generated; with ``--ignore-eos`` that is ``--max-tokens``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from sagellm_users import OpenAIChatUser, SageLLMUser
from sagellm_users._metrics.summary import render_summary
from sagellm_users._report.writers import render_markdown
from sagellm_users.mock_server import MockServerProcess
from sagellm_users.mock_server.simulation import VOCABULARY
from tests.locust_harness import LocalRun

MAX_TOKENS = 12


def word_tokenizer(directory: Path) -> Path:
    """A tokenizer.json with one token per word of the mock's vocabulary."""
    vocab = {"[UNK]": 0, **{word: i + 1 for i, word in enumerate(VOCABULARY)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture(scope="module")
def usage_less_mock() -> Iterator[str]:
    """Every stream ends without its usage chunk, and no text is held back (a held-back
    token's text rides with the next token, which a word count cannot tell apart)."""
    args = ["--ttft-ms", "2", "--tbt-ms", "1", "--error-rate-no-usage", "1"]
    with MockServerProcess([*args, "--held-back-rate", "0"]) as mock:
        assert mock.url is not None
        yield mock.url


def _run(url: str, *extra: str, user: type = OpenAIChatUser) -> LocalRun:
    args = ["--host", url, "--max-tokens", str(MAX_TOKENS), "--ignore-eos", *extra]
    run = LocalRun([user], args)
    run.run_until(requests=12, users=3)
    return run


@pytest.mark.parametrize("user", [OpenAIChatUser, SageLLMUser])
def test_a_tokenizer_counts_the_output_a_server_sent_no_usage_for(
    usage_less_mock: str, tmp_path: Path, user: type
) -> None:
    tokenizer = word_tokenizer(tmp_path / "words")
    run = _run(usage_less_mock, "--tokenizer", str(tokenizer), user=user)
    ok = [r for r in run.records if r.ok]
    assert len(ok) >= 12
    assert {r.output_tokens_source for r in ok} == {"tokenizer"}
    assert [r.output_tokens for r in ok] == [MAX_TOKENS] * len(ok)
    assert all(r.usage_completion_tokens is None for r in ok)
    report = run.runtime.final_report
    assert report is not None
    provenance = report.total.token_provenance
    assert provenance.output_tokenized == report.total.completed
    assert provenance.output_estimated == provenance.output_from_usage == 0
    assert report.total.total_output_tokens == MAX_TOKENS * report.total.completed
    assert "counted by the tokenizer for" in render_markdown(report).decode()


def test_without_a_tokenizer_the_chunks_are_counted_and_flagged(usage_less_mock: str) -> None:
    run = _run(usage_less_mock)
    ok = [r for r in run.records if r.ok]
    assert {r.output_tokens_source for r in ok} == {"estimate"}
    assert all(r.output_tokens == len(r.t_out) for r in ok)
    report = run.runtime.final_report
    assert report is not None
    assert report.total.token_provenance.output_estimated == report.total.completed
    assert report.total.token_provenance.output_tokenized == 0


def test_usage_wins_over_the_tokenizer(tmp_path: Path) -> None:
    """A server that sends usage is believed; the tokenizer is not even asked."""
    tokenizer = word_tokenizer(tmp_path / "words")
    with MockServerProcess(["--ttft-ms", "2", "--tbt-ms", "1"]) as mock:
        assert mock.url is not None
        run = _run(mock.url, "--tokenizer", str(tokenizer))
    ok = [r for r in run.records if r.ok]
    assert {r.output_tokens_source for r in ok} == {"usage"}
    assert all(r.counted_output_tokens is None for r in ok)
    assert {r.finish_reason for r in ok} == {"length"} and not any(r.stopped_at_limit for r in ok)


# -- sageLLM's gateway, as the mock speaks it (--dialect sagellm-gateway) ---------------------


@pytest.fixture(scope="module")
def gateway_mock() -> Iterator[str]:
    args = ["--dialect", "sagellm-gateway", "--ttft-ms", "2", "--tbt-ms", "1"]
    with MockServerProcess([*args, "--held-back-rate", "0"]) as mock:
        assert mock.url is not None
        yield mock.url


def test_sagellm_user_against_the_gateways_dialect(gateway_mock: str, tmp_path: Path) -> None:
    """No usage, the end in a chunk of its own: the tokenizer counts every token, the end
    adds no decode step, and the server view is the gateway's own."""
    tokenizer = word_tokenizer(tmp_path / "words")
    run = _run(
        gateway_mock, "--tokenizer", str(tokenizer), "--server-metrics-interval", "0.05",
        user=SageLLMUser,
    )  # fmt: skip
    ok = [r for r in run.records if r.ok]
    assert len(ok) >= 12
    assert {(r.output_tokens, r.output_tokens_source) for r in ok} == {(MAX_TOKENS, "tokenizer")}
    assert {len(r.t_out) for r in ok} == {MAX_TOKENS}, "one step per token, none for the end"
    assert {r.finish_reason for r in ok} == {"stop"}, "the gateway's 'stop' at max_tokens"
    assert {r.model for r in ok} == {"mock-llm"}, "the model, from /info's engines"
    report = run.runtime.final_report
    assert report is not None
    assert report.total.stopped_at_limit == report.total.completed
    collector = run.runtime.collector
    summary = render_summary(collector.by_name, collector.total())
    assert "requests said finish_reason 'stop' with exactly max_tokens out" in summary
    (server,) = report.server
    assert server.version == "sageLLM Gateway 0.1.0"
    assert server.gateway_ok is not None and server.gateway_ok >= len(ok)
    assert server.gateway_failed == 0 and server.requests is None
    assert server.gateway_response_start_ms is not None
    assert server.gateway_response_start_ms.count == server.gateway_ok


def test_the_gateway_drops_empty_chunks_so_chunk_counts_fall_short(tmp_path: Path) -> None:
    """Held-back tokens (a character split over two tokens) reach the gateway's client as
    nothing: counting chunks misses them, and says the count is an estimate."""
    args = ["--dialect", "sagellm-gateway", "--ttft-ms", "2", "--tbt-ms", "1"]
    with MockServerProcess([*args, "--held-back-rate", "0.3", "--seed", "3"]) as mock:
        assert mock.url is not None
        run = _run(mock.url, user=SageLLMUser)
    ok = [r for r in run.records if r.ok]
    assert {r.output_tokens_source for r in ok} == {"estimate"}
    assert all(r.output_tokens <= MAX_TOKENS for r in ok)
    assert sum(r.output_tokens for r in ok) < MAX_TOKENS * len(ok)


def test_empty_answers_that_end_normally_are_flagged() -> None:
    """Seen against the real gateway when its engine failed every batched prompt: each
    answer was the role chunk and a closing "stop", nothing between. The mock's gateway
    answers so when its model's first token is the end of sequence (dropped: no text)."""
    args = ["--dialect", "sagellm-gateway", "--ttft-ms", "2", "--tbt-ms", "1"]
    with MockServerProcess([*args, "--natural-output-tokens", "1"]) as mock:
        assert mock.url is not None
        run = LocalRun([SageLLMUser], ["--host", mock.url, "--max-tokens", "8"])
        run.run_until(requests=6, users=2)
    ok = [r for r in run.records if r.ok]
    assert ok and all(r.output_tokens == 0 and not r.t_out for r in ok)
    report = run.runtime.final_report
    assert report is not None and report.total.empty_answers == report.total.completed > 0
    collector = run.runtime.collector
    summary = render_summary(collector.by_name, collector.total())
    assert f"WARNING: {report.total.completed} of {report.total.completed} successful" in summary
    assert "had no output at all" in render_markdown(report).decode()


def test_a_vllm_answer_of_only_its_end_of_sequence_is_not_empty() -> None:
    """vLLM sends the EOS token as a step and counts it: one token, not an empty answer."""
    args = ["--ttft-ms", "2", "--tbt-ms", "1", "--natural-output-tokens", "1"]
    with MockServerProcess(args) as mock:
        assert mock.url is not None
        run = LocalRun([OpenAIChatUser], ["--host", mock.url, "--max-tokens", "8"])
        run.run_until(requests=6, users=2)
    ok = [r for r in run.records if r.ok]
    assert ok and all(r.output_tokens == 1 and len(r.t_out) == 1 for r in ok)
    report = run.runtime.final_report
    assert report is not None and report.total.empty_answers == 0
