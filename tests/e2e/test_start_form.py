"""Locust's own start form, clicked in a real headless Chromium: the LLM fields take effect.

The measured defect: the form posts every field, an untouched number as ``''``; reading
``seed=''`` raised at every browser start, so a test started from the form ran with the
launch options (Max Tokens 16 typed, 128 requested) while the page said it had started. Here
the fields are typed and Start is clicked as a user does; what the server was asked for is
read from the records and the report, the verdict from the LLM page; a refused start shows
its reason in the form, starts nothing, and leaves nothing behind for the next start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.e2e.chromium import ARTIFACTS, chromium, wait_for
from tests.e2e.locust_process import ROOT, start_locust
from tests.e2e.test_browser import WebRun, reading

pytestmark = pytest.mark.e2e

CHAT = str(ROOT / "locustfiles" / "chat.py")


@pytest.fixture
def form_run(tmp_path: Path) -> Iterator[tuple[WebRun, Path]]:
    """``locust`` with its web UI, waiting for a start; launched asking 128 tokens."""
    records = tmp_path / "records.jsonl"
    process = start_locust(
        "-f", CHAT, "--web-host", "127.0.0.1", "--web-port", "0",
        "--max-tokens", "128", "--mock-args", "--ttft-ms 20 --tbt-ms 2",
        "--llm-records", str(records), "--llm-report", str(tmp_path / "run.json"),
    )  # fmt: skip
    with reading(process) as run:
        yield run, records


def _field(driver: WebDriver, name: str) -> WebElement:
    found = driver.find_elements(By.CSS_SELECTOR, f"form [name='{name}']")
    assert found, f"no field {name!r} in the start form"
    return found[0]


def _type(driver: WebDriver, name: str, text: str) -> None:
    field = _field(driver, name)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
    # Typed as a user types, into the focused field (a click could land on the dialog's
    # frame while its section unfolds).
    driver.execute_script("arguments[0].focus();", field)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    if text:
        field.send_keys(text)


def _open_form(driver: WebDriver, root: str, users: int = 2) -> None:
    """Locust's page with its start form, ``users`` users started ``users`` a second."""
    driver.get(root)
    _unfold_custom_parameters(driver)
    _type(driver, "userCount", str(users))
    _type(driver, "spawnRate", str(users))


def _unfold_custom_parameters(driver: WebDriver) -> None:
    """The start form (the page's, or the dialog Locust's New opens), its LLM fields shown."""
    wait_for(driver, "document.querySelector(\"form [name='userCount']\")?.offsetParent")
    summary = wait_for(
        driver,
        "[...document.querySelectorAll('form button')].find(b => "
        "b.textContent.trim() === 'Custom parameters')",
    )
    summary.click()
    wait_for(driver, "document.querySelector(\"form [name='maxTokens']\")?.offsetParent")


def _pages(run: WebRun) -> tuple[str, str]:
    """The LLM page's URL (from the log) and Locust's own page's."""
    url = run.wait_line(r"LLM live charts at (http://\S+/llm/)").group(1)
    return url, url.removesuffix("llm/")


