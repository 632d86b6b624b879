"""The LLM views on Locust's web UI: a live page with charts, its JSON, and an "LLM" tab.

Served by the master (or the local runner), so in distributed runs they show every
worker's merged data. Every route sits behind Locust's ``--web-login`` (and whatever auth
a locustfile installs) like Locust's own routes:

- ``/llm/`` the live page (charts over time, per-endpoint table, SLO status, server side),
  with ``/llm/assets/<name>`` its scripts (the vendored uPlot among them: no CDN);
- ``/llm/stats`` the cumulative report and the last 10 seconds, as JSON;
- ``/llm/timeline?after=T`` the closed points after T and the open (still growing) ones;
- ``/llm/report.html`` / ``/llm/report.json`` the report as of now, to download;
- ``/llm/runs/<n>/report.html`` / ``.json`` the report of run ``n``, an earlier test of this
  web session (``/llm/stats`` lists them under ``runs``);
- ``/llm/metrics`` the run's counters and TTFT / ITL / TPOT / E2E histograms in Prometheus'
  format, for a Grafana beside the server's (see _metrics.exposition).

Inside Locust's own page an "LLM" tab shows the per-endpoint table (Locust's extended
tabs: the table rides on ``/stats/requests``), and "Download Data" links to the page
and the reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
import orjson
from flask import Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.exposition import LoadTestCollector, registry_for
from sagellm_users._report import EndpointReport, MetricsBlock
from sagellm_users._report.html import render_html_report
from sagellm_users._web import ASSETS, asset, template

if TYPE_CHECKING:
    from locust.web import WebUI

    from sagellm_users._report import LLMReport
    from sagellm_users._users.runs import Runs
    from sagellm_users._users.runtime import LLMRuntime

__all__ = ["LIVE_PATH", "RECENT_SECONDS", "TAB_KEY", "add_live_route", "live_stats", "tab_rows"]

log = logging.getLogger("sagellm_users")

LIVE_PATH = "/llm/stats"
RECENT_SECONDS = 10.0
TAB_KEY = "llm"
_TAB_COLUMNS = (
    ("name", "Endpoint"),
    ("requests", "# requests"),
    ("failed", "# failed"),
    ("ttft_p50", "TTFT p50 ms (10 s)"),
    ("ttft_p99", "TTFT p99 ms (10 s)"),
    ("itl_p50", "ITL p50 ms (10 s)"),
    ("itl_p99", "ITL p99 ms (10 s)"),
    ("tpot_p50", "TPOT p50 ms (10 s)"),
    ("tokens_s", "Output tok/s (10 s)"),
    ("ttft_p99_all", "TTFT p99 ms (all)"),
    ("itl_p99_all", "ITL p99 ms (all)"),
    ("e2el_p99_all", "E2E p99 ms (all)"),
)

ReportBuilder = Callable[["LLMRuntime", bool], "LLMReport"]
"""Builds the report as of now, with its timeline or without."""


def _recent(runtime: LLMRuntime) -> tuple[MetricsCollector, float]:
    runtime.recorder.flush()  # requests that finished before this call are in it
    return runtime.recent.last(RECENT_SECONDS)


def _endpoints(
    collector: MetricsCollector, span: float, percentiles: list[float]
) -> list[EndpointReport]:
    return [
        EndpointReport(name=name, user=user, **MetricsBlock.of(s, span, percentiles).model_dump())
        for (user, name), s in collector.by_key.items()
    ]


def runs_info(runs: Runs | None) -> dict[str, Any]:
    """The current run and the session's finished ones, for the live page's list."""
    if runs is None:
        return {"number": 1, "started": None, "stopped": None, "finished": []}
    return {
        "number": runs.number,
        "started": runs.started,
        "stopped": runs.stopped,
        "finished": [
            {
                "number": run.number,
                "started": run.started,
                "stopped": run.stopped,
                "requests": run.report.total.requests,
                "failed": run.report.total.failed,
                "output_tokens": run.report.total.total_output_tokens,
                "users": run.report.run.user_classes,
                "report_html": f"runs/{run.number}/report.html",
                "report_json": f"runs/{run.number}/report.json",
            }
            for run in reversed(runs.finished)
        ],
    }


def live_stats(
    runtime: LLMRuntime, report: ReportBuilder, runs: Runs | None = None
) -> dict[str, Any]:
    """The payload of ``/llm/stats``: everything but the timeline (``/llm/timeline``)."""
    recent, span = _recent(runtime)
    runner = runtime.environment.runner
    percentiles = list(runtime.options.percentiles)
    block = MetricsBlock.of(recent.total(), span, percentiles)
    cumulative = report(runtime, False).to_json_dict()
    del cumulative["timeline"]  # None here: /llm/timeline serves it by increments
    return {
        "time": time.time(),
        "state": None if runner is None else str(runner.state),
        "user_count": None if runner is None else runner.user_count,
        "in_flight": runtime.requests_in_flight(),
        "last_10s": {"seconds": span, **block.model_dump(mode="json")},
        "recent_by_user": [
            e.model_dump(mode="json") for e in _endpoints(recent, span, percentiles)
        ],
        "cumulative": cumulative,
        "runs": runs_info(runs),
    }


def live_timeline(runtime: LLMRuntime, after: float) -> dict[str, Any]:
    timeline = runtime.timeline
    return {
        "now": time.time(),
        "width_s": timeline.width,
        "points": timeline.after(after),
        "open": timeline.open_points(live=True),
    }


def _ms(summary: Any, label: str) -> float | None:
    value = summary.percentiles.get(label)
    return None if value is None else round(value, 2)


def tab_rows(runtime: LLMRuntime) -> list[dict[str, Any]]:
    """The rows of the "LLM" tab: each endpoint now (last 10 s) and over the whole test."""
    recent, span = _recent(runtime)
    percentiles = sorted({50.0, 99.0, *runtime.options.percentiles})
    collector = runtime.collector
    window = collector.window()
    now = {(e.user, e.name): e for e in _endpoints(recent, span, percentiles)}
    rows = []
    keys = [*collector.by_key, *(k for k in recent.by_key if k not in collector.by_key)]
    for user, name in keys:
        cumulative = collector.by_key.get((user, name))
        all_block = None if cumulative is None else MetricsBlock.of(cumulative, window, percentiles)
        last = now.get((user, name))
        rows.append(
            {
                "name": f"{user} {name}",
                "requests": 0 if all_block is None else all_block.requests,
                "failed": 0 if all_block is None else all_block.failed,
                "ttft_p50": None if last is None else _ms(last.ttft_ms, "p50"),
                "ttft_p99": None if last is None else _ms(last.ttft_ms, "p99"),
                "itl_p50": None if last is None else _ms(last.itl_ms, "p50"),
                "itl_p99": None if last is None else _ms(last.itl_ms, "p99"),
                "tpot_p50": None if last is None else _ms(last.tpot_ms, "p50"),
                "tokens_s": None if last is None else round(last.output_throughput, 1),
                "ttft_p99_all": None if all_block is None else _ms(all_block.ttft_ms, "p99"),
                "itl_p99_all": None if all_block is None else _ms(all_block.itl_ms, "p99"),
                "e2el_p99_all": None if all_block is None else _ms(all_block.e2el_ms, "p99"),
            }
        )
    return rows


def _add_tab(web_ui: WebUI, runtime: LLMRuntime) -> None:
    """The "LLM" tab and the "Download Data" links, through Locust's template arguments."""
    web_ui.template_args["extended_tabs"] = [{"title": "LLM", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in _TAB_COLUMNS]}
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "./llm/", "title": "LLM live charts (TTFT, ITL, tokens/s over time)"},
        {"href": "./llm/report.html", "title": "Download LLM report (HTML, opens offline)"},
        {"href": "./llm/report.json", "title": "Download LLM report (JSON)"},
    ]
    app = web_ui.app
    assert app is not None

    @app.after_request
    def add_tab_rows(response: Response) -> Response:
        # Only Locust's own stats poll, and only when it answered (not a login redirect).
        if not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        data = response.get_json(silent=True)
        if isinstance(data, dict):
            data["extended_stats"] = [{"key": TAB_KEY, "data": tab_rows(runtime)}]
            response.set_data(orjson.dumps(data))
        return response


