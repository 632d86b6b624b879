"""Starting a test from Locust's web UI form: our options arrive as strings and still work."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any

import gevent.event
import locust
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sagellm_users import OpenAIChatUser, install
from tests.conftest import MOCK_TTFT_MS
from tests.locust_harness import LocalRun

CHAT = "/v1/chat/completions"


@pytest.fixture(autouse=True)
def _web_ui_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locust builds the start form from a fresh parser over sys.argv and the global events,
    as in a real locustfile run: give it the command line and plugin a locustfile would."""
    monkeypatch.setattr(sys, "argv", ["locust"])
    install(locust.events)


def _start(run: LocalRun, form: dict[str, str]) -> Any:
    assert run.web_ui is not None and run.web_ui.app is not None
    client = run.web_ui.app.test_client()
    response = client.post("/swarm", data={"user_count": "2", "spawn_rate": "2", **form})
    answer = response.json
    assert response.status_code == 200 and answer is not None and answer["success"], answer
    return client


def test_web_ui_form_options_and_live_rows(mock_url: str) -> None:
    run = LocalRun([OpenAIChatUser], ["--host", mock_url], web_ui=True)
    assert run.web_ui is not None
    form_fields = run.web_ui.template_args["extra_options"]
    assert {"max_tokens", "model", "api_key", "ignore_eos"} <= set(form_fields)
    assert form_fields["api_key"]["is_secret"]
    assert "llm_records" not in form_fields
    client = _start(
        run, {"host": mock_url, "max_tokens": "6", "temperature": "0.5", "extra_body": ""}
    )
    assert run.wait_for(6, timeout=30)
    stats = client.get("/stats/requests").json
    live = client.get("/llm/stats").json
    run.finish()

    assert live is not None
    assert live["last_10s"]["completed"] >= 6
    assert 0 < live["last_10s"]["seconds"] <= 11
    assert live["last_10s"]["ttft_ms"]["median"] == pytest.approx(MOCK_TTFT_MS, abs=8)
    assert live["cumulative"]["completed"] >= 6
    assert live["cumulative"]["schema_version"] == 3
    assert live["state"] in ("running", "spawning")

    rows = {(row["method"], row["name"]): row for row in stats["stats"]}
    assert {("E2E", CHAT), ("TTFT", CHAT), ("TBT", CHAT)} <= set(rows)
    assert rows[("TTFT", CHAT)]["median_response_time"] == pytest.approx(MOCK_TTFT_MS, abs=8)
    aggregated = next(row for row in stats["stats"] if row["name"] == "Aggregated")
    assert aggregated["num_requests"] == rows[("E2E", CHAT)]["num_requests"]
    assert run.runtime.options.max_tokens == 6
    assert run.runtime.options.temperature == 0.5
    assert all(r.output_tokens == 6 for r in run.records if r.ok)


def test_web_ui_refuses_a_bad_field_before_anything_starts(mock_url: str, caplog: Any) -> None:
    """A field that does not validate answers ``success: false`` with its reason (shown in
    red by Locust's form), starts nothing, and does not stick to the next start."""
    run = LocalRun([OpenAIChatUser], ["--host", mock_url, "--max-tokens", "4"], web_ui=True)
    assert run.web_ui is not None and run.web_ui.app is not None
    client = run.web_ui.app.test_client()
    for field, value, reason in (
        ("max_tokens", "0", "--max-tokens: input should be greater than or equal to 1"),
        ("max_tokens", "many", "--max-tokens: input should be a valid integer"),
        ("slo", "error_rate<=fast", "--slo"),
        ("extra_body", "{top_k: 1}", "--extra-body: not valid JSON"),
    ):
        response = client.post(
            "/swarm",
            data={"user_count": "2", "spawn_rate": "2", "host": mock_url, field: value},
        )
        answer = response.json
        assert answer is not None and answer["success"] is False, answer
        assert answer["message"].startswith("Not started: ") and reason in answer["message"]
        assert run.runner.state == "ready", "a refused start starts nothing"
    ns = run.environment.parsed_options
    assert ns is not None and ns.max_tokens == "4", "nothing of it is kept"
    _start(run, {"host": mock_url, "seed": "", "temperature": "", "min_tokens": ""})
    assert run.wait_for(4, timeout=30)
    run.finish()
    assert run.runtime.options.max_tokens == 4 and run.runtime.options.seed is None
    assert all(r.output_tokens == 4 for r in run.records if r.ok)
    assert any("start refused: --max-tokens" in message for message in caplog.messages)


