"""Shared fixtures: a mock LLM server on a free port, and in-process Locust environments.

The whole suite runs gevent-patched, as Locust does on import: the clients under test are
cooperative only then, and tests must see the concurrency a load test sees.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import socket
from collections.abc import Iterator

import pytest

from sagellm_users._workloads.tokens import ServerCounter, server_counter
from sagellm_users.mock_server import MockServerProcess
from tests.fault_tally import TALLY, summary_lines

MOCK_TTFT_MS = 40.0
MOCK_TBT_MS = 8.0


@pytest.fixture(scope="session")
def mock_url() -> Iterator[str]:
    """A mock server with fixed timing and send timestamps, shared by the session."""
    server = MockServerProcess(
        ["--ttft-ms", str(MOCK_TTFT_MS), "--tbt-ms", str(MOCK_TBT_MS), "--send-timestamps"]
    )
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def unused_port() -> int:
    """A port nothing listens on (bound and released, so connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def served(mock_url: str) -> Iterator[ServerCounter]:
    """A token counter on the shared mock's /tokenize."""
    counter = server_counter(mock_url)
    try:
        yield counter
    finally:
        counter.close()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    rows = config.stash.get(TALLY, [])
    if rows:
        terminalreporter.section("fault suite")
        for line in summary_lines(rows):
            terminalreporter.write_line(line)
