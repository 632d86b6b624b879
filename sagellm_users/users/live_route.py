"""``GET /llm/stats`` on Locust's web UI: merged live LLM metrics as JSON.

Served by the master (or the local runner), so in distributed runs it shows every worker.
It answers with the cumulative report (the same model as ``--llm-report``) and the last
10 seconds, which the dashboard polls. It sits behind Locust's ``--web-login`` like
Locust's own routes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import jsonify

from sagellm_users.report import MetricsBlock

if TYPE_CHECKING:
    from locust.web import WebUI

    from sagellm_users.report import LLMReport
    from sagellm_users.users.runtime import LLMRuntime

__all__ = ["LIVE_PATH", "RECENT_SECONDS", "add_live_route", "live_stats"]

LIVE_PATH = "/llm/stats"
RECENT_SECONDS = 10.0


def live_stats(runtime: LLMRuntime, report: Callable[[LLMRuntime], LLMReport]) -> dict[str, Any]:
    """The payload of ``/llm/stats``."""
    runtime.recorder.flush()  # requests that finished before this call are in it
    recent, span = runtime.recent.last(RECENT_SECONDS)
    runner = runtime.environment.runner
    block = MetricsBlock.of(recent.total(), span, list(runtime.options.percentiles))
    return {
        "time": time.time(),
        "state": None if runner is None else str(runner.state),
        "user_count": None if runner is None else runner.user_count,
        "last_10s": {"seconds": span, **block.model_dump(mode="json")},
        "cumulative": report(runtime).to_json_dict(),
    }


def add_live_route(
    web_ui: WebUI, runtime: LLMRuntime, report: Callable[[LLMRuntime], LLMReport]
) -> None:
    app = web_ui.app
    if app is None:
        return

    def llm_stats() -> Any:
        return jsonify(live_stats(runtime, report))

    app.add_url_rule(LIVE_PATH, "sagellm_llm_stats", web_ui.auth_required_if_enabled(llm_stats))
