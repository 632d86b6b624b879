"""The browser side ships whole: the vendored chart library is the pinned one, and every
asset the pages name is in the package."""

from __future__ import annotations

import json
import re
from importlib import resources

from sagellm_users._web import ASSETS, asset, template

WEB = resources.files("sagellm_users._web")


def test_the_vendored_uplot_is_the_version_package_json_pins() -> None:
    pinned = json.loads(WEB.joinpath("vendor/package.json").read_text())["dependencies"]["uplot"]
    lock = json.loads(WEB.joinpath("vendor/package-lock.json").read_text())
    assert lock["packages"]["node_modules/uplot"]["version"] == pinned
    banner = asset("uPlot.iife.min.js")[:120].decode()
    assert f"(v{pinned})" in banner, banner
    assert "MIT" in WEB.joinpath("vendor/LICENSE.uplot").read_text()


def test_every_asset_the_live_page_names_exists_and_nothing_else_is_loaded() -> None:
    page = template("live.html")
    named = re.findall(r'(?:src|href)="assets/([^"]+)"', page)
    assert sorted(named) == sorted(n for n in ASSETS if n != "report.js")
    for name in ASSETS:
        assert len(asset(name)) > 500, name
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)


def test_the_report_template_has_each_placeholder_once() -> None:
    page = template("report.html")
    for key in ("{{STYLE}}", "{{SCRIPT}}", "{{DATA}}"):
        assert page.count(key) == 1, key
    assert page.count("{{TITLE}}") == 2
