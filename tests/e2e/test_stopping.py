"""Stopping the real ``locust`` command mid-stream: Ctrl-C, SIGTERM, ``--run-time`` expiry.

Each run streams long answers from the embedded mock (100 tokens 20 ms apart, users
started 0.5 s apart), so whenever it stops some requests are surely mid-stream. Whatever
stops it, every finished request must be in the records file and in every report, each
one in flight recorded once as ``cancelled`` (never as a failure), every file complete,
and the exit code the one docs/ci.md ("Stopping and exit codes") promises.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from tests.e2e.locust_process import ROOT, locust_args, locust_env

pytestmark = pytest.mark.e2e

CHAT = str(ROOT / "locustfiles" / "chat.py")
STREAM_ARGS = (
    "--headless", "-u", "4", "-r", "2", "--max-tokens", "100", "--ignore-eos",
    "--mock-args", "--ttft-ms 20 --tbt-ms 20",
)  # fmt: skip
"""Each answer streams for 2 s (EOS ignored); the four users start 0.5 s apart."""
DEADLINE_S = 30.0


class Run:
    """One ``locust`` process (and, with --processes, its workers) and its files; its
    merged output is read as it comes."""

    def __init__(self, proc: subprocess.Popen[str], out: Path) -> None:
        self.proc = proc
        self.out = out
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Poll ``condition`` (bounded) while the process runs: no fixed sleeps."""
        deadline = time.monotonic() + DEADLINE_S
        while not condition():
            assert self.proc.poll() is None, f"locust ended before {what}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {what} in {DEADLINE_S} s:\n{self.output}"
            time.sleep(0.02)

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finished_requests(self) -> int:
        """Complete lines in the records files written so far."""
        return sum(path.read_bytes().count(b"\n") for path in self.out.glob("records*.jsonl"))

    def under_way(self) -> None:
        """Every user is spawned and a request has finished, so others are mid-stream."""
        self.wait_for(lambda: self.logged("All users spawned"), "'All users spawned'")
        self.wait_for(lambda: self.finished_requests() >= 1, "finished request")

    def signal(self, signum: int, group: bool = False) -> None:
        """Send ``signum`` to locust, or to its whole process group (a terminal's Ctrl-C)."""
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)

    def end(self, timeout: float = 60) -> int:
        """Wait (bounded) for locust to exit; its exit code, once its output is all read."""
        returncode = self.proc.wait(timeout)
        self._reader.join(timeout)
        return returncode


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start(*args: str) -> Run:
        """``locust -f chat.py`` writing every file it can, in a session of its own.

        Not Locust's --csv with --processes: Locust 2.47 closes those files at exit
        without stopping the greenlet that rewrites them every second, and the master's
        wait for its forked workers at exit can let it run once more (a ValueError
        traceback from Locust's stats_writer; the files themselves are whole)."""
        locust_csv = [] if "--processes" in args else ["--csv", str(tmp_path / "loc")]
        command = locust_args([
            sys.executable, "-m", "locust", "-f", CHAT, *STREAM_ARGS,
            "--llm-records", str(tmp_path / "records.jsonl"),
            "--llm-report", str(tmp_path / "report.json"),
            "--llm-report", str(tmp_path / "report.csv"),
            "--llm-html", str(tmp_path / "report.html"),
            *locust_csv,
            *args,
        ])  # fmt: skip
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=locust_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        run = Run(proc, tmp_path)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait()


def read_records(paths: list[Path]) -> list[dict[str, Any]]:
    """Every line of the records files, each a complete JSON object."""
    records = []
    for path in paths:
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path.name}: partial last line"
        records += [orjson.loads(line) for line in data.splitlines()]
    return records