def _click_start(driver: WebDriver) -> None:
    button = driver.find_element(By.CSS_SELECTOR, "form button[type='submit']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def _state(driver: WebDriver) -> str:
    state: str = driver.execute_script(
        "const r = new XMLHttpRequest(); r.open('GET', '/stats/requests', false); r.send();"
        "return JSON.parse(r.responseText).state;"
    )
    return state


def test_typed_llm_fields_take_effect_and_a_refused_start_says_why(
    form_run: tuple[WebRun, Path], tmp_path: Path
) -> None:
    run, records = form_run
    url, root = _pages(run)
    with chromium() as driver:
        _open_form(driver, root, users=2)
        # A refused start: the reason in the form, nothing started, nothing kept.
        _type(driver, "maxTokens", "sixteen")
        _click_start(driver)
        alert = wait_for(
            driver,
            "[...document.querySelectorAll('[role=alert]')].map(a => a.innerText)"
            ".find(t => t.includes('Not started'))",
        )
        assert "--max-tokens: input should be a valid integer" in alert
        assert _state(driver) == "ready", "a refused start starts nothing"

        _type(driver, "maxTokens", "16")
        _type(driver, "slo", "ttft_p99<=5s,e2el_p99<=1ms")
        ignore_eos = _field(driver, "ignoreEos")
        if not ignore_eos.is_selected():
            driver.execute_script("arguments[0].click();", ignore_eos)
        _click_start(driver)
        wait_for(driver, "document.body.innerText.includes('RUNNING')", timeout=30)
        wait_for(
            driver,
            "fetch('/llm/stats').then(r => r.json()).then(s => window.__done ="
            " s.cumulative.completed) && (window.__done || 0) >= 10",
            timeout=60,
        )
        driver.get(url)  # the LLM page: the objectives typed into the form are judged
        verdicts = wait_for(
            driver,
            "document.body.innerText.includes('e2el_p99<=1ms') && document.body.innerText",
        )
        assert "ttft_p99<=5s" in verdicts
        driver.get(root)
        _stop_test(driver)

    rows = [orjson.loads(line) for line in records.read_bytes().splitlines()]
    ok = [row for row in rows if row["status"] == "ok"]
    assert len(ok) >= 10
    assert {row["output_tokens"] for row in ok} == {16}, "every request asked 16"
    run.process.terminate()
    run.process.wait(timeout=60)
    report = orjson.loads((tmp_path / "run.json").read_bytes())
    options = report["run"]["options"]
    assert options["max_tokens"] == 16 and options["ignore_eos"] is True
    verdict = {slo["slo"]: slo["passed"] for slo in report["slos"]}
    assert verdict == {"ttft_p99<=5s": True, "e2el_p99<=1ms": False}
    log = "".join(run.seen) + _rest(run)
    assert "Traceback" not in log
    assert "start refused: --max-tokens" in log


def _rest(run: WebRun) -> str:
    lines = []
    while not run.lines.empty():
        lines.append(run.lines.get())
    return "".join(lines)


def test_the_form_lists_the_llm_fields_most_used_first(form_run: tuple[WebRun, Path]) -> None:
    run, _ = form_run
    url = run.wait_line(r"LLM live charts at (http://\S+/llm/)").group(1)
    with chromium() as driver:
        _open_form(driver, url.removesuffix("llm/"))
        names: list[str] = driver.execute_script(
            "return [...document.querySelectorAll('form [name]')].map(e => e.name);"
        )
    ours = [name for name in names if name in ("model", "maxTokens", "burstiness", "spikeHold")]
    assert ours == ["model", "maxTokens", "burstiness", "spikeHold"], names
    assert "llmRecords" not in names and "mockArgs" not in names


def _click_button(driver: WebDriver, label: str) -> None:
    """Click Locust's button ``label``, found again if React re-rendered it meanwhile."""
    for _attempt in range(5):
        button = wait_for(
            driver,
            f"[...document.querySelectorAll('button')].find(b => b.textContent.trim() === "
            f"'{label}' && b.offsetParent)",
        )
        try:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
            button.click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"Locust's {label!r} button kept being re-rendered")


def _llm_stats(driver: WebDriver) -> dict[str, Any]:
    stats: dict[str, Any] = driver.execute_script(
        "const r = new XMLHttpRequest(); r.open('GET', '/llm/stats', false); r.send();"
        "return JSON.parse(r.responseText);"
    )
    return stats


_SERVER_RUNNING = (
    "(() => { const r = new XMLHttpRequest(); r.open('GET', '/stats/requests', false);"
    " r.send(); return JSON.parse(r.responseText).state === 'running'; })()"
)
"""Locust's page says RUNNING as soon as Start is clicked; the server's state says when."""