def _json_download(report: LLMReport, filename: str) -> Response:
    body = orjson.dumps(report.to_json_dict(), option=orjson.OPT_INDENT_2)
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f"attachment; filename={filename}"},
    )


def add_live_route(
    web_ui: WebUI, runtime: LLMRuntime, report: ReportBuilder, runs: Runs | None = None
) -> None:
    app = web_ui.app
    if app is None:
        return
    guard = web_ui.auth_required_if_enabled

    def llm_stats() -> Any:
        return jsonify(live_stats(runtime, report, runs))

    def llm_timeline() -> Any:
        try:
            after = float(request.args.get("after", "0") or 0)
        except ValueError:
            return jsonify({"error": "after: give a time in epoch seconds, e.g. after=0"}), 400
        return Response(orjson.dumps(live_timeline(runtime, after)), mimetype="application/json")

    def llm_page() -> Any:
        return Response(template("live.html"), mimetype="text/html")

    def llm_asset(name: str) -> Any:
        if name not in ASSETS:
            return Response(f"no asset {name!r}", status=404, mimetype="text/plain")
        return Response(asset(name), mimetype=ASSETS[name][1])

    def llm_report_html() -> Any:
        return Response(render_html_report(report(runtime, True)), mimetype="text/html")

    def llm_report_json() -> Any:
        return _json_download(report(runtime, True), "llm-report.json")

    def gauges() -> tuple[int, int, int]:
        runner = runtime.environment.runner
        users = 0 if runner is None else runner.user_count
        return users, runtime.requests_in_flight(), 1 if runs is None else max(runs.number, 1)

    registry = registry_for(LoadTestCollector(lambda: runtime.collector, gauges))

    def llm_metrics() -> Any:
        runtime.recorder.flush()  # requests that finished before the scrape are in it
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def finished(number: int) -> LLMReport | None:
        run = None if runs is None else runs.run(number)
        return None if run is None else run.report

    def gone(number: int) -> Response:
        return Response(
            f"no finished run {number} in this session (the live page lists them)",
            status=404,
            mimetype="text/plain",
        )

    def llm_run_report_html(number: int) -> Any:
        kept = finished(number)
        if kept is None:
            return gone(number)
        return Response(render_html_report(kept), mimetype="text/html")

    def llm_run_report_json(number: int) -> Any:
        kept = finished(number)
        return gone(number) if kept is None else _json_download(kept, f"llm-run{number}.json")

    routes: list[tuple[str, str, Callable[..., Any]]] = [
        (LIVE_PATH, "sagellm_llm_stats", llm_stats),
        ("/llm/timeline", "sagellm_llm_timeline", llm_timeline),
        ("/llm/", "sagellm_llm_page", llm_page),
        ("/llm/assets/<name>", "sagellm_llm_asset", llm_asset),
        ("/llm/report.html", "sagellm_llm_report_html", llm_report_html),
        ("/llm/report.json", "sagellm_llm_report_json", llm_report_json),
        ("/llm/runs/<int:number>/report.html", "sagellm_llm_run_html", llm_run_report_html),
        ("/llm/runs/<int:number>/report.json", "sagellm_llm_run_json", llm_run_report_json),
        ("/llm/metrics", "sagellm_llm_metrics", llm_metrics),
    ]
    prefix = _base_path(web_ui)
    for path, endpoint, view in routes:
        app.add_url_rule(prefix + path, endpoint, guard(view))  # '/llm' redirects to '/llm/'
    _add_tab(web_ui, runtime)
    gevent.spawn(_announce, web_ui, prefix)


def _base_path(web_ui: WebUI) -> str:
    """Locust's --web-base-path, under which its own routes are served too."""
    options = web_ui.environment.parsed_options
    return str(getattr(options, "web_base_path", "") or "").rstrip("/")


def _announce(web_ui: WebUI, prefix: str, wait_s: float = 10.0) -> None:
    """Say where the live page is, once the web server is listening (with --web-port 0
    only then is its port known)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        server = getattr(web_ui, "server", None)
        if server is not None and server.started:
            host, port = server.address[:2]
            scheme = "https" if web_ui.tls_cert and web_ui.tls_key else "http"
            shown = "localhost" if host in ("", "0.0.0.0", "::") else host
            log.info("LLM live charts at %s://%s:%d%s/llm/", scheme, shown, port, prefix)
            return
        gevent.sleep(0.05)
