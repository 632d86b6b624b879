"""Each process's role lists the services it runs, and one place registers the listeners."""

from __future__ import annotations

import ast
import logging
import sys
from pathlib import Path

import locust
import locust.log
import pytest

from sagellm_users import OpenAIChatUser, install
from sagellm_users._users.roles import LocalRole, MasterRole, WorkerRole, role_of
from sagellm_users._users.service import Service
from tests.locust_harness import LocalRun, start_cluster

PACKAGE = Path(__file__).resolve().parents[2] / "sagellm_users"

LOAD = [
    "ReadOptions",
    "RunWindow",
    "TrafficBuilder",
    "HostCheck",
    "DeferredRecorder",  # first to stop: what finished is recorded before anything reads it
    "Shutdown",
    "FrozenHeap",
    "HealthProbe",
]
RESULTS = ["ServerWatch", "SLOWatch", "TimelineWatch", "TraceEnd"]


def _names(services: list[Service]) -> list[str]:
    return [type(service).__name__ for service in services]


def test_a_local_runner_sends_the_load_and_keeps_the_results(mock_url: str) -> None:
    run = LocalRun([OpenAIChatUser], ["--host", mock_url, "--max-tokens", "2"])
    try:
        role = role_of(run.environment)
        assert isinstance(role, LocalRole)
        assert _names(role.services) == ["Runs", *LOAD, *RESULTS]
    finally:
        run.finish()


def test_the_web_ui_adds_the_live_statistics(
    mock_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["locust"])  # the web UI reads Locust's own arguments
    install(locust.events)
    run = LocalRun([OpenAIChatUser], ["--host", mock_url, "--max-tokens", "2"], web_ui=True)
    try:
        services = _names(role_of(run.environment).services)
        assert services == ["Runs", *LOAD, "LiveStats", *RESULTS]
    finally:
        run.finish()
        assert run.web_ui is not None
        run.web_ui.stop()


def test_workers_send_the_load_and_the_master_merges_it(mock_url: str, tmp_path: Path) -> None:
    records = tmp_path / "run.jsonl"
    args = ["--host", mock_url, "--max-tokens", "2", "--llm-records", str(records)]
    master_env, master, workers = start_cluster(args, workers=1)
    try:
        role = role_of(master_env)
        assert isinstance(role, MasterRole)
        assert _names(role.services) == [
            "Runs",
            "ReadOptions",
            "RunWindow",
            "RatePlan",
            "Merger",
            "WorkerWatch",
            *RESULTS,
        ]
        (worker,) = workers
        worker_role = role_of(worker.environment)
        assert isinstance(worker_role, WorkerRole)
        assert _names(worker_role.services) == [*LOAD, "WorkerRecords"]
    finally:
        master.quit()
        for worker in workers:
            worker.quit()


def test_a_failing_service_is_logged_and_the_others_still_run(
    mock_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Locust treats a failing listener: logged, the exit code says so, the rest run."""

    class Broken(Service):
        def start(self) -> None:
            raise RuntimeError("broken on purpose")

    monkeypatch.setattr(locust.log, "unhandled_greenlet_exception", False)
    run = LocalRun([OpenAIChatUser], ["--host", mock_url, "--max-tokens", "2"])
    role = role_of(run.environment)
    role.services.insert(0, Broken())
    with caplog.at_level(logging.ERROR, logger="sagellm_users"):
        records = run.run_until(3, users=1)
    assert len(records) >= 3
    assert any("sagellm: local: Broken.start failed" in message for message in caplog.messages)
    assert locust.log.unhandled_greenlet_exception is True
    assert run.runtime.final_report is not None, "the later services and the shutdown ran"


def _registrations(path: Path) -> list[str]:
    """Calls of ``add_listener`` and ``register_message`` in one module, by function."""
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in {"add_listener", "register_message"}
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    return found


def test_one_place_registers_locusts_listeners() -> None:
    """Apart from the two hooks that bring the plugin in (its options and its init), every
    listener and message handler is registered by a role."""
    found = sorted({r for path in PACKAGE.rglob("*.py") for r in _registrations(path)})
    outside = [r for r in found if not r.startswith("_users/roles.py:")]
    assert outside == ["_users/plugin.py:install"]
    assert "_users/roles.py:install" in found