def check_files(run: Run, records_files: list[str], exit_code: int = 0) -> Counter[str]:
    """Records, reports and summary agree; every file is complete. Returns the statuses."""
    output = run.output
    assert "Traceback" not in output, output
    assert f"Shutting down (exit code {exit_code})" in output, output
    files = sorted(run.out.glob("records*.jsonl"))
    assert [f.name for f in files] == records_files, output
    records = []
    for path in files:
        lines = read_records([path])
        ids = [line["id"] for line in lines]
        assert len(set(ids)) == len(ids), f"{path.name}: each request recorded exactly once"
        records += lines
    assert records, output
    status = Counter(str(r["status"]) for r in records)
    assert set(status) <= {"ok", "cancelled"}, f"no request failed for the stop: {status}"
    ok = [r for r in records if r["status"] == "ok"]
    assert all(r["output_tokens"] == 100 and r["finish_reason"] == "length" for r in ok)

    report = orjson.loads((run.out / "report.json").read_bytes())
    total = report["total"]
    assert total["requests"] == len(records)
    assert total["requests"] == total["completed"] + total["failed"] + total["cancelled"]
    assert (report["completed"], report["failed"]) == (status["ok"], 0)
    assert total["cancelled"] == status["cancelled"]
    assert report["total_output_tokens"] == 100 * len(ok)

    with (run.out / "report.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["scope"] == "total"
    counts = ("requests", "completed", "failed", "cancelled")
    assert [int(rows[0][c]) for c in counts] == [total[c] for c in counts]
    html = (run.out / "report.html").read_text(encoding="utf-8")
    assert html.rstrip().endswith("</html>")
    if len(files) == 1:  # one process: Locust's --csv too (see start)
        check_locust_csv(run.out, len(ok))

    summary = re.search(r"^  requests (\d+)  ok (\d+)  failed 0 ", output, re.MULTILINE)
    assert summary is not None, output
    assert (int(summary[1]), int(summary[2])) == (len(records), len(ok))
    if len(files) == 1:
        assert f"Records: {len(records)} lines in {files[0]}" in output
    else:
        assert "Records: written by each worker, next to" in output
    return status


def check_locust_csv(out: Path, ok: int) -> None:
    """Locust's own --csv files: whole rows, the Aggregated row last. Locust rewrites them
    once a second and not at exit, so they may miss the last second (docs/ci.md)."""
    for name in ("loc_stats.csv", "loc_stats_history.csv", "loc_failures.csv"):
        data = (out / name).read_text()
        assert data.endswith("\n"), f"{name}: partial last line"
        rows = list(csv.reader(data.splitlines()))
        assert all(len(row) == len(rows[0]) for row in rows), name
    with (out / "loc_stats.csv").open(newline="") as f:
        stats = list(csv.DictReader(f))
    assert stats[-1]["Name"] == "Aggregated"
    assert int(stats[-1]["Request Count"]) <= ok, "E2E rows: finished requests only"


def assert_cancelled_mid_stream(records_dir: Path) -> None:
    """The stop came while requests streamed: some cancelled one had output already."""
    records = read_records(sorted(records_dir.glob("records*.jsonl")))
    cancelled = [r for r in records if r["status"] == "cancelled"]
    assert cancelled and any(r["out_ms"] for r in cancelled), cancelled
    assert all(
        r["error"] == "the user was stopped while the request was in flight" for r in cancelled
    )


@pytest.mark.parametrize(
    ("signum", "group"),
    [
        pytest.param(signal.SIGINT, False, id="SIGINT"),
        pytest.param(signal.SIGINT, True, id="Ctrl-C-in-a-terminal"),
        pytest.param(signal.SIGTERM, False, id="SIGTERM"),
    ],
)
def test_a_signal_mid_stream_cancels_the_requests_in_flight(
    start: Callable[..., Run], signum: int, group: bool
) -> None:
    """A terminal's Ctrl-C reaches the whole process group, the embedded mock included:
    the mock must outlive the users, so their requests end cancelled, not cut."""
    run = start()
    run.under_way()
    run.signal(signum, group)
    assert run.end() == 0, run.output
    status = check_files(run, ["records.jsonl"])
    assert status["ok"] >= 1 and status["cancelled"] >= 1
    assert_cancelled_mid_stream(run.out)
    said = re.search(r"sagellm: stopping: (\d+) request\(s\) in flight; each one", run.output)
    assert said is not None and int(said[1]) >= 1, run.output
    told = re.search(
        r"sagellm: users stopped: (\d+) request\(s\) recorded as cancelled", run.output
    )
    assert told is not None and int(told[1]) == status["cancelled"], run.output


@pytest.mark.parametrize("stop_timeout", ["0", "10"])
def test_run_time_expiry(start: Callable[..., Run], stop_timeout: str) -> None:
    """--run-time ends the test as Locust does: by default the requests in flight are
    cancelled; with --stop-timeout they finish first (2 s streams, 10 s allowed)."""
    run = start("--run-time", "3s", "--stop-timeout", stop_timeout)
    assert run.end() == 0, run.output
    status = check_files(run, ["records.jsonl"])
    if stop_timeout == "0":
        assert status["ok"] >= 1 and status["cancelled"] >= 1
        assert_cancelled_mid_stream(run.out)
    else:
        assert status["cancelled"] == 0 and status["ok"] >= 4


@pytest.mark.parametrize(
    "stop",
    ["SIGTERM-to-the-master", "Ctrl-C-in-a-terminal", "run-time", "Ctrl-C-while-stopping"],
)
def test_distributed_stop_keeps_every_workers_last_requests(
    start: Callable[..., Run], stop: str
) -> None:
    """--processes 2: the master's report counts exactly what the workers' records hold,
    their last requests (finished or cancelled while stopping) included; with
    --stop-timeout the master waits for them, and a Ctrl-C then cancels them at once."""
    if stop.startswith("SIGTERM") or stop.startswith("Ctrl-C-in"):
        run = start("--processes", "2")
        run.under_way()
        if stop.startswith("SIGTERM"):
            run.signal(signal.SIGTERM)  # the master's: it asks the workers to quit
        else:
            run.signal(signal.SIGINT, group=True)  # every process's at once
    elif stop == "run-time":
        run = start("--processes", "2", "--run-time", "3s", "--stop-timeout", "10")
    else:
        run = start("--processes", "2", "--run-time", "3s", "--stop-timeout", "30")
        waiting = "sagellm: stopping: waiting up to 30 s"
        run.wait_for(lambda: run.output.count(waiting) == 2, "both workers stopping")
        run.signal(signal.SIGINT, group=True)
    assert run.end() == 0, run.output
    status = check_files(run, ["records.worker0.jsonl", "records.worker1.jsonl"])
    assert status["ok"] >= 1
    if stop == "run-time":
        assert status["cancelled"] == 0, "--stop-timeout let every request finish"
    else:
        assert status["cancelled"] >= 1
        assert_cancelled_mid_stream(run.out)


def test_a_master_killed_with_minus_9_takes_its_forked_workers_with_it(
    start: Callable[..., Run],
) -> None:
    """kill -9 on a --processes master ends its embedded mock too: its workers stop at
    once, their records whole, instead of failing every request against the closed port
    until Locust's master heartbeat timeout (a minute)."""
    run = start("--processes", "2")
    run.under_way()
    workers = [
        child
        for child in psutil.Process(run.proc.pid).children()
        if "sagellm_users.mock_server" not in child.cmdline()
    ]
    assert len(workers) == 2
    run.signal(signal.SIGKILL)
    try:
        assert run.end() == -signal.SIGKILL  # and its output, the workers' too, is all read
        _gone, alive = psutil.wait_procs(workers, timeout=DEADLINE_S)
        assert alive == []
    finally:
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
    output = run.output
    assert output.count("the process that started this worker") == 2, output
    assert "Traceback" not in output, output
    files = sorted(run.out.glob("records.worker*.jsonl"))
    assert [f.name for f in files] == ["records.worker0.jsonl", "records.worker1.jsonl"]
    assert any(r["status"] == "ok" for r in read_records(files)), "each file ends whole"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(signal.SIGTERM, None, id="SIGTERM-waits"),
        pytest.param(signal.SIGINT, signal.SIGINT, id="Ctrl-C-twice"),
        pytest.param(signal.SIGTERM, signal.SIGTERM, id="SIGTERM-twice"),
        pytest.param(None, signal.SIGINT, id="Ctrl-C-after-run-time"),
        pytest.param(None, signal.SIGTERM, id="SIGTERM-after-run-time"),
    ],
)
def test_with_stop_timeout_a_signal_while_stopping_cancels_what_is_waited_for(
    start: Callable[..., Run], first: int | None, second: int | None
) -> None:
    """With --stop-timeout the requests in flight may finish (after a signal or at the
    end of --run-time); a signal meanwhile cancels them at once, and the shutdown still
    writes every file, once."""
    run = start("--stop-timeout", "30", *(["--run-time", "3s"] if first is None else []))
    if first is not None:
        run.under_way()
        run.signal(first)
    run.wait_for(lambda: run.logged("sagellm: stopping: waiting up to 30 s"), "stopping line")
    if second is not None:
        run.signal(second)
    assert run.end() == 0, run.output
    status = check_files(run, ["records.jsonl"])
    assert run.output.count("LLM summary") == 1
    if second is None:
        assert status["cancelled"] == 0 and status["ok"] >= 4
    else:
        said = re.search(r"sagellm: stopping now: (\d+) request\(s\) in flight", run.output)
        assert said is not None and int(said[1]) >= 1, run.output
        assert_cancelled_mid_stream(run.out)


def test_the_slo_gate_judges_a_run_stopped_by_a_signal(start: Callable[..., Run]) -> None:
    """Ctrl-C does not bypass --slo: what was measured is judged (a 1 ms TTFT fails)."""
    run = start("--slo", "ttft_p50<=1ms")
    run.under_way()
    run.signal(signal.SIGINT)
    assert run.end() == 3, run.output
    check_files(run, ["records.jsonl"], exit_code=3)
    assert "SLO FAILED" in run.output
