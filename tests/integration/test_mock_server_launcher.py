"""MockServerProcess: readiness, clean stops, dying with its launcher, startup failures."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sagellm_users.mock_server import MockServerProcess, MockServerStartError
from tests.mock_http import call

ROOT = Path(__file__).resolve().parents[2]


def health(url: str) -> int:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/health")
    status = conn.getresponse().status
    conn.close()
    return status


def refuses_connections(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_start_serves_and_stop_ends_the_process() -> None:
    mock = MockServerProcess(["--model", "launcher-test"])
    url = mock.start()
    assert url == mock.url and url.startswith("http://127.0.0.1:")
    assert mock.process is not None and mock.process.poll() is None
    assert health(url) == 200
    assert mock.stop() == 0
    assert mock.process.poll() == 0
    assert refuses_connections(url)
    assert mock.stop() == 0  # idempotent
    assert "launcher-test" in mock.stderr_tail()  # the one start-up line


def test_log_requests_writes_one_stderr_line_per_request() -> None:
    mock = MockServerProcess(["--log-requests"])
    url = mock.start()
    assert health(url) == 200
    assert mock.stop() == 0
    lines = mock.stderr_tail().splitlines()
    assert len(lines) == 2 and "GET /health 200" in lines[1]


def test_log_requests_names_injected_faults() -> None:
    faults = ["--error-rate-reset", "0.5", "--error-rate-500", "0.5"]
    mock = MockServerProcess(["--log-requests", "--seed", "1", *faults])
    url = mock.start()
    body = {"model": "mock-llm", "messages": [{"role": "user", "content": "hi"}]}
    statuses = []
    for _ in range(8):
        try:
            statuses.append(call(url, "POST", "/v1/chat/completions", body)[0])
        except (ConnectionError, http.client.RemoteDisconnected):
            statuses.append(0)  # the reset
    assert mock.stop() == 0
    lines = mock.stderr_tail().splitlines()[1:]
    assert len(lines) == 8
    for status, line in zip(statuses, lines, strict=True):
        if status == 500:
            assert " /v1/chat/completions 500 " in line and line.endswith(" fault=500")
        else:
            assert " /v1/chat/completions reset " in line and line.endswith(" fault=reset")
    assert 0 in statuses and 500 in statuses


def test_context_manager_and_sigint_exit_cleanly() -> None:
    with MockServerProcess() as mock:
        assert mock.url is not None and health(mock.url) == 200
        proc = mock.process
        assert proc is not None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    assert proc.returncode == 0


def test_server_exits_when_its_stdin_closes() -> None:
    mock = MockServerProcess()
    url = mock.start()
    proc = mock.process
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # what happens when the launching process dies
    assert proc.wait(timeout=10) == 0
    assert refuses_connections(url)
    mock.stop()


def test_workers_exit_when_stdin_closes() -> None:
    mock = MockServerProcess(["--workers", "2"])
    url = mock.start()
    proc = mock.process
    assert proc is not None and proc.stdin is not None
    assert health(url) == 200
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    assert refuses_connections(url)


def test_bad_arguments_raise_with_the_stderr_tail() -> None:
    mock = MockServerProcess(["--tbt-ms", "-5"])
    with pytest.raises(MockServerStartError) as info:
        mock.start()
    assert info.value.returncode == 2
    assert "--tbt-ms" in info.value.stderr_tail and "--tbt-ms" in str(info.value)
    assert "exited before it was ready" in str(info.value)


def test_a_server_that_never_gets_ready_times_out(tmp_path: Path) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho starting up >&2\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    mock = MockServerProcess(python=str(fake), startup_timeout=0.5)
    with pytest.raises(MockServerStartError, match=r"did not report ready within 0\.5 s") as info:
        mock.start()
    assert mock.process is not None and mock.process.poll() is not None  # killed
    assert "starting up" in info.value.stderr_tail


def test_garbage_on_stdout_is_not_mistaken_for_readiness(tmp_path: Path) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho hello\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(MockServerStartError, match="instead of its ready line"):
        MockServerProcess(python=str(fake), startup_timeout=10).start()


def test_ready_line_format() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagellm_users.mock_server", "--port", "0", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == b""  # exactly one line on stdout
    doc = json.loads(line)
    assert list(doc) == ["event", "url", "pid"]
    assert doc["event"] == "ready" and doc["pid"] == proc.pid
    assert doc["url"].startswith("http://127.0.0.1:")


GEVENT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()

    import json, urllib.request
    from sagellm_users.mock_server import MockServerProcess

    mock = MockServerProcess(["--ttft-ms", "1", "--tbt-ms", "1"])
    url = mock.start()
    with urllib.request.urlopen(url + "/health", timeout=10) as resp:
        status = resp.status
    code = mock.stop()
    patched = monkey.is_module_patched("socket")
    print(json.dumps({"status": status, "code": code, "patched": patched}))
    """
)


def test_launcher_works_under_gevent_monkey_patching() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "status": 200,
        "code": 0,
        "patched": True,
    }
