"""Against a real vLLM: the load test's counts equal vLLM's own counters.

Runs the real ``locust`` command (headless) with VLLMUser and with OpenAIChatUser. With
``--ignore-eos`` every request yields exactly ``--max-tokens``; ``--stop-timeout`` lets
the last requests finish, so nothing is aborted and the counts must match exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.real.conftest import TIER_TIMEOUT_S

pytestmark = [pytest.mark.real_vllm, pytest.mark.timeout(TIER_TIMEOUT_S)]

ROOT = Path(__file__).resolve().parents[2]
MAX_TOKENS = 16


def _locust(locustfile: str, url: str, report: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile),
        "--host", url, "--headless", "-u", "4", "-r", "4", "-t", "8s", "--stop-timeout", "30",
        "--max-tokens", str(MAX_TOKENS), "--ignore-eos", "--server-metrics-interval", "1",
        "--llm-report", str(report), "--only-summary",
    ]  # fmt: skip
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("locustfile", ["vllm.py", "chat.py"])
def test_counts_match_vllms_own_counters(vllm_url: str, locustfile: str, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    run = _locust(locustfile, vllm_url, report_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    report = orjson.loads(report_path.read_bytes())
    total = report["total"]
    assert total["failed"] == 0 and total["cancelled"] == 0 and total["completed"] > 0
    assert total["total_output_tokens"] == MAX_TOKENS * total["completed"]
    (server,) = report["server"]
    assert server["version"], "vLLM's /version is in the report"
    assert server["requests"] == total["completed"]
    assert server["generation_tokens"] == total["total_output_tokens"]
    assert server["prompt_tokens"] == total["total_input_tokens"]
    # The client's TTFT adds HTTP and parsing to vLLM's own: close to it, never below it
    # by more than vLLM's bucket resolution.
    client, own = total["ttft_ms"], server["ttft_ms"]
    assert own["count"] == total["completed"]
    assert own["mean"] <= client["mean"] + 1.0
    assert client["mean"] - own["mean"] < 50.0


def test_the_in_process_engine_on_the_same_model(
    vllm_python: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """VLLMLocalUser: vLLM's AsyncLLM in a child process run by the vLLM venv's Python,
    every token stamped by the engine's process; exact token counts, per-token ITL."""
    report_path = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "vllm_local.py"),
        "--headless", "-u", "4", "-r", "4", "-t", "8s", "--stop-timeout", "30",
        "--max-tokens", str(MAX_TOKENS), "--ignore-eos", "--llm-report", str(report_path),
        "--only-summary", "--vllm-model", str(tiny_model), "--engine-python", str(vllm_python),
        "--engine-arg", "load_format=dummy", "--engine-arg", "dtype=float32",
        "--engine-arg", "max_model_len=512", "--engine-arg", "served_model_name=tiny",
        "--engine-log", str(tmp_path / "engine.log"),
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    report = orjson.loads(report_path.read_bytes())
    total = report["total"]
    assert total["failed"] == 0 and total["cancelled"] == 0 and total["completed"] > 0
    assert total["total_output_tokens"] == MAX_TOKENS * total["completed"]
    assert total["itl_ms"]["count"] == (MAX_TOKENS - 1) * total["completed"]
    assert total["ttft_ms"]["min"] > 0
    (engine,) = report["engines"]
    assert (engine["engine"], engine["version"], engine["model"]) == ("vllm", "0.32.0", "tiny")
    assert report["by_name"][0]["name"] == "in-process chat"
