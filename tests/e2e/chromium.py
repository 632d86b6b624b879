"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium.

Started the way a closed network needs: no first-run, no background networking, component
updates or sync (each would try to reach Google and fail), and a fresh profile directory
per browser. Where Chromium is not installed the browser tests skip, except in CI
(``CI=true``), where ``.ci/run`` installs it and its absence is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

__all__ = ["ARTIFACTS", "canvas_ink", "chromium", "console_errors", "need_chromium", "wait_for"]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
"""Screenshots the browser tests keep (ignored by git; CI can upload the folder)."""

_BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
_DRIVERS = ("/usr/bin/chromedriver",)


def _first(paths: tuple[str, ...], name: str) -> str | None:
    for path in paths:
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def need_chromium() -> tuple[str, str]:
    """The Chromium and ChromeDriver binaries; skip (fail in CI) when missing."""
    browser = _first(_BROWSERS, "chromium")
    driver = _first(_DRIVERS, "chromedriver")
    if browser and driver:
        return browser, driver
    message = (
        "headless Chromium is not installed: apt-get install chromium chromium-driver "
        "(Debian), as .ci/run does"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium(width: int = 1400, height: int = 2200) -> Iterator[WebDriver]:
    browser, driver_path = need_chromium()
    profile = tempfile.mkdtemp(prefix="sagellm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """Console messages of level WARNING or worse since the last call (errors, failed loads,
    uncaught exceptions)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[attr-defined]
    return [e for e in entries if e["level"] in ("SEVERE", "WARNING")]


def wait_for(driver: WebDriver, script: str, timeout: float = 30.0) -> Any:
    """Wait until ``script`` (a JS expression) is truthy in the page; its value."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(f"return ({script});")
    )


_INK = """
const box = document.querySelector(`[data-chart="${arguments[0]}"]`);
if (!box) return null;
let ink = 0;
for (const canvas of box.querySelectorAll('canvas')) {
  const over = box.querySelector('.u-over');
  const c = canvas.getBoundingClientRect();
  const r = over ? over.getBoundingClientRect() : c;
  const sx = canvas.width / c.width, sy = canvas.height / c.height;
  const x = Math.max(0, Math.floor((r.left - c.left) * sx));
  const y = Math.max(0, Math.floor((r.top - c.top) * sy));
  const w = Math.min(canvas.width - x, Math.ceil(r.width * sx));
  const h = Math.min(canvas.height - y, Math.ceil(r.height * sy));
  if (w <= 0 || h <= 0) continue;
  // Read a copy: reading the page's own canvas back would make Chromium warn about it.
  const copy = document.createElement('canvas');
  copy.width = w; copy.height = h;
  const context = copy.getContext('2d', {willReadFrequently: true});
  context.drawImage(canvas, x, y, w, h, 0, 0, w, h);
  const data = context.getImageData(0, 0, w, h).data;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] < 128) continue;
    const hi = Math.max(data[i], data[i + 1], data[i + 2]);
    const lo = Math.min(data[i], data[i + 1], data[i + 2]);
    if (hi - lo > 40) ink += 1;  // colored: a series, not the grey grid, axes or text
  }
}
return {points: Number(box.dataset.points || 0), ink: ink};
"""


def canvas_ink(driver: WebDriver, chart: str) -> dict[str, int] | None:
    """For the chart ``chart``: how many x values it holds data for (``points``), and how
    many colored pixels its plot area shows (``ink``: series are colored, while the grid,
    axes and labels are grey, so an empty chart has none)."""
    result: dict[str, int] | None = driver.execute_script(_INK, chart)
    return result
