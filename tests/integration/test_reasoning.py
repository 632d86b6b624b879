"""Reasoning models: TTFT is the first reasoning token, TTFO the answer's first, and the
reasoning and the answer each have their own pace and token count.

The replay server sends a reasoning model's stream in vLLM 0.32's shape on an exact
schedule (first token at 50 ms, a step every 10 ms: 4 reasoning steps, then 4 answer steps,
the last the EOS): TTFT 50 ms, TTFO 90 ms, 3 reasoning gaps and 3 answer gaps of 10 ms
each (the 10 ms from the last reasoning step to the answer is in neither).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import orjson
import pytest

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics import RequestRecord
from sagellm_users._metrics.summary import render_summary
from sagellm_users._report.writers import render_markdown
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun
from tests.replay_server import replay_server
from tests.vllm_wire import reasoning_script

TTFT_S, TBT_S = 0.050, 0.010


def _run(url: str, *options: str) -> LocalRun:
    run = LocalRun([OpenAIChatUser], ["--host", url, "--model", "tiny", *options])
    run.run_until(requests=8, users=2)
    return run


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_ttfo_and_the_two_paces_on_a_known_schedule(field: str, tmp_path: Path) -> None:
    script = reasoning_script(ttft_s=TTFT_S, tbt_s=TBT_S, reasoning=4, answer=4, field=field)
    records_file = tmp_path / "records.jsonl"
    with replay_server(script) as url:
        run = _run(url, "--llm-records", str(records_file))
        run.environment.events.quit.fire(exit_code=0)
    ok = [r for r in run.records if r.ok]
    assert len(ok) >= 8
    for r in ok:
        assert (r.reasoning_steps, r.first_answer_step) == (4, 4)
        assert r.output_tokens == 8 and r.reasoning_tokens == 4
        assert r.reasoning_tokens_source == "usage"
        assert len(r.itl_reasoning) == 3 and len(r.itl_answer) == 3
    assert statistics.median(r.ttft or 0 for r in ok) * 1e3 == pytest.approx(50, abs=3)
    assert statistics.median(r.ttfo or 0 for r in ok) * 1e3 == pytest.approx(90, abs=3)
    gaps = [g * 1e3 for r in ok for g in (*r.itl_reasoning, *r.itl_answer)]
    assert statistics.median(gaps) == pytest.approx(10, abs=1)
    rows = [orjson.loads(line) for line in records_file.read_bytes().splitlines()]
    again = RequestRecord.from_json(next(row for row in rows if row["status"] == "ok"))
    assert (again.reasoning_steps, again.first_answer_step, again.reasoning_tokens) == (4, 4, 4)
    assert again.ttfo is not None and again.ttfo * 1e3 == pytest.approx(90, abs=3)

    report = run.runtime.final_report
    assert report is not None
    t = report.total
    assert t.reasoning_requests == t.completed and t.reasoning_tokens_estimated == 0
    assert t.total_reasoning_tokens == 4 * t.completed
    assert t.ttfo_ms is not None and t.ttfo_ms.count == t.completed
    assert t.itl_reasoning_ms is not None and t.itl_reasoning_ms.count == 3 * t.completed
    assert t.itl_answer_ms is not None and t.itl_answer_ms.count == 3 * t.completed
    collector = run.runtime.collector
    summary = render_summary(collector.by_name, collector.total())
    assert "  TTFO (ms)" in summary and "  ITL reasoning (ms)" in summary
    assert f"reasoning: {t.completed} of {t.completed} requests reasoned" in summary
    assert "| TTFO |" in render_markdown(report).decode()


def test_reasoning_without_a_count_in_usage_is_counted_by_steps_and_said() -> None:
    script = reasoning_script(ttft_s=0.005, tbt_s=0.001, reasoning=3, answer=2, usage_says=False)
    with replay_server(script) as url:
        run = _run(url)
    report = run.runtime.final_report
    assert report is not None
    t = report.total
    assert t.reasoning_requests == t.completed > 0
    assert t.reasoning_tokens_estimated == t.completed
    assert t.total_reasoning_tokens == 3 * t.completed
    collector = run.runtime.collector
    assert "counted as reasoning steps" in render_summary(collector.by_name, collector.total())


def test_a_model_that_never_answers_has_no_ttfo() -> None:
    """All reasoning, then the EOS: the bare end is no answer."""
    script = reasoning_script(ttft_s=0.005, tbt_s=0.001, reasoning=4, answer=1)
    with replay_server(script) as url:
        run = _run(url)
    ok = [r for r in run.records if r.ok]
    assert ok and all(r.reasoning_steps == 4 and r.ttfo is None for r in ok)
    assert all(r.first_answer_step is None and r.itl_answer == [] for r in ok)


def test_the_mocks_reasoning_mode_against_the_client() -> None:
    """The mock's reasoning model (``--reasoning-tokens``) as a client reads it: the first
    tokens are reasoning, usage counts them, TTFO follows them by their steps."""
    mock_args = ["--ttft-ms", "20", "--tbt-ms", "5", "--reasoning-tokens", "6"]
    with MockServerProcess([*mock_args, "--held-back-rate", "0"]) as mock:
        assert mock.url is not None
        run = LocalRun([OpenAIChatUser], ["--host", mock.url, "--max-tokens", "10", "--ignore-eos"])
        run.run_until(requests=8, users=2)
    ok = [r for r in run.records if r.ok]
    assert len(ok) >= 8
    for r in ok:
        assert r.reasoning_steps == 6 and r.usage_reasoning_tokens == 6
        assert r.first_answer_step == 6 and r.output_tokens == 10
    waits = [(r.ttfo or 0) - (r.ttft or 0) for r in ok]
    assert statistics.median(waits) * 1e3 == pytest.approx(30, abs=5), "6 steps of 5 ms"
