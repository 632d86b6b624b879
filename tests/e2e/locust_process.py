"""The real ``locust`` command as a subprocess, started the same way by every e2e test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "locust_env", "run_locust", "start_locust"]

ROOT = Path(__file__).resolve().parents[2]


def locust_env() -> dict[str, str]:
    """This environment, unbuffered, without an API key the tests did not set."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("OPENAI_API_KEY", None)
    return env


def run_locust(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``locust ARGS`` from the repository root to its end."""
    return subprocess.run(
        [sys.executable, "-m", "locust", *args],
        cwd=ROOT,
        env=locust_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def start_locust(*args: str) -> subprocess.Popen[str]:
    """Start ``locust ARGS``; its stdout and stderr come merged, as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "locust", *args],
        cwd=ROOT,
        env=locust_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
