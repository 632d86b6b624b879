"""A gateway whose every error body is unique fills one row of Locust's error table.

Locust keeps a row per distinct error text for the whole run and prints them all at the
end; with a request id in each 502 body, each failure was a new row (a gigabyte in half a
minute of failures). The row's text is the class, status and an id-scrubbed reason; each
record keeps its own full excerpt.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from locust.stats import get_error_report_summary

from sagellm_users import OpenAIChatUser
from sagellm_users.mock_server import MockServerProcess
from tests.fault_tally import FaultRow, add_row
from tests.integration.test_faults import injected_faults
from tests.locust_harness import LocalRun

REQUESTS = 300


def test_unique_gateway_error_bodies_fill_one_locust_row(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    records = tmp_path / "run.jsonl"
    with MockServerProcess(["--ttft-ms", "1", "--tbt-ms", "1", "--error-rate-502", "1"]) as mock:
        assert mock.url is not None
        args = ["--host", mock.url, "--max-tokens", "2"]
        args += ["--server-metrics-interval", "0", "--llm-records", str(records)]
        run = LocalRun([OpenAIChatUser], args)
        run.run_until(requests=REQUESTS, users=8, timeout=60)
        injected = injected_faults(mock.url)["502"]
    failed = [r for r in run.records if r.status == "error"]
    status = Counter(r.status for r in run.records)
    add_row(
        pytestconfig,
        FaultRow("502 ids", len(run.records), status["error"], status["cancelled"], injected, 0),
    )
    assert len(failed) >= REQUESTS - 8
    # Each record keeps its own excerpt, request id included ...
    messages = {r.error_message or "" for r in failed}
    assert len(messages) == len(failed)
    assert all("HTTP 502 Bad Gateway" in m and "request id " in m for m in messages)
    lines = [orjson.loads(line) for line in records.read_bytes().splitlines()]
    assert {line["error"] for line in lines if line["status"] == "error"} == messages
    # ... while Locust's table (and its error report) holds one row for them all.
    errors = list(run.environment.stats.errors.values())
    assert len(errors) == 1, [e.error for e in errors][:3]
    assert errors[0].occurrences == len(failed)
    assert str(errors[0].error).startswith("HTTPStatusError: HTTP 502 Bad Gateway: ")
    report = get_error_report_summary(run.environment.stats)
    assert len(report) == 6 and "upstream connect error" in report[3], report
    # The LLM report groups by class: one group, one example.
    total = run.runtime.collector.total()
    assert total.failures == Counter({"HTTPStatusError": len(failed)})
    assert len(total.failure_examples) == 1