def test_web_ui_early_stop_stops_the_test_and_keeps_the_ui(mock_url: str) -> None:
    run = LocalRun([OpenAIChatUser], ["--host", mock_url], web_ui=True)
    stopped = gevent.event.Event()
    run.environment.events.test_stop.add_listener(lambda **_kw: stopped.set())
    client = _start(
        run,
        {"host": mock_url, "run_time": "60s", "slo": "ttft_max<=1ms", "slo_early_stop": "true"},
    )
    assert stopped.wait(20), "the lost objective stopped the test"
    live = client.get("/llm/stats").json
    assert run.runner.state == "stopped" and len(run.runner.greenlet) > 0, "stopped, not quit"
    run.finish()
    assert live is not None
    lost = live["cumulative"]["early_stop"]["objectives"]
    assert list(lost) == ["ttft_max<=1ms"]
    assert live["cumulative"]["slos"][0]["passed"] is False


def _ok(records: list[Any], tokens: int) -> int:
    return sum(1 for r in records if r.ok and r.output_tokens == tokens)


def test_each_test_of_a_web_session_is_its_own_run(mock_url: str) -> None:
    """The measured defect: after Stop and a new start, the LLM numbers counted both tests
    (36 completions: 24 of the first and 12 of the second) and the window spanned the
    idle gap. Each test is now its own run; the first's report stays downloadable."""
    run = LocalRun([OpenAIChatUser], ["--host", mock_url], web_ui=True)
    client = _start(run, {"host": mock_url, "max_tokens": "6"})
    assert run.wait_for(6, timeout=30)
    run.runner.stop()  # Locust's Stop button
    first = _ok(run.records, 6)
    gevent.sleep(0.5)  # an idle gap between the tests, which no window may span
    second_start = time.time()
    client = _start(run, {"host": mock_url, "max_tokens": "3"})
    assert run.wait_for(len(run.records) + 6, timeout=30)
    run.runner.stop()
    live = client.get("/llm/stats").json
    assert live is not None
    cumulative = live["cumulative"]
    assert cumulative["completed"] == _ok(run.records, 3) >= 6, "the second test alone"
    assert cumulative["total_output_tokens"] == 3 * cumulative["completed"]
    assert cumulative["run"]["options"]["max_tokens"] == 3
    window_start = cumulative["window"]["start"]
    assert datetime.fromisoformat(window_start).timestamp() >= second_start - 0.05, (
        "the window starts with the second test"
    )
    load = cumulative["run"]["load"]
    assert load["run_number"] == 2 and load["users"] == 2 and load["spawn_rate"] == 2
    assert load["processes"] == 1 and load["max_tokens"] == 3 and load["stopped"] is not None
    runs = live["runs"]
    assert runs["number"] == 2
    [earlier] = runs["finished"]
    assert earlier["number"] == 1 and earlier["output_tokens"] == 6 * first
    assert earlier["report_json"] == "runs/1/report.json"  # relative to the live page
    kept = client.get("/llm/runs/1/report.json")
    report = kept.json
    assert kept.status_code == 200 and report is not None
    assert report["completed"] == first and report["run"]["options"]["max_tokens"] == 6
    html = client.get("/llm/runs/1/report.html")
    assert html.status_code == 200 and b"<html" in html.data
    missing = client.get("/llm/runs/7/report.json")
    assert missing.status_code == 404 and b"no finished run 7" in missing.data
    points = client.get("/llm/timeline?after=0").json
    assert points is not None
    assert (
        sum(p["completed"] or 0 for p in points["points"] + points["open"])
        == (cumulative["completed"])
    ), "the timeline holds the second test alone"
    run.finish()


def test_the_live_metrics_are_served_in_prometheus_format(mock_url: str) -> None:
    """What an existing Prometheus scrapes: the same counts as the live JSON, parsed by
    Prometheus' own parser, histograms with vLLM's bucket bounds."""
    run = LocalRun([OpenAIChatUser], ["--host", mock_url], web_ui=True)
    client = _start(run, {"host": mock_url, "max_tokens": "5"})
    assert run.wait_for(8, timeout=30)
    run.runner.stop()
    answer = client.get("/llm/metrics")
    live = client.get("/llm/stats").json
    run.finish()
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(answer.data.decode())}
    ok = [s for s in families["sagellm_client_requests"].samples if s.labels["outcome"] == "ok"]
    assert live is not None and [s.value for s in ok] == [live["cumulative"]["completed"]]
    assert ok[0].labels == {"user": "OpenAIChatUser", "endpoint": CHAT, "outcome": "ok"}
    ttft = families["sagellm_client_ttft_seconds"]
    assert ttft.type == "histogram"
    count = next(s.value for s in ttft.samples if s.name.endswith("_count"))
    assert count == live["cumulative"]["completed"]
    bounds = {s.labels["le"] for s in ttft.samples if s.name.endswith("_bucket")}
    assert {"0.1", "2560.0", "+Inf"} <= bounds
    output = families["sagellm_client_output_tokens"].samples[0].value
    assert output == live["cumulative"]["total_output_tokens"] == 5 * count
