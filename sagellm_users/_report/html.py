"""One self-contained HTML file from one report, or from several side by side.

The page is the report's own JSON plus the code that draws it (the vendored uPlot and our
``report.js``), inlined: it needs no server and no network, so it can be mailed, attached
to a CI run or opened years later. The same drawing code serves the live page.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import orjson

from sagellm_users._report.model import LLMReport
from sagellm_users._web import asset, template

__all__ = ["render_html", "render_html_report"]

_STYLES = ("uPlot.min.css", "style.css")
_SCRIPTS = ("uPlot.iife.min.js", "dashboard.js", "report.js")


def _script_json(data: Any) -> str:
    """JSON that can sit inside a <script> element: no '<' can close it early."""
    return orjson.dumps(data).decode().replace("<", "\\u003c")


def _inline_script(code: str) -> str:
    # A script's text ends at the first "</script"; escaping the slash keeps the JS the same.
    return code.replace("</script", "<\\/script")


def render_html(reports: Sequence[dict[str, Any]], labels: Sequence[str], title: str) -> bytes:
    """The page for ``reports`` (report JSON dicts); several are drawn as a comparison."""
    if len(reports) != len(labels):
        raise ValueError("one label per report")
    page = template("report.html")
    style = "\n".join(asset(name).decode() for name in _STYLES)
    script = "\n;\n".join(_inline_script(asset(name).decode()) for name in _SCRIPTS)
    data = _script_json({"labels": list(labels), "reports": list(reports)})
    # Placeholders are replaced in one pass, so text inside one can never be read as another.
    values = {
        "{{TITLE}}": html.escape(title),
        "{{STYLE}}": style.replace("</style", "<\\/style"),
        "{{SCRIPT}}": script,
        "{{DATA}}": data,
    }
    out: list[str] = []
    rest = page
    while True:
        at = [(rest.find(key), key) for key in values if rest.find(key) >= 0]
        if not at:
            out.append(rest)
            break
        index, key = min(at)
        out += [rest[:index], values[key]]
        rest = rest[index + len(key) :]
    return "".join(out).encode()


def render_html_report(report: LLMReport) -> bytes:
    """The writer for ``--llm-html`` / ``--llm-report *.html``."""
    host = report.run.host or "embedded mock"
    title = f"LLM load test: {host}, {report.created:%Y-%m-%d %H:%M} UTC"
    return render_html([report.to_json_dict()], ["this run"], title)
