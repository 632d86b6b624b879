"""The LLM views on Locust's web UI: page, assets, timeline, reports, the LLM tab, and login."""

from __future__ import annotations

import re
import sys
from typing import Any

import locust
import orjson
import pytest
from flask_login import UserMixin, login_user  # type: ignore[import-untyped]

from sagellm_users import OpenAIChatUser, install
from sagellm_users._web import ASSETS
from tests.locust_harness import LocalRun, wait_until

ROUTES = (
    "/llm/",
    "/llm/stats",
    "/llm/timeline?after=0",
    "/llm/assets/dashboard.js",
    "/llm/report.html",
    "/llm/report.json",
)


@pytest.fixture(autouse=True)
def _web_ui_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["locust"])
    install(locust.events)


def _running(mock_url: str, **kwargs: Any) -> tuple[LocalRun, Any]:
    run = LocalRun([OpenAIChatUser], ["--host", mock_url, "--max-tokens", "4"], **kwargs)
    assert run.web_ui is not None and run.web_ui.app is not None
    return run, run.web_ui.app.test_client()


def test_the_live_page_its_assets_and_reports(mock_url: str) -> None:
    run, client = _running(mock_url, web_ui=True)
    run.runner.start(2, spawn_rate=2)
    assert run.wait_for(12, timeout=30)
    timeline = run.runtime.timeline
    assert wait_until(lambda: bool(timeline.points), timeout=10), "a second closed"

    page = client.get("/llm/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    linked = set(re.findall(r'(?:src|href)="assets/([^"]+)"', html))
    assert linked and linked <= set(ASSETS), linked
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html), "nothing from the network"
    for name in linked:
        answer = client.get(f"/llm/assets/{name}")
        assert answer.status_code == 200 and answer.mimetype == ASSETS[name][1]
        assert len(answer.data) > 100
    assert client.get("/llm").status_code in (301, 308), "/llm redirects to the page"
    assert client.get("/llm/assets/__init__.py").status_code == 404
    assert client.get("/llm/assets/..%2F__init__.py").status_code == 404

    answer = client.get("/llm/timeline?after=0").json
    assert answer["width_s"] == 1.0 and answer["points"], answer
    starts = [p["t"] for p in answer["points"]]
    assert starts == sorted(starts)
    later = client.get(f"/llm/timeline?after={starts[-1]}").json
    assert later["points"] == [] or later["points"][0]["t"] > starts[-1]
    bad = client.get("/llm/timeline?after=yesterday")
    assert bad.status_code == 400 and "after" in bad.json["error"]

    stats = client.get("/llm/stats").json
    assert "timeline" not in stats["cumulative"], "the timeline has its own route"
    assert stats["recent_by_user"][0]["user"] == "OpenAIChatUser"
    assert stats["in_flight"] >= 0

    report_html = client.get("/llm/report.html")
    assert report_html.status_code == 200
    assert b'id="sagellm-data"' in report_html.data
    report_json = client.get("/llm/report.json")
    assert "attachment" in report_json.headers["Content-Disposition"]
    saved = orjson.loads(report_json.data)
    assert saved["schema_version"] == 3 and saved["timeline"]["points"]
    run.finish()


def test_the_llm_tab_rides_on_locusts_stats_poll(mock_url: str) -> None:
    run, client = _running(mock_url, web_ui=True)
    assert run.web_ui is not None
    tabs = run.web_ui.template_args["extended_tabs"]
    assert tabs == [{"title": "LLM", "key": "llm"}]
    links = [link["href"] for link in run.web_ui.template_args["extended_csv_files"]]
    assert links == ["./llm/", "./llm/report.html", "./llm/report.json"]
    run.runner.start(2, spawn_rate=2)
    assert run.wait_for(8, timeout=30)
    stats = client.get("/stats/requests").json
    run.finish()

    assert stats["stats"], "Locust's own answer is kept"
    (tab,) = stats["extended_stats"]
    assert tab["key"] == "llm"
    (row,) = tab["data"]
    assert row["name"] == "OpenAIChatUser /v1/chat/completions"
    assert row["requests"] >= 8 and row["failed"] == 0
    assert row["ttft_p50"] > 0 and row["ttft_p99_all"] >= row["ttft_p50"] * 0.5
    columns = {c["key"] for c in run.web_ui.template_args["extended_tables"][0]["structure"]}
    assert set(row) == columns


class _Tester(UserMixin):  # type: ignore[misc]
    id = "tester"


def test_every_llm_route_needs_the_login_when_web_login_is_on(mock_url: str) -> None:
    run, client = _running(mock_url, web_ui=True, web_login=True)
    assert run.web_ui is not None and run.web_ui.app is not None
    app = run.web_ui.app
    app.secret_key = "test-only"
    run.web_ui.login_manager.user_loader(lambda user_id: _Tester() if user_id == "tester" else None)

    def log_in() -> str:
        login_user(_Tester())
        return "in"

    app.add_url_rule("/test-login", "test_login", log_in)
    for route in ROUTES:
        answer = client.get(route)
        assert answer.status_code in (302, 401), (route, answer.status_code)
    assert client.get("/test-login").data == b"in"
    for route in ROUTES:
        assert client.get(route).status_code == 200, route
    run.finish()
