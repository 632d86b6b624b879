"""Both LMDeploy modes on a real LMDeploy: its api_server (OpenAI chat and native
/generate) and its pipeline in-process. Needs an NVIDIA GPU; skipped without one.

    SAGELLM_LMDEPLOY_PYTHON=/path/venv/bin/python pytest -m real_lmdeploy tests/real

The venv is ``$SAGELLM_LMDEPLOY_PYTHON`` when set, else a cached venv under
``~/.cache/sagellm-locust/lmdeploy`` created with ``pip install lmdeploy``. The tiny model
(random weights) runs on LMDeploy's PyTorch engine, which takes any Llama shape.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.real.conftest import serve

pytestmark = [pytest.mark.real_lmdeploy, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
MAX_TOKENS = 16
_READY = "Uvicorn running on"


def _has_nvidia_gpu() -> str | None:
    """None when a GPU answers, else why not."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no nvidia-smi on PATH"
    done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 or "GPU" not in done.stdout:
        return f"nvidia-smi lists no GPU ({(done.stderr or done.stdout).strip()[:200]})"
    return None


@pytest.fixture(scope="module")
def lmdeploy_python() -> Path:
    reason = _has_nvidia_gpu()
    if reason is not None:
        pytest.skip(f"LMDeploy needs an NVIDIA GPU: {reason}")
    given = os.environ.get("SAGELLM_LMDEPLOY_PYTHON")
    if given:
        return Path(given)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = base / "sagellm-locust" / "lmdeploy"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import lmdeploy"]
    if not python.exists() or subprocess.run(probe, capture_output=True, check=False).returncode:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "lmdeploy", "transformers"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"lmdeploy cannot be installed here: {done.stderr.strip()[-300:]}")
    return python


@pytest.fixture(scope="module")
def tiny_model(lmdeploy_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-llama-weights")
    builder = ROOT / "tests" / "real" / "build_tiny_model.py"
    subprocess.run([str(lmdeploy_python), str(builder), str(out), "--weights"], check=True)
    return out


@pytest.fixture(scope="module")
def lmdeploy_url(lmdeploy_python: Path, tiny_model: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    command = [
        str(lmdeploy_python), "-m", "lmdeploy", "serve", "api_server", str(tiny_model),
        "--backend", "pytorch", "--server-name", "127.0.0.1", "--server-port", str(port),
        "--model-name", "tiny",
    ]  # fmt: skip
    with serve(command, dict(os.environ), _READY, "LMDeploy"):
        yield f"http://127.0.0.1:{port}"


def _run(tmp_path: Path, locustfile: str, *extra: str) -> dict[str, object]:
    report_path = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile),
        "--headless", "-u", "4", "-r", "4", "-t", "10s", "--stop-timeout", "60",
        "--max-tokens", str(MAX_TOKENS), "--ignore-eos", "--llm-report", str(report_path),
        "--only-summary", *extra,
    ]  # fmt: skip
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report: dict[str, object] = orjson.loads(report_path.read_bytes())
    total = report["total"]
    assert isinstance(total, dict)
    assert total["failed"] == 0 and total["cancelled"] == 0 and total["completed"] > 0
    assert total["total_output_tokens"] == MAX_TOKENS * total["completed"]
    return report


@pytest.mark.parametrize(
    ("locustfile", "extra"),
    [("lmdeploy.py", []), ("chat.py", ["--backend", "lmdeploy"])],
    ids=["native-generate", "openai-chat"],
)
def test_the_server_modes(
    lmdeploy_url: str, locustfile: str, extra: list[str], tmp_path: Path
) -> None:
    _run(tmp_path, locustfile, "--host", lmdeploy_url, *extra)


def test_the_in_process_pipeline(lmdeploy_python: Path, tiny_model: Path, tmp_path: Path) -> None:
    report = _run(
        tmp_path, "lmdeploy_local.py", "--lmdeploy-model", str(tiny_model),
        "--engine-python", str(lmdeploy_python), "--engine-arg", "backend=pytorch",
        "--engine-log", str(tmp_path / "engine.log"),
    )  # fmt: skip
    engines = report["engines"]
    assert isinstance(engines, list) and engines[0]["engine"] == "lmdeploy"
