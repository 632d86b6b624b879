"""The browser side: the live LLM page, the HTML report, and the chart library they share.

Everything is in the package (the chart library uPlot is vendored from the npm registry by
``vendor/update.sh``), so the live page works on a machine with no internet and an HTML
report opens anywhere, offline.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["ASSETS", "asset", "template"]

ASSETS: dict[str, tuple[str, str]] = {
    "uPlot.iife.min.js": ("vendor/uPlot.iife.min.js", "text/javascript"),
    "uPlot.min.css": ("vendor/uPlot.min.css", "text/css"),
    "dashboard.js": ("static/dashboard.js", "text/javascript"),
    "live.js": ("static/live.js", "text/javascript"),
    "report.js": ("static/report.js", "text/javascript"),
    "style.css": ("static/style.css", "text/css"),
}
"""The files the live page may ask for by name -> (path in this package, media type)."""


def asset(name: str) -> bytes:
    """One of :data:`ASSETS` (a KeyError for any other name: nothing else is served)."""
    path, _media_type = ASSETS[name]
    return resources.files(__package__).joinpath(path).read_bytes()


def template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text("utf-8")
