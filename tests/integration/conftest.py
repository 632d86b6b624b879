"""Fixtures of the in-process tests."""

from __future__ import annotations

from collections.abc import Iterator

import locust.runners
import pytest
from locust import User

import sagellm_users._users as users_module


@pytest.fixture
def fast_reports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Workers report to the master every 0.2 s instead of Locust's 3 s."""
    monkeypatch.setattr(locust.runners, "WORKER_REPORT_INTERVAL", 0.2)
    yield


def _user_classes() -> list[type[User]]:
    found = [getattr(users_module, name) for name in dir(users_module)]
    return [cls for cls in found if isinstance(cls, type) and issubclass(cls, User)]


@pytest.fixture(autouse=True)
def _user_hosts_back() -> Iterator[None]:
    """Locust's runner writes the environment's host onto every User class it spawns
    (``user_class.host = environment.host``), so one in-process test with ``--host`` would
    hand its host to a later test that starts the embedded mock instead: each test gets the
    classes' hosts back as they were."""
    before = {cls: cls.__dict__.get("host", None) for cls in _user_classes()}
    had = {cls for cls in before if "host" in cls.__dict__}
    yield
    for cls, host in before.items():
        if cls in had:
            cls.host = host
        elif "host" in cls.__dict__:
            delattr(cls, "host")
