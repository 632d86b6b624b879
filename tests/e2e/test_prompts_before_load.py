"""The real ``locust`` command with two worker processes: every /tokenize request the server
under test answered is one the report counts as made before the load."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from sagellm_users.mock_server import MockServerProcess
from tests.e2e.locust_process import ROOT, run_locust
from tests.mock_http import call

pytestmark = pytest.mark.e2e

_TOKENIZE = re.compile(r"^sagellm_mock:tokenize_requests_total\{.*\} ([0-9.e+]+)$", re.M)


def test_two_worker_processes_count_prompts_only_before_the_load(
    tmp_path: Path, unused_port: int
) -> None:
    report, records = tmp_path / "report.json", tmp_path / "records.jsonl"
    with MockServerProcess(["--ttft-ms", "5", "--tbt-ms", "1"]) as mock:
        assert mock.url is not None
        result = run_locust(
            "-f", str(ROOT / "locustfiles" / "completions.py"), "--headless",
            "--processes", "2", "-u", "4", "-r", "4", "-t", "3s", "--host", mock.url,
            "--input-tokens", "16:64", "--max-tokens", "2", "--llm-report", str(report),
            "--llm-records", str(records),
            # a free port for the master, not Locust's 5557 that other runs may hold
            "--master-bind-port", str(unused_port), "--master-port", str(unused_port),
        )  # fmt: skip
        found = _TOKENIZE.search(call(mock.url, "GET", "/metrics")[2].decode())
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output
    assert found is not None, output
    answered = int(float(found.group(1)))
    workload = orjson.loads(report.read_bytes())["workload"]
    assert (workload["processes"], workload["prompt_lengths"]) == (2, "exact"), output
    assert workload["tokenize_calls"] == answered, "the server saw none beyond those reported"
    assert answered <= 2 * 16, "a bounded number per worker, whatever the run's length"
    assert f"; {answered} /tokenize calls from 2 processes, all before the load" in output
    files = sorted(tmp_path.glob("records.worker*.jsonl"))
    rows = [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]
    ok = [row for row in rows if row["status"] == "ok"]
    assert len(ok) > 20, output
    assert all(row["prompt_tokens"] == row["input_tokens"] for row in ok)
