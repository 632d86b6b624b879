"""Answers that are not the length they asked for: a proxy in front of the server that
forwards only OpenAI's own fields drops ``ignore_eos`` and ``min_tokens``, and answers end
on EOS whatever the load test asked. Counted, listed and warned about."""

from __future__ import annotations

import re

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics.summary import render_summary
from sagellm_users._report.writers import render_markdown
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun

MOCK = ["--ttft-ms", "2", "--tbt-ms", "1", "--natural-output-tokens", "4:12", "--seed", "5"]


def _run(*mock_args: str, options: tuple[str, ...]) -> LocalRun:
    with MockServerProcess([*MOCK, *mock_args]) as mock:
        assert mock.url is not None
        run = LocalRun([OpenAIChatUser], ["--host", mock.url, *options])
        run.run_until(requests=12, users=3)
    return run


def test_ignore_eos_dropped_by_a_proxy_is_caught() -> None:
    run = _run("--drop-vendor-fields", options=("--max-tokens", "16", "--ignore-eos"))
    ok = [r for r in run.records if r.ok]
    assert ok and all(r.output_tokens <= 12 for r in ok), "every answer ended on its EOS"
    assert all(r.length_mismatch is not None for r in ok)
    report = run.runtime.final_report
    assert report is not None
    assert report.total.length_mismatches == report.total.completed
    examples = report.total.length_mismatch_examples
    assert 0 < len(examples) <= 10
    assert all(re.fullmatch(r"#\d+: asked exactly 16 \(ignore_eos\), got \d+", e) for e in examples)
    collector = run.runtime.collector
    summary = render_summary(collector.by_name, collector.total())
    assert "were not the length they asked for (ignore_eos / min_tokens)" in summary
    assert "does not honour those fields" in render_markdown(report).decode()


def test_min_tokens_dropped_by_a_proxy_is_caught() -> None:
    run = _run("--drop-vendor-fields", options=("--max-tokens", "32", "--min-tokens", "20"))
    short = [r for r in run.records if r.ok and r.output_tokens < 20]
    assert short and all(
        "asked at least 20 (min_tokens)" in (r.length_mismatch or "") for r in short
    )


def test_a_server_that_honours_them_has_no_mismatch() -> None:
    run = _run(options=("--max-tokens", "16", "--ignore-eos", "--min-tokens", "8"))
    ok = [r for r in run.records if r.ok]
    assert ok and {r.output_tokens for r in ok} == {16}
    report = run.runtime.final_report
    assert report is not None and report.total.length_mismatches == 0
    assert report.total.length_mismatch_examples == []
