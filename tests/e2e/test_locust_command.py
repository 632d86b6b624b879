"""The real ``locust`` command as a subprocess, as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import orjson
import pytest

from sagellm_users.mock_server import MockServerProcess
from tests.e2e.locust_process import ROOT, run_locust

pytestmark = pytest.mark.e2e

CHAT = str(ROOT / "locustfiles" / "chat.py")
COMPLETIONS = str(ROOT / "locustfiles" / "completions.py")


def locust(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return run_locust(*args, timeout=timeout)


def summary_requests(stdout: str) -> int:
    """The request count of the LLM summary's first block."""
    match = re.search(r"^  requests (\d+)  ok ", stdout, re.MULTILINE)
    assert match is not None, stdout
    return int(match.group(1))


def read_records(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_headless_against_the_embedded_mock(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    result = locust(
        "-f", CHAT, "--config", "configs/smoke.conf", "--run-time", "4s",
        "--llm-records", str(records),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "started the embedded mock LLM server at http://127.0.0.1:" in output
    assert "LLM summary: window" in result.stdout
    for row in ("TTFT (ms)", "TBT (ms)", "ITL (ms)", "TPOT (ms)", "E2E (ms)"):
        assert row in result.stdout
    lines = read_records(records)
    summary_count = summary_requests(result.stdout)
    assert len(lines) == summary_count > 0, "one record line per request, none lost"
    assert f"Records: {len(lines)} lines" in result.stdout
    assert all(line["status"] in ("ok", "cancelled") for line in lines)
    assert any(line["status"] == "ok" and line["output_tokens"] == 32 for line in lines)


def test_headless_against_a_given_host(tmp_path: Path) -> None:
    with MockServerProcess(["--ttft-ms", "20", "--tbt-ms", "5", "--model", "given"]) as mock:
        assert mock.url is not None
        records = tmp_path / "r.jsonl"
        result = locust(
            "-f", COMPLETIONS, "--headless", "-u", "3", "-r", "3", "-t", "3s",
            "--host", mock.url, "--max-tokens", "8", "--llm-records", str(records),
        )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "embedded mock" not in output
    assert "Traceback" not in output
    assert "/v1/completions" in result.stdout
    lines = read_records(records)
    assert lines and all(line["model"] == "given" for line in lines if line["status"] == "ok")


def test_distributed_processes_merge_on_the_master(tmp_path: Path) -> None:
    records = tmp_path / "dist.jsonl"
    report = tmp_path / "report.json"
    result = locust(
        "-f", CHAT, "--headless", "--processes", "2", "-u", "4", "-r", "4", "-t", "5s",
        "--max-tokens", "16", "--llm-records", str(records), "--mock-args", "--tbt-ms 5",
        "--llm-report", str(report), "--llm-percentiles", "50,99,99.9",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert output.count("LLM summary") == 1, "only the master prints the summary"
    files = sorted(tmp_path.glob("dist.worker*.jsonl"))
    assert [f.name for f in files] == ["dist.worker0.jsonl", "dist.worker1.jsonl"]
    lines = [line for f in files for line in read_records(f)]
    summary_count = summary_requests(result.stdout)
    assert len(lines) == summary_count > 0, "the master counted every worker's requests"
    ok = [line for line in lines if line["status"] == "ok"]
    assert f"ok {len(ok)} " in result.stdout
    assert f"out {sum(int(str(line['output_tokens'])) for line in ok)}" in result.stdout
    data = orjson.loads(report.read_bytes())
    assert data["completed"] == len(ok)
    assert data["failed"] == 0
    assert data["total"]["cancelled"] == len(lines) - len(ok)
    assert data["total_output_tokens"] == sum(int(str(line["output_tokens"])) for line in ok)
    assert data["total_input_tokens"] == sum(int(str(line["input_tokens"])) for line in ok)
    ttfts = sorted(float(str(line["ttft_ms"])) for line in ok)
    assert data["total"]["ttft_ms"]["max"] == pytest.approx(ttfts[-1], rel=1e-6)
    assert data["mean_ttft_ms"] == pytest.approx(sum(ttfts) / len(ttfts), rel=1e-6)
    assert {"p50_itl_ms", "p99_itl_ms", "p99.9_itl_ms"} <= set(data)
    assert data["run"]["options"]["api_key_set"] is False


def _wait_for_size(path: Path, size: int, timeout: float = 30.0) -> bool:
    """Poll (bounded) until ``path`` holds ``size`` bytes: the run is under way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size >= size:
            return True
        time.sleep(0.05)
    return False


def test_sigterm_mid_run_loses_no_finished_request(tmp_path: Path) -> None:
    """Finished requests are recorded when the loop is idle; a SIGTERM while some are
    still queued must still see every one in the records and the summary."""
    records = tmp_path / "term.jsonl"
    report = tmp_path / "term.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [
        sys.executable, "-m", "locust", "-f", CHAT, "--headless", "-u", "64", "-r", "64",
        "-t", "60s", "--max-tokens", "8", "--mock-args", "--tbt-ms 1 --ttft-ms 1",
        "--llm-records", str(records), "--llm-report", str(report),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # ends at EOF if locust dies before spawning
            seen.append(line)
            if "All users spawned" in line:
                break
        assert "All users spawned" in "".join(seen), "".join(seen)
        assert _wait_for_size(records, 100_000), "no requests finished"  # ~150 lines
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = stdout + "".join(seen) + stderr
    assert "Traceback" not in output, output
    lines = read_records(records)
    assert len(lines) == summary_requests(stdout) > 64, output
    assert "failed 0 " in stdout, "no request failed because the test was ending"
    data = orjson.loads(report.read_bytes())
    ok = [line for line in lines if line["status"] == "ok"]
    assert data["completed"] == len(ok)
    assert data["total"]["cancelled"] == len(lines) - len(ok)
    assert len({line["id"] for line in lines}) == len(lines), "each request exactly once"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-tokens", "-5"], "--max-tokens"),
        (["--extra-body", "{not json"], "--extra-body: not valid JSON"),
        (["--prompt-file", "/nonexistent/prompts.txt"], "--prompt-file: no such file"),
        (["--host", "localhost:8000"], "--host"),
        (["--llm-records", "/nonexistent-dir/records.jsonl"], "--llm-records"),
        (["--header", "no colon"], "--header"),
        (["--llm-report", "report.txt"], "--llm-report"),
        (["--llm-percentiles", "50,abc"], "--llm-percentiles"),
        (["--warmup", "soon"], "--warmup"),
        (["--slo-early-stop"], "--slo-early-stop: there is no objective"),
        (["--step-users", "4:4:8"], "--step-users: no load shape runs"),
        (["--mock-args", "--ttft-ms -5"], "--mock-args: invalid mock server config"),
        (["--input-tokens", "8", "--tokenizer", "/nonexistent"], "tokenizer path"),
    ],
)
def test_invalid_options_stop_before_any_load(args: list[str], message: str) -> None:
    result = locust("-f", CHAT, "--headless", "-u", "1", "-t", "5s", *args, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("sagellm: ")]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    assert "Ramping to" not in result.stderr, "no load was started"


def test_the_documented_custom_locustfile_runs(tmp_path: Path) -> None:
    docs = (ROOT / "docs" / "backends.md").read_text()
    section = docs.split("## Writing your own locustfile", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    locustfile = tmp_path / "rag.py"
    locustfile.write_text(code)
    result = locust(
        "-f", str(locustfile), "--headless", "-u", "2", "-r", "2", "-t", "2s",
        "--max-tokens", "4",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "rag-question" in result.stdout
    assert "/v1/chat/completions" not in result.stdout, "only the subclass ran"


def test_unreachable_host_fails_requests_not_the_run(unused_port: int) -> None:
    result = locust(
        "-f", CHAT, "--headless", "-u", "1", "-r", "1", "-t", "2s",
        "--host", f"http://127.0.0.1:{unused_port}", "--model", "m", "--skip-host-check",
    )  # fmt: skip
    assert result.returncode == 1, "Locust's exit code for a run with failures"
    assert "Traceback" not in result.stdout + result.stderr
    assert "failure ConnectError" in result.stdout
    assert "connection refused" in result.stdout.lower()
    assert "times after connection errors in a row" in result.stdout  # not a flood
    assert "connection errors in a row to" in result.stderr  # said once, in the log


def test_warmup_is_left_out_and_said(tmp_path: Path) -> None:
    records = tmp_path / "w.jsonl"
    result = locust(
        "-f", CHAT, "--headless", "-u", "2", "-r", "2", "-t", "3s", "--max-tokens", "4",
        "--warmup", "1s", "--llm-records", str(records),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = read_records(records)
    warm = sum(bool(line["warmup"]) for line in lines)
    assert warm > 0
    assert "(warm-up 1 s) to the last completion" in result.stdout
    assert f"; {warm} warm-up requests excluded" in result.stdout
    summary_count = summary_requests(result.stdout)
    assert summary_count == len(lines) - warm


def test_master_and_two_worker_processes(tmp_path: Path, unused_port: int) -> None:
    """--master --expect-workers 2 plus two --worker commands, as on separate machines."""
    report = tmp_path / "mw.json"
    records = tmp_path / "mw.jsonl"
    with MockServerProcess(["--ttft-ms", "10", "--tbt-ms", "4"]) as mock:
        assert mock.url is not None
        common = ["-f", CHAT, "--host", mock.url, "--max-tokens", "8"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "locust",
                    *common,
                    "--worker",
                    "--master-port",
                    str(unused_port),
                    "--llm-records",
                    str(records),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            result = locust(
                *common, "--master", "--master-bind-port", str(unused_port),
                "--expect-workers", "2", "--headless", "-u", "4", "-r", "4", "-t", "4s",
                "--llm-report", str(report),
            )  # fmt: skip
            worker_output = [w.communicate(timeout=60)[0] for w in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
    assert result.returncode == 0, result.stdout + result.stderr
    assert all("Traceback" not in out for out in [result.stderr, *worker_output])
    assert all(w.returncode == 0 for w in workers)
    files = sorted(tmp_path.glob("mw.worker*.jsonl"))
    assert len(files) == 2
    lines = [line for f in files for line in read_records(f)]
    data = orjson.loads(report.read_bytes())
    ok = [line for line in lines if line["status"] == "ok"]
    assert data["completed"] == len(ok) > 0
    assert data["total"]["requests"] == len(lines)
    assert data["total_output_tokens"] == 8 * len(ok)


@pytest.mark.parametrize(
    ("slo", "code", "verdict"),
    [
        ("ttft_p99<=500ms,error_rate<=1%,output_throughput>=10", 0, "all objectives met"),
        ("ttft_p50<=5ms,error_rate<=1%", 3, "SLO FAILED"),
    ],
)
def test_slo_gate_sets_the_exit_code(tmp_path: Path, slo: str, code: int, verdict: str) -> None:
    report, junit = tmp_path / "slo.json", tmp_path / "verdicts.xml"
    result = locust(
        "-f", CHAT, "--headless", "-u", "2", "-r", "2", "-t", "2s", "--max-tokens", "4",
        "--slo", slo, "--llm-report", str(report), "--llm-report", str(junit),
    )  # fmt: skip
    assert result.returncode == code, result.stdout + result.stderr
    assert verdict in result.stdout
    data = orjson.loads(report.read_bytes())
    assert [r["passed"] for r in data["slos"]] == [
        line.endswith("pass")
        for line in result.stdout.splitlines()
        if line.startswith("    ") and line.rstrip().endswith(("pass", "FAIL"))
    ]
    # The same verdicts as JUnit XML, one test case per objective, as CI shows them.
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case.find("failure") for case in suite.iter("testcase")}
    assert list(cases) == [r["slo"] for r in data["slos"]]
    assert [failure is None for failure in cases.values()] == [r["passed"] for r in data["slos"]]
    assert suite.get("failures") == str(sum(not r["passed"] for r in data["slos"]))


def test_slo_early_stop_ends_the_run_and_fails_the_gate(tmp_path: Path) -> None:
    report = tmp_path / "early.json"
    records = tmp_path / "early.jsonl"
    result = locust(
        "-f", CHAT, "--headless", "-u", "2", "-r", "2", "-t", "60s", "--max-tokens", "4",
        "--slo", "e2el_max<=1ms", "--slo-early-stop", "--llm-report", str(report),
        "--llm-records", str(records),
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    assert "can no longer be met" in result.stderr
    assert "stopped early at" in result.stdout and "SLO FAILED" in result.stdout
    data = orjson.loads(report.read_bytes())
    assert data["window"]["seconds"] < 30, "stopped long before --run-time"
    assert list(data["early_stop"]["objectives"]) == ["e2el_max<=1ms"]
    assert data["slos"][0]["passed"] is False
    assert data["total"]["requests"] == len(read_records(records)) > 0


def test_an_in_process_engine_runs_under_the_real_command(tmp_path: Path) -> None:
    """VLLMLocalUser with the fake vLLM package (tests/fakes) on the engine's path: no
    server, no mock; the summary names the engine and its rows."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "fakes"), PYTHONUNBUFFERED="1")
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "vllm_local.py"),
        "--headless", "-u", "4", "-r", "4", "-t", "3s", "--vllm-model", str(tmp_path),
        "--engine-arg", "ttft_ms=20", "--engine-arg", "itl_ms=4", "--max-tokens", "8",
        "--ignore-eos", "--only-summary", "--stop-timeout", "5",
        "--engine-log", str(tmp_path / "engine.log"),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output and "embedded mock" not in output
    assert "in-process chat" in result.stdout
    assert "vllm 0.0.0+fake  model" in result.stdout
    assert summary_requests(result.stdout) > 0


def test_an_in_process_user_without_its_model_exits_1_before_load() -> None:
    result = locust("-f", str(ROOT / "locustfiles" / "vllm_local.py"), "--headless", "-t", "2s")
    assert result.returncode == 1
    assert "VLLMLocalUser run vllm in-process: pass --vllm-model" in result.stderr
