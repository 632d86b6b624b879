"""Fixtures of the in-process distributed tests."""

from __future__ import annotations

from collections.abc import Iterator

import locust.runners
import pytest


@pytest.fixture
def fast_reports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Workers report to the master every 0.2 s instead of Locust's 3 s."""
    monkeypatch.setattr(locust.runners, "WORKER_REPORT_INTERVAL", 0.2)
    yield
