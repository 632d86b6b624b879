"""A records file on a disk that fills up mid-run, under Locust's runners.

Every request still reaches Locust's table and the report; the records the file could not
hold are counted (summary, JSON, Markdown), the file ends at a line boundary, the shutdown
runs to its end and the exit code says records were lost. The disk is a byte budget at the
writer's one write call (a short write, then ENOSPC, as a nearly full file system does).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics import records_file
from sagellm_users._users import runtime_of
from tests.locust_harness import LocalRun, capture_submitted, start_cluster, wait_until
from tests.records import disk_with

ENDPOINT = "/v1/chat/completions"
BUDGET = 4000
"""Bytes the disk holds: a handful of records."""


def read_lines(path: Path) -> list[dict[str, object]]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), "the file ends at a line boundary"
    return [orjson.loads(line) for line in data.splitlines()]


def test_a_full_disk_loses_no_request_from_the_stats_and_says_so(
    tmp_path: Path,
    mock_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(records_file, "_write", disk_with(BUDGET))
    records = tmp_path / "run.jsonl"
    report_json, report_md = tmp_path / "run.json", tmp_path / "run.md"
    args = ["--host", mock_url, "--max-tokens", "4", "--server-metrics-interval", "0"]
    args += ["--llm-records", str(records)]
    args += ["--llm-report", str(report_json), "--llm-report", str(report_md)]
    run = LocalRun([OpenAIChatUser], args)
    run.run_until(requests=40, users=4, timeout=60)  # quitting: close, final report
    run.environment.events.quit.fire(exit_code=0)  # the summary and report files
    printed = capsys.readouterr().out

    lines = read_lines(records)
    writer = run.runtime.records
    assert writer is not None and writer.lost > 0
    assert len(lines) == writer.written
    assert len(lines) + writer.lost == len(run.records)
    finished = sum(r.status != "cancelled" for r in run.records)
    assert run.environment.stats.get(ENDPOINT, "E2E").num_requests == finished
    assert run.runtime.collector.total().requests == len(run.records)
    data = orjson.loads(report_json.read_bytes())
    assert data["records_lost"] == writer.lost
    assert f"{writer.lost} record(s) could not be written" in report_md.read_text()
    assert f"LOST: {writer.lost} record(s) could not be written" in printed
    assert "No space left on device" in printed
    failures = [r for r in caplog.records if "could not be written" in r.getMessage()]
    assert len(failures) == 2, [r.getMessage() for r in failures]  # first failure; count
    assert "Traceback" not in caplog.text
    assert run.environment.process_exit_code == 1  # set by the final step, which ran


def test_a_full_disk_with_the_slos_met_still_exits_1(
    tmp_path: Path, mock_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records_file, "_write", disk_with(BUDGET))
    args = ["--host", mock_url, "--max-tokens", "4", "--server-metrics-interval", "0"]
    args += ["--llm-records", str(tmp_path / "run.jsonl"), "--slo", "error_rate<=100%"]
    run = LocalRun([OpenAIChatUser], args)
    run.run_until(requests=40, users=4, timeout=60)
    report = run.runtime.final_report
    assert report is not None and report.slos_passed and report.records_lost > 0
    assert run.environment.process_exit_code == 1


def test_workers_report_their_lost_records_to_the_master(
    tmp_path: Path, mock_url: str, fast_reports: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records_file, "_write", disk_with(BUDGET))  # both workers share it
    args = ["--host", mock_url, "--max-tokens", "4", "--llm-records", str(tmp_path / "r.jsonl")]
    master_env, master, workers = start_cluster(args, workers=2)
    seen = [capture_submitted(worker.environment) for worker in workers]
    master.start(4, spawn_rate=4)
    runtime = runtime_of(master_env)
    assert wait_until(lambda: runtime.collector.total().requests >= 60, timeout=60)
    master.quit()
    for worker in workers:
        worker.quit()
        worker.environment.events.quitting.fire(environment=worker.environment)
    master_env.events.quitting.fire(environment=master_env)
    lost = 0
    for worker, submitted in zip(workers, seen, strict=True):
        writer = runtime_of(worker.environment).records
        assert writer is not None
        lines = read_lines(tmp_path / f"r.worker{worker.worker_index}.jsonl")
        assert len(lines) + writer.lost == len(submitted)
        lost += writer.lost
    report = runtime.final_report
    assert report is not None and lost > 0
    assert report.records_lost == lost
    assert master_env.process_exit_code == 1
