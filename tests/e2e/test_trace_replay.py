"""Trace replay with the real ``locust`` command: every line sent once, at its recorded time
(scaled by ``--trace-speed``), with its lengths, in one process or spread over workers;
the run ends with the trace, and a trace that cannot be replayed stops it before load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.locust_process import ROOT, run_locust

CHAT = str(ROOT / "locustfiles" / "chat.py")
LINES = 24
SPACING_MS = 100
SPEED = 2.0


def _trace(tmp_path: Path) -> Path:
    """Lines 100 ms apart, each asking its own output length (4 + its index) so a record
    names its line; lines 0-11 and 12-23 share their first two blocks (hash ids)."""
    path = tmp_path / "trace.jsonl"
    rows = [
        {
            "timestamp": 500 + SPACING_MS * i,
            "input_length": 1100,
            "output_length": 4 + i,
            "hash_ids": [i // 12, 10 + i // 12, 100 + i],
        }
        for i in range(LINES)
    ]
    path.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
    return path


def _replay(tmp_path: Path, *extra: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    report, records = tmp_path / "report.json", tmp_path / "records.jsonl"
    result = run_locust(
        "-f", CHAT, "--headless", "-u", "8", "-r", "8", "-t", "60s",
        "--trace", str(_trace(tmp_path)), "--trace-speed", str(SPEED), "--ignore-eos",
        "--mock-args", "--ttft-ms 5 --tbt-ms 1 --prefix-cache-blocks 4096",
        "--llm-report", str(report), "--llm-records", str(records), *extra,
        timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "every line of the trace was sent and answered; stopping" in output
    rows = [
        orjson.loads(line)
        for path in sorted(tmp_path.glob("records*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]
    return orjson.loads(report.read_bytes()), rows


def _check_schedule(rows: list[dict[str, Any]]) -> None:
    """Each line once, its length as asked, at its time: the offsets of the intended
    starts are the trace's, at its speed, and the requests started on time."""
    assert sorted(row["max_tokens"] for row in rows) == [4 + i for i in range(LINES)]
    assert all(row["status"] == "ok" and row["output_tokens"] == row["max_tokens"] for row in rows)
    assert all(row["input_tokens"] == 1100 + 4 for row in rows), "exact prompts (+ template)"
    by_line = {row["max_tokens"] - 4: row for row in rows}
    first = by_line[0]["intended_wall"]
    for line, row in by_line.items():
        offset_ms = (row["intended_wall"] - first) * 1e3
        assert offset_ms == pytest.approx(line * SPACING_MS / SPEED, abs=1.0), line
    lags = sorted(row["start_lag_ms"] for row in rows)
    assert lags[len(lags) // 2] < 10, "on time (one stall of the machine may delay a few)"


def test_a_trace_is_replayed_at_its_times_and_ends_the_run(tmp_path: Path) -> None:
    report, rows = _replay(tmp_path)
    _check_schedule(rows)
    assert report["completed"] == LINES
    arrivals = report["arrivals"]
    assert arrivals["kind"] == "trace" and arrivals["requests"] == LINES
    assert arrivals["target_rate"] == pytest.approx((LINES - 1) ** -1 * LINES * 1e3 / 50)
    assert report["workload"]["trace_requests"] == LINES
    assert report["workload"]["trace_speed"] == SPEED
    # the second line of each group finds the group's two shared blocks in the cache
    assert report["total"]["total_cached_tokens"] >= 2 * (LINES - 2) * 512 * 0.9


def test_workers_share_the_trace_and_keep_its_schedule(tmp_path: Path) -> None:
    report, rows = _replay(tmp_path, "--processes", "2")
    _check_schedule(rows)
    files = sorted(path.name for path in tmp_path.glob("records*.jsonl"))
    assert files == ["records.worker0.jsonl", "records.worker1.jsonl"]
    assert report["completed"] == LINES


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trace", "{trace}", "--request-rate", "5"], "--trace replays a trace: drop --request"),
        (["--trace-speed", "2"], "--trace-speed 2: there is no trace to replay"),
        (["--trace", "{trace}", "--trace-speed", "0"], "--trace-speed: must be a number > 0"),
        (["--trace", "{missing}"], "cannot read it"),
    ],
)
def test_a_trace_that_cannot_be_replayed_stops_before_load(
    tmp_path: Path, args: list[str], message: str
) -> None:
    trace, missing = _trace(tmp_path), tmp_path / "missing.jsonl"
    args = [a.format(trace=trace, missing=missing) for a in args]
    result = run_locust("-f", CHAT, "--headless", "-u", "1", "-t", "5s", *args, timeout=60)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("sagellm: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Ramping to" not in result.stderr
