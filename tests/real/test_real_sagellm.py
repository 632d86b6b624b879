"""Against sageLLM's real engine in-process (package ``isagellm``), on the tiny model.

Opt-in: ``isagellm`` pulls a CUDA build of torch (gigabytes), so this tier does not install
it. Point ``SAGELLM_ISAGELLM_PYTHON`` at the python of a venv where ``pip install isagellm``
ran (it runs on CPU); the test then builds the tiny model with random weights there and
runs SageLLMLocalUser through the real ``locust`` command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = [pytest.mark.real_sagellm, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def sagellm_python() -> Path:
    given = os.environ.get("SAGELLM_ISAGELLM_PYTHON")
    if not given:
        pytest.skip(
            "sageLLM's engine tier is opt-in: set SAGELLM_ISAGELLM_PYTHON to the python of a "
            "venv with 'pip install isagellm'"
        )
    probe = subprocess.run(
        [given, "-c", "import sagellm_core, sagellm_protocol"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if probe.returncode != 0:
        pytest.fail(f"SAGELLM_ISAGELLM_PYTHON={given} cannot import sagellm_core; fix or unset it")
    return Path(given)


def test_the_in_process_sagellm_engine(sagellm_python: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny"
    builder = ROOT / "tests" / "real" / "build_tiny_model.py"
    subprocess.run([str(sagellm_python), str(builder), str(model), "--weights"], check=True)
    report_path = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sagellm_local.py"),
        "--headless", "-u", "2", "-r", "2", "-t", "8s", "--stop-timeout", "30",
        "--max-tokens", str(MAX_TOKENS), "--llm-report", str(report_path), "--only-summary",
        "--sagellm-model", str(model), "--engine-python", str(sagellm_python),
        "--engine-arg", "backend_type=cpu", "--engine-arg", "comm_type=gloo",
        "--engine-arg", "device=cpu", "--engine-arg", "dtype=float32",
        "--engine-arg", "max_model_len=512", "--engine-log", str(tmp_path / "engine.log"),
    ]  # fmt: skip
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = orjson.loads(report_path.read_bytes())
    total = report["total"]
    assert total["failed"] == 0 and total["cancelled"] == 0 and total["completed"] > 0
    # Random weights never reach EOS in 16 tokens: every request runs to --max-tokens.
    assert total["total_output_tokens"] == MAX_TOKENS * total["completed"]
    assert total["itl_ms"]["count"] == (MAX_TOKENS - 1) * total["completed"]
    (engine,) = report["engines"]
    assert engine["engine"] == "sagellm" and engine["version"]
