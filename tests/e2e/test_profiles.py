"""Every profile in configs/ runs headless with the real ``locust --config`` against the
embedded mock (shortened), and a sweep finds the capacity the mock was configured with."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from sagellm_users._report import LLMReport
from tests.e2e.locust_process import ROOT, run_locust, start_locust

pytestmark = pytest.mark.e2e

PROFILES = sorted(p.stem for p in (ROOT / "configs").glob("*.conf"))
WORKLOAD_PROFILES = [
    "chat-short",
    "chat-long",
    "rag-prefix",
    "multiturn",
    "open-loop-poisson",
    "sweep",
    "ci-smoke",
]
SHORTER = {  # each profile as shipped, only shorter (and the sweep with short stages)
    "sweep": ["--sweep", "2:2:4", "--stage-time", "2s", "--sweep-settle", "0.5s"],
    "chat-long": ["--run-time", "4s", "--mock-args", "--ttft-ms 20 --tbt-ms 1"],
}

SWEEP_ARGS = [
    "-f", "locustfiles/chat.py,locustfiles/shapes/sweep.py", "--headless",
    "--sweep", "1:1:8", "--stage-time", "2s", "--sweep-settle", "0.5s",
    "--slo", "ttft_p50<=40ms,ttft_p99<=1s", "--max-tokens", "16", "--ignore-eos",
    "--mock-args", "--ttft-ms 20 --tbt-ms 10 --max-concurrency 4",
]  # fmt: skip
BROKEN_SWEEP_ARGS = [
    "-f", "locustfiles/chat.py,locustfiles/shapes/sweep.py", "--headless",
    "--sweep", "2:2:4", "--stage-time", "1.5s", "--sweep-settle", "0.3s",
    "--slo", "ttft_p99<=5ms", "--max-tokens", "4",
    "--mock-args", "--ttft-ms 20 --tbt-ms 1",
]  # fmt: skip


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_locust(*args, timeout=timeout)


def test_every_workload_profile_is_shipped() -> None:
    assert set(WORKLOAD_PROFILES) <= set(PROFILES)


def test_every_profile_runs_headless_against_the_mock(tmp_path: Path) -> None:
    """All profiles at once (each its own locust and mock), then each one's verdict."""
    running: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for name in WORKLOAD_PROFILES:
        report_path = tmp_path / f"{name}.json"
        args = ["--config", f"configs/{name}.conf", "--run-time", "3s"]
        args += [*SHORTER.get(name, []), "--llm-report", str(report_path)]
        running[name] = (start_locust(*args), report_path)
    for name, (proc, path) in running.items():
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name}:\n{output}"
        assert "Traceback" not in output, f"{name}:\n{output}"
        assert "Workload:" in output, f"{name}:\n{output}"
        result = LLMReport.model_validate(orjson.loads(path.read_bytes()))
        assert result.total.completed > 0, name
        assert result.total.failed == 0, name
        assert result.workload is not None and result.workload["name"] == _workload(name)
        assert result.workload["token_source"] == "server", "the mock's /tokenize counts"
        if name == "multiturn":
            assert [t.turn for t in result.turns][:1] == [1]
        if name == "open-loop-poisson":
            assert result.arrivals is not None and result.arrivals.requests > 0
        if name == "sweep":
            assert result.sweep is not None and result.sweep.stages


def _workload(profile: str) -> str:
    return {"open-loop-poisson": "open-loop", "sweep": "chat-short"}.get(profile, profile)