def _stop_test(driver: WebDriver) -> None:
    wait_for(driver, "document.body.innerText.includes('RUNNING')", timeout=30)
    _click_button(driver, "Stop")
    wait_for(driver, "document.body.innerText.includes('STOPPED')", timeout=30)


def _completed(driver: WebDriver, at_least: int) -> None:
    wait_for(
        driver,
        "fetch('stats').then(r => r.json()).then(s => window.__done ="
        f" s.cumulative.completed) && (window.__done || 0) >= {at_least}",
        timeout=60,
    )


def test_stop_new_and_start_again_make_a_second_run_with_the_first_kept(
    form_run: tuple[WebRun, Path],
) -> None:
    """Start, Stop, New, Start, Reset, Stop through Locust's own buttons: the LLM page
    then shows run #2 with the second test's requests alone and lists run #1 with its
    reports; Reset restarts the LLM numbers with Locust's; the LLM tab agrees."""
    run, records = form_run
    url, root = _pages(run)
    with chromium() as driver:
        _open_form(driver, root, users=2)
        _type(driver, "maxTokens", "6")
        _click_start(driver)
        wait_for(driver, _SERVER_RUNNING, timeout=30)
        driver.get(url)
        _completed(driver, 8)
        driver.get(root)
        _stop_test(driver)
        first = [orjson.loads(line) for line in records.read_bytes().splitlines()]

        _click_button(driver, "New")  # Locust's own: the start form again
        _unfold_custom_parameters(driver)
        _type(driver, "maxTokens", "3")
        _click_start(driver)
        wait_for(driver, _SERVER_RUNNING, timeout=30)
        driver.get(url)
        _completed(driver, 6)
        page = wait_for(
            driver,
            "document.getElementById('state').textContent.includes('run #2') && "
            "!document.getElementById('runs').hidden && document.body.innerText",
        )
        assert "Earlier runs of this session" in page and "#1" in page
        stats = driver.execute_script(
            "const r = new XMLHttpRequest(); r.open('GET', 'stats', false); r.send();"
            "return JSON.parse(r.responseText);"
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "runs-second-test.png"))
        link = driver.find_element(By.CSS_SELECTOR, "#runs a[href='runs/1/report.json']")
        kept = driver.execute_script(
            "const r = new XMLHttpRequest(); r.open('GET', arguments[0], false); r.send();"
            "return JSON.parse(r.responseText);",
            link.get_attribute("href"),
        )
        driver.get(root)
        # Locust's Reset button: the run's LLM numbers restart with Locust's own.
        wait_for(driver, "document.body.innerText.includes('RUNNING')", timeout=30)
        before = _llm_stats(driver)["cumulative"]["completed"]
        _click_button(driver, "Reset")
        wait_for(
            driver,
            "fetch('/llm/stats').then(r => r.json()).then(s => window.__after ="
            " s.cumulative.completed) && window.__after !== undefined &&"
            f" window.__after < {before}",
            timeout=30,
        )
        _stop_test(driver)
        # Locust's LLM tab shows the run's endpoint as /llm/stats does, once stopped.
        final = _llm_stats(driver)["cumulative"]
        _click_button(driver, "LLM")
        row = wait_for(
            driver,
            "[...document.querySelectorAll('tr')].map(r => r.innerText)"
            ".find(t => t.includes('/v1/chat/completions'))",
        )
        driver.save_screenshot(str(ARTIFACTS / "runs-llm-tab.png"))

    requests = final["total"]["requests"]
    assert str(requests) in row.split("\t"), (row, requests)
    cumulative = stats["cumulative"]
    assert cumulative["run"]["options"]["max_tokens"] == 3
    assert cumulative["completed"] >= 6
    assert cumulative["total_output_tokens"] == 3 * cumulative["completed"], "run #2 alone"
    ok_first = [row for row in first if row["status"] == "ok"]
    assert kept["run"]["options"]["max_tokens"] == 6
    assert kept["completed"] == len(ok_first) and kept["total_output_tokens"] == 6 * len(ok_first)
