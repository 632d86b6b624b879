"""What the real ``locust`` command counts and which exit code it chooses when attempts are
retried or records cannot be written."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from sagellm_users.mock_server import MockServerProcess
from tests.e2e.locust_process import ROOT, run_locust

pytestmark = pytest.mark.e2e

CHAT = str(ROOT / "locustfiles" / "chat.py")


def aggregated_failures(stdout_and_stderr: str) -> int:
    """The failure count of the last "Aggregated" row Locust printed."""
    rows = re.findall(r"^\s*Aggregated\s+(\d+)\s+(\d+)\(", stdout_and_stderr, re.MULTILINE)
    assert rows, stdout_and_stderr
    return int(rows[-1][1])


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
    assert aggregated_failures(output) == 0
    assert "Error report" not in output
    assert re.search(r"^\s*RETRY\s+/v1/chat/completions\s+(\d+)\s+\1\(", output, re.MULTILINE)
    assert result.returncode == 0, output