def test_a_sweep_finds_the_mocks_capacity(tmp_path: Path) -> None:
    """The mock runs 4 sequences at once and queues the rest: with 5 users one request is
    always queued, every request waits for a slot to free (a third of a ~170 ms request on
    the median), and the median TTFT (20 ms while nothing queues) passes 40 ms.

    The objective is the median, not p99: a stage has ~35 requests, so its p99 is its slowest,
    and one scheduling stall of the machine running the test (50 ms was seen in CI) broke a
    p99 objective at 3 users. The median moves only when most requests wait, as queueing makes
    them. The loose p99 bound gives the curve a threshold line to carry."""
    report_path = tmp_path / "sweep.json"
    result = _run(*SWEEP_ARGS, "--llm-report", str(report_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    report = LLMReport.model_validate(orjson.loads(report_path.read_bytes()))
    sweep = report.sweep
    assert sweep is not None and sweep.unit == "users"
    assert sweep.capacity is not None and abs(sweep.capacity - 4) <= 1, output
    assert sweep.broke_at == sweep.capacity + 1
    assert [s.passed for s in sweep.stages] == [True] * (len(sweep.stages) - 1) + [False]
    assert f"capacity: {sweep.capacity:g} users met every objective" in result.stdout
    # The serving curve: each stage's p99s against what it achieved, the bound, capacity.
    curve = report.curve
    assert curve is not None and curve.capacity == sweep.capacity
    assert [p.load for p in curve.points] == [s.load for s in sweep.stages]
    assert curve.thresholds == {"ttft_p99_ms": 1000.0}
    for point, stage in zip(curve.points, sweep.stages, strict=True):
        assert point.request_throughput == stage.request_throughput > 0
        assert point.ttft_p99_ms == stage.ttft_p99_ms
        assert point.itl_p99_ms is not None and point.e2el_p99_ms is not None


def test_a_step_load_draws_a_serving_curve(tmp_path: Path) -> None:
    """Each step is a point: what it achieved and its p99s, judged against --slo."""
    report_path = tmp_path / "steps.json"
    result = _run(
        "-f", "locustfiles/chat.py,locustfiles/shapes/step.py", "--headless",
        "--step-users", "1:2:5", "--stage-time", "2s", "--slo", "ttft_p99<=40ms",
        "--max-tokens", "8", "--mock-args", "--ttft-ms 10 --tbt-ms 2 --max-concurrency 4",
        "--llm-report", str(report_path),
    )  # fmt: skip
    assert result.returncode in (0, 3), result.stdout + result.stderr
    report = LLMReport.model_validate(orjson.loads(report_path.read_bytes()))
    curve = report.curve
    assert curve is not None and curve.unit == "users"
    assert [p.load for p in curve.points] == [1, 3, 5]
    assert curve.thresholds == {"ttft_p99_ms": 40.0}
    throughputs = [p.request_throughput for p in curve.points]
    assert throughputs[0] > 0 and throughputs[1] > throughputs[0], throughputs
    assert all(p.passed is not None and p.ttft_p99_ms is not None for p in curve.points)
    assert report.run.load is not None and report.run.load.shape == "StepLoadShape"
    assert report.run.load.stages == {"stage_time_s": 2.0, "users": [1, 3, 5]}


def test_a_sweep_that_breaks_at_once_exits_3(tmp_path: Path) -> None:
    result = _run(*BROKEN_SWEEP_ARGS)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "capacity: none" in result.stdout


def test_a_bad_workload_is_refused_before_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('input_tokens = "12:4"\n', encoding="utf-8")
    args = ("-f", "locustfiles/chat.py", "--headless", "-t", "2s", "--workload", str(bad))
    result = _run(*args, timeout=60)
    assert result.returncode == 1
    assert "input_tokens" in result.stderr and "12" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_rate_sweep_runs_each_stage_at_its_rate(tmp_path: Path) -> None:
    """The first stage's rate is the sweep's, not --request-rate's (which only turns the
    open loop on): each stage's completions follow its own rate."""
    report_path = tmp_path / "rates.json"
    result = _run(
        "-f", "locustfiles/chat.py,locustfiles/shapes/sweep.py", "--headless", "-u", "16",
        "--request-rate", "1", "--arrival", "constant", "--sweep", "20:20:40",
        "--stage-time", "3s", "--sweep-settle", "1s", "--slo", "ttft_p99<=500ms",
        "--max-tokens", "4", "--mock-args", "--ttft-ms 5 --tbt-ms 1",
        "--llm-report", str(report_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    sweep = LLMReport.model_validate(orjson.loads(report_path.read_bytes())).sweep
    assert sweep is not None and sweep.unit == "req/s"
    assert [s.load for s in sweep.stages] == [20, 40]
    for stage in sweep.stages:
        assert stage.request_throughput == pytest.approx(stage.load, rel=0.15), stage
