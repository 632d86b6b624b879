"""The result model and its writers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from sagellm_users._errors import ConfigError
from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._report import (
    LLMReport,
    build_report,
    check_report_path,
    render_csv,
    render_json,
    render_markdown,
    write_report,
)
from sagellm_users._report.model import LostWorker

VLLM_FIELDS = {
    "duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
    "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
    *(f"{stat}_{metric}_ms" for stat in ("mean", "median", "std", "p99")
      for metric in ("ttft", "tpot", "itl", "e2el")),
}  # fmt: skip


def record(i: int, user: str = "ChatUser", *, ok: bool = True) -> RequestRecord:
    t_send = 50.0
    t_out = [t_send + 0.040 + 0.010 * k for k in range(5)] if ok else []
    return RequestRecord(
        request_id=i,
        user=user,
        backend="openai",
        api="chat",
        name="/v1/chat/completions",
        model="tiny",
        stream=True,
        wall_start=1_700_000_000.0 + i,
        t_start=t_send,
        t_send=t_send,
        t_out=t_out,
        t_done=(t_out[-1] if t_out else t_send + 0.5),
        usage_prompt_tokens=12 if ok else None,
        usage_completion_tokens=5 if ok else None,
        status="ok" if ok else "error",
        error_class=None if ok else "HTTPStatusError",
        error_message=None if ok else "HTTP 500 Internal Server Error: boom | pipe",
    )


def make_report(percentiles: tuple[float, ...] = (50, 99, 99.9)) -> LLMReport:
    collector = MetricsCollector()
    for i in range(10):
        collector.add(record(i, "ChatUser" if i % 2 else "OtherUser", ok=i != 3))
    return build_report(
        collector,
        percentiles=list(percentiles),
        host="http://127.0.0.1:8000",
        user_classes=["ChatUser", "OtherUser"],
        options={"max_tokens": 5, "api_key_set": True},
        warmup="none",
        measure_after_spawn=False,
    )


def test_json_has_vllm_field_names_and_the_structured_report() -> None:
    report = make_report()
    data = orjson.loads(render_json(report))
    assert set(data) >= VLLM_FIELDS
    assert data["completed"] == 9 and data["failed"] == 1
    assert data["total_output_tokens"] == 45 and data["total_input_tokens"] == 108
    assert data["p99.9_ttft_ms"] == pytest.approx(40.0)
    assert data["mean_tpot_ms"] == pytest.approx(10.0)
    assert data["duration"] == pytest.approx(report.window.seconds)
    assert data["request_throughput"] == pytest.approx(9 / report.window.seconds)
    assert data["schema_version"] == 3
    assert data["tool"]["name"] == "sagellm-locust"
    assert {b["user"] for b in data["by_user"]} == {"ChatUser", "OtherUser"}
    assert data["total"]["failures"][0]["error_class"] == "HTTPStatusError"
    assert data["total"]["token_provenance"]["output_from_usage"] == 9
    assert LLMReport.model_validate(data).total.completed == 9, "the JSON reads back"


def test_csv_has_one_row_per_slice() -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(make_report()).decode())))
    assert [r["scope"] for r in rows] == ["total", "name", "user", "user"]
    total = rows[0]
    assert total["completed"] == "9"
    assert float(total["ttft_ms_p99.9"]) == pytest.approx(40.0)
    assert float(total["e2el_ms_max"]) == pytest.approx(80.0)


def test_markdown_shows_tables_and_escapes_failures() -> None:
    text = render_markdown(make_report()).decode()
    assert "| TTFT | 9 |" in text
    assert "| HTTPStatusError | 1 | HTTP 500 Internal Server Error: boom \\| pipe |" in text
    assert "p99.9" in text


@pytest.mark.parametrize("name", ["r.json", "r.csv", "r.md"])
def test_write_report_is_whole(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_report(make_report(), path)
    assert path.stat().st_size > 100
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was renamed"


def test_report_paths_are_checked_before_load(tmp_path: Path) -> None:
    check_report_path(tmp_path / "ok.json")
    with pytest.raises(ConfigError, match="unknown format"):
        check_report_path(tmp_path / "r.txt")
    with pytest.raises(ConfigError, match="does not exist"):
        check_report_path(tmp_path / "missing" / "r.json")


def test_empty_run_still_reports() -> None:
    report = build_report(
        MetricsCollector(),
        percentiles=[50.0],
        host=None,
        user_classes=[],
        options={},
        warmup="none",
        measure_after_spawn=False,
    )
    data = orjson.loads(render_json(report))
    assert data["completed"] == 0 and data["mean_ttft_ms"] is None
    assert data["request_throughput"] == 0.0


def test_partial_cancelled_and_retried_runs_say_so_in_markdown_and_csv() -> None:
    collector = MetricsCollector()
    retried = record(1)
    retried.retry_errors = ["HTTPStatusError 429", "HTTPStatusError 429"]
    collector.add(retried)
    cancelled = record(2)
    cancelled.status = "cancelled"
    cancelled.t_out = []
    collector.add(cancelled)
    report = build_report(
        collector,
        percentiles=[50.0],
        host="http://127.0.0.1:8000",
        user_classes=["ChatUser"],
        options={},
        warmup="none",
        measure_after_spawn=False,
    )
    lost = LostWorker(
        worker="w1", lost_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), last_report_at=None
    )
    report = report.model_copy(update={"lost_workers": [lost], "partial": True})
    text = render_markdown(report).decode()
    assert (
        "- **PARTIAL**: worker `w1` was lost at 03:04:05 UTC (last report never); what it "
        "measured after its last report is not in this report"
    ) in text
    assert "| all | 2 | 1 | 0 | 1 | 0.00% | 1 |" in text
    assert "Retried 1 requests, 2 retries (HTTPStatusError 429 x2)" in text
    total = next(csv.DictReader(io.StringIO(render_csv(report).decode())))
    assert (total["cancelled"], total["retried"], total["retries"]) == ("1", "1", "2")
