"""What the real ``locust`` command refuses before any user starts: a host that refuses
connections, and more users than the open-files limit can hold."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from tests.e2e.locust_process import ROOT, locust_env, run_locust

pytestmark = pytest.mark.e2e

CHAT = str(ROOT / "locustfiles" / "chat.py")


def sagellm_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("sagellm: ")]


def test_a_refused_host_stops_the_run_before_any_load(unused_port: int) -> None:
    host = f"http://127.0.0.1:{unused_port}"
    result = run_locust(
        "-f", CHAT, "--headless", "-u", "4", "-r", "4", "-t", "5s", "--host", host,
        timeout=60,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    [line] = sagellm_lines(result.stderr)
    assert f"--host {host}" in line
    assert "connection refused" in line.lower()
    assert "--skip-host-check" in line
    assert "ConnectError" not in result.stdout, "no request was sent"


def locust_with_open_files(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``locust ARGS`` from a shell whose open-files limit (soft and hard) is ``limit``."""
    locust = shlex.join([sys.executable, "-m", "locust", "-f", CHAT, *args])
    return subprocess.run(
        ["bash", "-c", f"ulimit -n {limit} && exec {locust}"],
        cwd=ROOT,
        env=locust_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_users_beyond_the_open_files_limit_are_refused_before_any_load() -> None:
    """The shell's limit cannot be raised above its hard limit of 256: 1,000 users would
    fail one connection each past it, so the run is refused with the fix named."""
    result = locust_with_open_files(256, "--headless", "-u", "1000", "-r", "1000", "-t", "5s")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    [line] = sagellm_lines(result.stderr)
    assert "1000 users (--users) need about" in line
    assert "the open files limit is 256 (hard limit 256)" in line
    assert "ulimit -n" in line
    assert "embedded mock" not in output, "refused before anything started"


def test_a_worker_share_beyond_its_limit_stops_the_run_with_exit_code_1() -> None:
    """With --processes each worker holds its share (500 of 1,000 users): the worker says
    why it cannot, and the master ends the run with exit code 1, not 0 with nothing sent."""
    args = ["--headless", "--processes", "2", "-u", "1000", "-r", "1000", "-t", "4s"]
    result = locust_with_open_files(256, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    refusals = [line for line in output.splitlines() if "users on worker" in line]
    assert refusals and all("need about" in line and "ulimit -n" in line for line in refusals)
    assert "LLM summary: no requests were completed." in result.stdout
