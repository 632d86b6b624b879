"""The real ``locust`` command against a gateway that echoes the key and names every
failure with its own request id: Locust's error report (printed at exit), its CSV failures
file and everything else the run prints or writes hold one row per cause and no secret,
while the records keep each failure's own excerpt."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.e2e.locust_process import ROOT, run_locust

CHAT = str(ROOT / "locustfiles" / "chat.py")
KEY = "sk-e2e-5c2b9f10a7d3e864"


def _error_report(stderr: str) -> list[str]:
    """The rows of the error report Locust prints at exit."""
    section = stderr.split("Error report", 1)[1].splitlines()
    separators = [i for i, line in enumerate(section) if line.startswith("-----")]
    return section[separators[0] + 1 : separators[1]]


def test_locust_error_rows_stay_few_and_the_echoed_key_is_nowhere(tmp_path: Path) -> None:
    records = tmp_path / "run.jsonl"
    mock = f"--ttft-ms 1 --tbt-ms 1 --api-key {KEY} --error-rate-502 0.5 --error-rate-echo-401 0.3"
    result = run_locust(
        "-f", CHAT, "--headless", "-u", "8", "-r", "8", "--run-time", "4s",
        "--api-key", KEY, "--max-tokens", "4", "--mock-args", mock,
        "--llm-records", str(records), "--csv", str(tmp_path / "loc"),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    lines = [orjson.loads(line) for line in records.read_bytes().splitlines()]
    failed = [line for line in lines if line["status"] == "error"]
    by_status = {s: [f for f in failed if f["http_status"] == s] for s in (401, 502)}
    assert len(by_status[401]) >= 5 and len(by_status[502]) >= 5, result.stdout[-2000:]
    assert len({f["error"] for f in by_status[502]}) == len(by_status[502]), "each its own id"
    rows = _error_report(result.stderr)
    assert len(rows) == 2, rows
    assert any("HTTP 502 Bad Gateway" in row and "request id <id>" in row for row in rows)
    assert any("HTTP 401 Unauthorized" in row and "[REDACTED]" in row for row in rows)
    failures_csv = (tmp_path / "loc_failures.csv").read_text()
    assert len(failures_csv.strip().splitlines()) == 1 + 2  # a header and the two rows
    written = [records.read_text(), failures_csv, (tmp_path / "loc_stats.csv").read_text()]
    for text in [result.stdout, result.stderr, *written]:
        assert KEY not in text
        assert KEY[4:14] not in text
