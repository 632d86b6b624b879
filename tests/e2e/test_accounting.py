"""What the real ``locust`` command counts and which exit code it chooses when attempts are
retried or records cannot be written."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from selenium.webdriver.common.by import By

from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._report import build_report, render_markdown
from sagellm_users._report.html import render_html_report
from sagellm_users.mock_server import MockServerProcess
from tests.e2e.chromium import chromium, console_errors, wait_for
from tests.e2e.locust_process import ROOT, locust_env, run_locust

pytestmark = pytest.mark.e2e

CHAT = str(ROOT / "locustfiles" / "chat.py")


def aggregated(stdout_and_stderr: str) -> tuple[int, int]:
    """The request and failure counts of the last "Aggregated" row Locust printed."""
    rows = re.findall(r"^\s*Aggregated\s+(\d+)\s+(\d+)\(", stdout_and_stderr, re.MULTILINE)
    assert rows, stdout_and_stderr
    return int(rows[-1][0]), int(rows[-1][1])


def test_retried_attempts_leave_the_exit_code_at_0(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    mock_args = ["--ttft-ms", "2", "--tbt-ms", "1", "--error-rate-429", "0.3"]
    with MockServerProcess([*mock_args, "--retry-after-s", "0", "--seed", "7"]) as mock:
        assert mock.url is not None
        result = run_locust(
            "-f", CHAT, "--headless", "-u", "4", "-r", "4", "-t", "3s", "--host", mock.url,
            "--max-tokens", "4", "--retries", "20", "--llm-report", str(report),
        )  # fmt: skip
    output = result.stdout + result.stderr
    data = orjson.loads(report.read_bytes())
    assert data["total"]["failed"] == 0 and data["total"]["retries"] > 0, output
    assert aggregated(output)[1] == 0
    assert "Error report" not in output
    assert re.search(r"^\s*RETRY\s+/v1/chat/completions\s+(\d+)\s+\1\(", output, re.MULTILINE)
    assert result.returncode == 0, output


def limit_file_size(limit: int) -> Callable[[], None]:
    """For ``preexec_fn``: no file the child writes may grow past ``limit`` bytes, as on a
    full disk (the write is cut short, then fails: EFBIG; Python ignores SIGXFSZ)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_is_counted_reported_and_exits_1(tmp_path: Path) -> None:
    records = tmp_path / "run.jsonl"
    with MockServerProcess(["--ttft-ms", "2", "--tbt-ms", "1"]) as mock:
        assert mock.url is not None
        result = subprocess.run(
            [
                sys.executable, "-m", "locust", "-f", CHAT, "--headless", "-u", "4", "-r", "4",
                "-t", "3s", "--host", mock.url, "--max-tokens", "4",
                "--llm-records", str(records),
            ],
            cwd=ROOT, env=locust_env(), capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL, check=False, preexec_fn=limit_file_size(64 * 1024),
        )  # fmt: skip
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    data = records.read_bytes()
    assert data.endswith(b"\n") and len(data) <= 64 * 1024, "whole lines only"
    lines = [orjson.loads(line) for line in data.splitlines()]
    lost = re.search(
        r"^LOST: (\d+) record\(s\) could not be written .*\(File too large\)", output, re.M
    )
    assert lost is not None, output
    summary = re.search(r"^  requests (\d+)  ok ", result.stdout, re.MULTILINE)
    assert summary is not None, output
    assert len(lines) + int(lost.group(1)) == int(summary.group(1))
    assert f"Records: {len(lines)} lines in {records}" in result.stdout
    assert output.count("a record could not be written (File too large)") == 1
    finished = sum(line["status"] != "cancelled" for line in lines)
    assert aggregated(output)[0] > finished, "Locust's table counts the requests the file lost"
    assert result.returncode == 1, output


def test_the_html_and_markdown_reports_say_records_were_lost(tmp_path: Path) -> None:
    collector = MetricsCollector()
    collector.add(
        RequestRecord(
            request_id=1, user="ChatUser", backend="openai", api="chat",
            name="/v1/chat/completions", model="tiny", stream=True, wall_start=1_790_000_000.0,
            t_start=5.0, t_send=5.0, t_out=[5.04, 5.05], t_done=5.05,
        )
    )  # fmt: skip
    built = build_report(
        collector, percentiles=[50.0], host="http://127.0.0.1:8000", user_classes=["ChatUser"],
        options={}, warmup="none", measure_after_spawn=False,
    )  # fmt: skip
    built = built.model_copy(update={"records_lost": 7, "records_error": "File too large"})
    said = (
        "7 record(s) could not be written to the records file (File too large); they are "
        "counted here but missing from the file"
    )
    assert f"- **LOST**: {said}" in render_markdown(built).decode()
    out = tmp_path / "lost.html"
    out.write_bytes(render_html_report(built))
    with chromium() as driver:
        driver.get(out.as_uri())
        wait_for(driver, "document.body.dataset.ready === '1'")
        assert f"LOST: {said}" in driver.find_element(By.ID, "summary").text
        assert console_errors(driver) == []
