"""The worker -> master wire: one typed, versioned report under one key, merged in one place."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from locust.rpc.protocol import Message

from sagellm_users import OpenAIChatUser
from sagellm_users._users import runtime_of
from sagellm_users._users.worker_wire import (
    WIRE_KEY,
    WIRE_VERSION,
    Merger,
    WireError,
    WorkerReport,
    collect,
)
from tests.locust_harness import LocalRun, start_cluster, wait_until


def _measured_run(mock_url: str) -> LocalRun:
    """A local run that has finished some requests (their statistics not yet drained)."""
    run = LocalRun([OpenAIChatUser], ["--host", mock_url, "--max-tokens", "4"])
    run.runner.start(2, spawn_rate=2)
    assert run.wait_for(6, timeout=30)
    return run


def _measured(mock_url: str) -> WorkerReport:
    run = _measured_run(mock_url)
    report = collect(runtime_of(run.environment))
    run.finish()
    return report


def _requests(wire: dict[str, Any]) -> int:
    return sum(int(item["stats"]["requests"]) for item in wire["metrics"]["stats"])


def test_a_report_survives_locusts_own_encoding_unchanged(mock_url: str) -> None:
    report = _measured(mock_url)
    assert report.metrics["stats"], "it carries what was measured"
    message = Message("stats", {WIRE_KEY: report.to_wire()}, "worker-1")
    decoded = Message.unserialize(message.serialize())
    assert WorkerReport.from_wire(decoded.data[WIRE_KEY]) == report


def test_another_version_or_a_damaged_report_is_named_and_left_out(
    mock_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = _measured_run(mock_url)
    runtime = runtime_of(run.environment)
    good = collect(runtime).to_wire()
    run.finish()
    other = WIRE_VERSION + 1
    with pytest.raises(WireError, match=rf"wire version {other}, this master reads {WIRE_VERSION}"):
        WorkerReport.from_wire({**good, "version": other})
    with pytest.raises(WireError, match="damaged"):
        WorkerReport.from_wire({**good, "extra": 1})
    before = runtime.collector.total().requests
    merger = Merger(runtime)
    with caplog.at_level(logging.ERROR, logger="sagellm_users"):
        for _ in range(3):
            merger.take("w1", {WIRE_KEY: {**good, "version": other}})
        merger.take("w2", {WIRE_KEY: "garbage"})
    assert runtime.collector.total().requests == before, "nothing of them is merged"
    named = [m for m in caplog.messages if "its reports are left out" in m]
    assert len(named) == 2 and "worker w1" in named[0] and "worker w2" in named[1]
    merger.take("w3", {WIRE_KEY: good})
    assert runtime.collector.total().requests == before + _requests(good) > before


def test_a_workers_report_holds_one_key_of_ours(mock_url: str, fast_reports: None) -> None:
    master_env, master, workers = start_cluster(["--host", mock_url, "--max-tokens", "4"], 1)
    seen: list[dict[str, Any]] = []
    master_env.events.worker_report.add_listener(lambda client_id, data: seen.append(data))
    master.start(2, spawn_rate=2)
    assert wait_until(lambda: runtime_of(master_env).collector.total().requests >= 4)
    master.quit()
    for worker in workers:
        worker.quit()
    ours = {key for data in seen for key in data if "sagellm" in key}
    assert ours == {WIRE_KEY}
