"""The LLM page and the HTML report in a real headless Chromium, during and after real runs.

Each test drives the real ``locust`` command (no ``--host``: the embedded mock), opens the
pages as a user would, and checks that they load with no console errors and that the
charts hold data: the page's own point counts and colored pixels in each plot area. The
screenshots (and a PDF of the printed report) are kept in ``artifacts/browser/``.
"""

from __future__ import annotations

import base64
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._report import build_report
from sagellm_users._report.html import render_html_report
from sagellm_users._report.model import LostWorker
from tests.e2e.chromium import ARTIFACTS, canvas_ink, chromium, console_errors, wait_for
from tests.e2e.locust_process import ROOT, kill_locust, run_locust, start_locust

pytestmark = pytest.mark.e2e

CHAT = str(ROOT / "locustfiles" / "chat.py")
TIME_SERIES = ("ts-throughput", "ts-ttft", "ts-itl", "ts-e2el", "ts-users", "ts-lag")
REPORT_SECTIONS = ("config", "summary", "slos", "distributions", "timeseries", "errors")
DISTRIBUTIONS = ("hist-ttft_ms", "cdf-ttft_ms", "hist-itl_ms", "cdf-itl_ms", "cdf-e2el_ms")


@dataclass
class WebRun:
    """``locust`` with its web UI; stderr lines are read as they come."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def wait_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                seen = "".join(self.seen)
                raise AssertionError(f"no line like {pattern!r} in:\n{seen}") from None
            self.seen.append(line)
            match = re.search(pattern, line)
            if match is not None:
                return match


@pytest.fixture(params=[[], ["--processes", "2"]], ids=["local", "distributed"])
def web_run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebRun]:
    """``--processes 2`` is Locust's own master with two forked workers: the page then
    shows the master's merge of both."""
    process = start_locust(
        "-f", CHAT, *request.param,
        "--web-host", "127.0.0.1", "--web-port", "0",
        "--autostart", "-u", "6", "-r", "3", "--run-time", "25s", "--autoquit", "0",
        "--max-tokens", "24", "--slo", "ttft_p99<=2s,error_rate<=5%",
        "--mock-args", "--ttft-ms 40 --tbt-ms 8 --error-rate-500 0.02",
        "--llm-report", str(tmp_path / "run.json"), "--llm-html", str(tmp_path / "run.html"),
    )  # fmt: skip
    with reading(process) as run:
        yield run


@contextmanager
def reading(process: subprocess.Popen[str]) -> Iterator[WebRun]:
    """``process``'s output read line by line as it comes; the process (its forked workers
    too: none outlives the test) is killed at the end."""
    run = WebRun(process)
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            run.lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield run
    finally:
        kill_locust(process)


LIVE_CHARTS = ("ts-throughput", "ts-ttft", "ts-itl", "ts-users")


def _shot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, "a real picture, not an empty page"
    return path


def _charts_hold_data(driver: WebDriver, charts: tuple[str, ...], at_least: int = 2) -> None:
    for chart in charts:
        found = canvas_ink(driver, chart)
        assert found is not None, f"no chart {chart!r} on the page"
        assert found["points"] >= at_least, (chart, found)
        assert found["ink"] > 50, f"chart {chart!r} has data but draws nothing: {found}"


def _updates(driver: WebDriver) -> int:
    return int(driver.execute_script("return Number(document.body.dataset.updates || 0);"))


def test_the_live_page_fills_during_a_run_and_the_report_opens_offline(
    web_run: WebRun, tmp_path: Path
) -> None:
    url = web_run.wait_line(r"LLM live charts at (http://\S+/llm/)").group(1)
    root = url.removesuffix("llm/")
    with chromium() as driver:
        driver.get(url)
        wait_for(driver, "Number(document.body.dataset.updates || 0) >= 2")
        wait_for(driver, "Number(document.querySelector('[data-chart=\"ts-users\"]')"
                 "?.dataset.points || 0) >= 3")  # fmt: skip
        # The users are sampled where the page is served; what they measured comes from
        # where they run, on a master with its workers' reports, seconds later.
        for chart in LIVE_CHARTS:
            wait_for(driver, f"Number(document.querySelector('[data-chart=\"{chart}\"]')"
                     "?.dataset.points || 0) >= 2")  # fmt: skip
        _charts_hold_data(driver, LIVE_CHARTS)
        before = canvas_ink(driver, "ts-throughput")
        assert before is not None
        now = _updates(driver)
        wait_for(driver, f"Number(document.body.dataset.updates) >= {now + 3}")
        wait_for(
            driver,
            "Number(document.querySelector('[data-chart=\"ts-throughput\"]').dataset.points)"
            f" > {before['points']}",
        )  # the charts fill as the run goes on
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "OpenAIChatUser" in body, "the per-endpoint table"
        assert "ttft_p99<=2s" in body, "the SLO status"
        assert console_errors(driver) == []
        _shot(driver, "live-page.png")

        driver.get(root)  # Locust's own page: the LLM tab rides on its stats poll
        tab = wait_for(
            driver,
            "[...document.querySelectorAll('[role=tab]')].find(t => t.textContent === 'LLM')",
        )
        tab.click()
        wait_for(driver, "document.body.innerText.includes('OpenAIChatUser /v1/chat/completions')")
        _shot(driver, "locust-llm-tab.png")

        web_run.process.wait(timeout=60)  # --run-time ends the test, --autoquit 0 Locust
        web_run.wait_line(r"Report: .*run\.html")
        assert web_run.process.returncode in (0, 3), "".join(web_run.seen)

        report = orjson.loads((tmp_path / "run.json").read_bytes())
        timeline = report["timeline"]
        assert timeline["late_requests"] == timeline["late_tokens"] == 0
        assert timeline["output_by_arrival"] is True
        points = timeline["points"]
        assert sum(p["completed"] for p in points) == report["total"]["completed"]
        assert sum(p["failed"] for p in points) == report["total"]["failed"]
        completed = sum(p["completed_output_tokens"] for p in points)
        assert completed == report["total"]["total_output_tokens"]
        # Failed and stopped requests' tokens arrived too: as many or more, never fewer.
        assert sum(p["output_tokens"] for p in points) >= completed

        driver.get("about:blank")
        console_errors(driver)  # Locust's own page's messages (its polls once it quit) go
        driver.get((tmp_path / "run.html").as_uri())
        wait_for(driver, "document.body.dataset.ready === '1'")
        for section in REPORT_SECTIONS:
            assert driver.find_elements(By.ID, section), f"section #{section}"
        _charts_hold_data(driver, TIME_SERIES, at_least=3)
        _charts_hold_data(driver, DISTRIBUTIONS)
        loaded = driver.execute_script("return performance.getEntriesByType('resource').length")
        assert loaded == 0, "the report loads nothing: it opens offline"
        assert console_errors(driver) == []
        _shot(driver, "report.png")

        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        _charts_hold_data(driver, ("ts-throughput", "cdf-ttft_ms"))
        pdf = base64.b64decode(driver.print_page())
        assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
        (ARTIFACTS / "report.pdf").write_bytes(pdf)
        assert console_errors(driver) == []


def _headless(out: Path, ttft_ms: int, users: int = 4, max_tokens: int = 16) -> None:
    result = run_locust(
        "-f", CHAT, "--headless", "-u", str(users), "-r", "4", "--run-time", "3s",
        "--max-tokens", str(max_tokens), "--llm-report", str(out),
        "--mock-args", f"--ttft-ms {ttft_ms} --tbt-ms 5",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_comparison_of_two_runs_highlights_the_deltas(tmp_path: Path) -> None:
    base, slower = tmp_path / "base.json", tmp_path / "slower.json"
    _headless(base, 20)
    _headless(slower, 60, users=2, max_tokens=8)
    # The baseline as schema version 2 wrote it: its tokens by request end, said so.
    old = orjson.loads(base.read_bytes())
    del old["timeline"]["late_tokens"], old["timeline"]["output_by_arrival"]
    for point in old["timeline"]["points"]:
        del point["completed_output_tokens"]
    base.write_bytes(orjson.dumps({**old, "schema_version": 2}))
    out = tmp_path / "ab.html"
    tool = Path(sys.executable).with_name("sagellm-report")
    subprocess.run([str(tool), str(base), str(slower), "-o", str(out)], check=True, timeout=60)
    with chromium() as driver:
        driver.get(out.as_uri())
        wait_for(driver, "document.body.dataset.ready === '1'")
        assert driver.find_elements(By.ID, "comparison")
        worse = driver.execute_script(
            "return [...document.querySelectorAll('#comparison .worse')].map(e => e.textContent)"
        )
        assert worse, "TTFT tripled: its cells are marked worse"
        _charts_hold_data(driver, ("cmp-cdf-ttft_ms", "cmp-ts-output"))
        comparison = driver.find_element(By.ID, "comparison").text
        # The load comes first: what differs between the runs, before any latency.
        differs = driver.execute_script(
            "const t = document.querySelector('#comparison .load-diff table');"
            "return t && [...t.querySelectorAll('tbody tr')].map(r => r.innerText);"
        )
        assert differs is not None, "a table of what differs in the load"
        rows = {row.split("\t")[0]: row.split("\t")[1:] for row in differs}
        assert rows["users"] == ["4", "2"] and rows["--max-tokens"] == ["16", "8"]
        assert "--llm-report" not in rows, "where the report was written is not the load"
        assert comparison.index("What differs in the load") < comparison.index("TTFT")
        assert "base: A report older than schema version 3" in comparison
        assert "slower:" not in comparison
        assert console_errors(driver) == []
        _shot(driver, "comparison.png")


def test_the_report_says_when_it_is_partial_and_what_was_cancelled_or_retried(
    tmp_path: Path,
) -> None:
    """A distributed run that lost a worker, stopped with requests in flight and retried
    some: the HTML report says all three above its summary table."""
    collector = MetricsCollector()
    for i in range(6):
        rec = RequestRecord(
            request_id=i, user="ChatUser", backend="openai", api="chat",
            name="/v1/chat/completions", model="tiny", stream=True,
            wall_start=1_790_000_000.0 + i, t_start=5.0, t_send=5.0,
            t_out=[5.04, 5.05, 5.06], t_done=5.06,
            usage_prompt_tokens=8, usage_completion_tokens=3,
        )  # fmt: skip
        if i == 0:
            rec.retry_errors = ["HTTPStatusError 429"]
        if i == 5:
            rec.status, rec.t_out, rec.t_done = "cancelled", [], 5.5
        collector.add(rec)
    built = build_report(
        collector, percentiles=[50.0, 99.0], host="http://127.0.0.1:8000",
        user_classes=["ChatUser"], options={}, warmup="none", measure_after_spawn=False,
    )  # fmt: skip
    lost = LostWorker(
        worker="worker-7", lost_at=datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC), last_report_at=None
    )
    built = built.model_copy(update={"lost_workers": [lost], "partial": True})
    out = tmp_path / "partial.html"
    out.write_bytes(render_html_report(built))
    with chromium() as driver:
        driver.get(out.as_uri())
        wait_for(driver, "document.body.dataset.ready === '1'")
        summary = driver.find_element(By.ID, "summary").text
        assert (
            "PARTIAL: worker worker-7 was lost at 2026-05-06 07:08:09 UTC (last report never)"
        ) in summary
        assert "1 request(s) were in flight when the test stopped" in summary
        assert "Retried 1 request(s), 1 retries (HTTPStatusError 429 x1)" in summary
        headers = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#summary th")]
        assert "cancelled" in headers and "retried" in headers
        assert console_errors(driver) == []


def test_a_sweeps_serving_curve_is_drawn_with_its_bound_and_capacity(tmp_path: Path) -> None:
    """The serving curve of a real sweep against the mock (which runs 4 sequences at once):
    each stage's p99s against what it achieved, the objective dashed, the capacity marked;
    docs/serving-curve.png is this test's screenshot. The bound sits 60 ms above an unqueued
    TTFT, so a stall of the machine running the test does not break the first stage; queueing
    past 4 users (a request is ~170 ms) breaks it."""
    report = tmp_path / "sweep.json"
    result = run_locust(
        "-f", f"{CHAT},{ROOT / 'locustfiles' / 'shapes' / 'sweep.py'}", "--headless",
        "--sweep", "1:1:6", "--stage-time", "2s", "--sweep-settle", "0.5s",
        "--slo", "ttft_p99<=80ms", "--max-tokens", "16", "--ignore-eos",
        "--mock-args", "--ttft-ms 20 --tbt-ms 10 --max-concurrency 4",
        "--llm-report", str(report), "--llm-html", str(tmp_path / "sweep.html"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    data = orjson.loads(report.read_bytes())
    curve = data["curve"]
    assert curve["capacity"] is not None and curve["thresholds"] == {"ttft_p99_ms": 80.0}
    with chromium() as driver:
        driver.get((tmp_path / "sweep.html").as_uri())
        wait_for(driver, "document.body.dataset.ready === '1'")
        section = driver.find_element(By.ID, "curve")
        charts = section.find_elements(By.CSS_SELECTOR, ".chart")
        assert len(charts) == 6, "TTFT, ITL and E2E p99 against req/s and tokens/s"
        ids = [c.get_attribute("data-chart") for c in charts]
        _charts_hold_data(driver, tuple(i for i in ids if i), at_least=2)
        legends = section.text
        assert re.search(r"objective 80(\.0)? ms", legends), legends
        assert f"capacity {curve['capacity']:g} users" in legends
        capacity_row = section.find_element(By.CSS_SELECTOR, "table.curve tr.capacity")
        assert capacity_row.text.split()[0] == f"{curve['capacity']:g}"
        assert console_errors(driver) == []
        driver.execute_script("arguments[0].scrollIntoView();", section)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "serving-curve.png"  # docs/serving-curve.png is this picture
        assert section.screenshot(str(shot))
    assert shot.stat().st_size > 20_000, "a real picture, not an empty one"


def test_the_live_page_draws_the_serving_curve_as_stages_end(tmp_path: Path) -> None:
    process = start_locust(
        "-f", f"{CHAT},{ROOT / 'locustfiles' / 'shapes' / 'step.py'}",
        "--web-host", "127.0.0.1", "--web-port", "0", "--autostart", "--autoquit", "30",
        "--step-users", "1:1:4", "--stage-time", "2s", "--slo", "ttft_p99<=1s",
        "--max-tokens", "8", "--mock-args", "--ttft-ms 10 --tbt-ms 2",
    )  # fmt: skip
    with reading(process) as run, chromium() as driver:
        url = run.wait_line(r"LLM live charts at (http://\S+/llm/)").group(1)
        driver.get(url)
        # Each stage that ends adds a point: the panel shows up after the first (the page
        # stays served 30 s after the last stage: --autoquit 30).
        wait_for(
            driver,
            "!document.getElementById('curve').hidden && Number(document.querySelector("
            "'#curve .serving-curve')?.dataset.points || 0) >= 2",
            timeout=30,
        )
        section = driver.find_element(By.ID, "curve")
        assert len(section.find_elements(By.CSS_SELECTOR, ".chart")) == 6
        assert "objective" in section.text and "users" in section.text
        assert console_errors(driver) == []


def test_answers_of_another_length_than_asked_are_warned_of_live_and_in_the_report(
    tmp_path: Path,
) -> None:
    """A proxy that drops ignore_eos (the mock's --drop-vendor-fields): every answer ends on
    its EOS, shorter than asked. The live page says so under its errors while the test runs,
    and so does the HTML report."""
    report = tmp_path / "short.html"
    process = start_locust(
        "-f", str(CHAT), "--web-host", "127.0.0.1", "--web-port", "0", "--autostart",
        "--autoquit", "3", "-u", "2", "-r", "2", "-t", "6s", "--max-tokens", "64",
        "--ignore-eos", "--llm-html", str(report),
        "--mock-args", "--ttft-ms 5 --tbt-ms 2 --natural-output-tokens 4:32 --drop-vendor-fields",
    )  # fmt: skip
    warning = "were not the length they asked for (ignore_eos / min_tokens)"
    with reading(process) as run, chromium() as driver:
        url = run.wait_line(r"LLM live charts at (http://\S+/llm/)").group(1)
        driver.get(url)
        wait_for(
            driver,
            f"document.getElementById('errors').innerText.includes({warning!r})",
            timeout=30,
        )
        note = driver.find_element(By.CSS_SELECTOR, "#errors .note.warning")
        assert re.search(r"asked exactly 64 \(ignore_eos\), got \d+", note.text), note.text
        assert console_errors(driver) == []
        run.wait_line(r"Report: ")
        driver.get(report.as_uri())
        wait_for(driver, "document.body.dataset.ready === '1'")
        assert warning in driver.find_element(By.ID, "summary").text
        assert console_errors(driver) == []


def test_reasoning_cache_steps_and_http_phases_show_live_and_in_the_report(
    tmp_path: Path,
) -> None:
    """A reasoning model behind a prefix cache with speculative decoding (the mock's
    --reasoning-tokens, --prefix-cache-blocks, --spec-decode) under a shared-prefix
    workload: the live page's table grows TTFO, prompt-cache and tokens-per-step columns,
    its notes say what the model and the cache did, and its HTTP phases panel fills; the
    HTML report has the same notes and an HTTP phases section."""
    report = tmp_path / "model.html"
    workload = tmp_path / "shared.toml"
    workload.write_text(
        'name = "shared"\ninput_tokens = "8:8"\noutput_tokens = 24\n'
        "[shared_prefix]\ngroups = 2\ntokens = 64\n"
    )
    extra = '{"stream_options": {"include_usage": true, "continuous_usage_stats": true}}'
    process = start_locust(
        "-f", str(CHAT), "--web-host", "127.0.0.1", "--web-port", "0", "--autostart",
        "--autoquit", "3", "-u", "2", "-r", "2", "-t", "6s", "--ignore-eos",
        "--workload", str(workload), "--extra-body", extra, "--llm-html", str(report),
        "--mock-args", "--ttft-ms 5 --tbt-ms 2 --reasoning-tokens 6 --prefix-cache-blocks 512 "
        "--spec-decode 2:0.5",
    )  # fmt: skip
    with reading(process) as run, chromium() as driver:
        url = run.wait_line(r"LLM live charts at (http://\S+/llm/)").group(1)
        driver.get(url)
        wait_for(driver, "!document.getElementById('phases').hidden", timeout=30)
        wait_for(driver, "document.getElementById('endpoints').innerText.includes('Prompt cache')")
        endpoints = driver.find_element(By.ID, "endpoints").text
        for column in ("TTFO p50", "reasoning tok/req", "prompt cache hits", "tokens/step"):
            assert column in endpoints, column
        assert re.search(r"Reasoning: \d+ of \d+ requests reasoned", endpoints), endpoints
        assert "Decode steps carried" in endpoints
        phases = driver.find_element(By.ID, "phases").text
        assert "wait for headers" in phases and "headers to first byte" in phases
        _shot(driver, "live-reasoning-cache-steps.png")
        assert console_errors(driver) == []
        run.wait_line(r"Report: ")
        driver.get(report.as_uri())
        wait_for(driver, "document.body.dataset.ready === '1'")
        summary = driver.find_element(By.ID, "summary").text
        assert "requests reasoned" in summary and "Prompt cache:" in summary
        assert "headers to first byte" in driver.find_element(By.ID, "phases").text
        assert console_errors(driver) == []


def test_a_trace_replay_shows_its_progress_live_and_ends_the_test(tmp_path: Path) -> None:
    """The shipped sample trace at 8x: the live page's arrivals panel counts the lines
    started out of the trace's 80 and their lag; the test stops itself with the trace and
    the report lists it as the workload."""
    report = tmp_path / "trace.html"
    trace = ROOT / "configs" / "traces" / "mooncake-sample.jsonl"
    process = start_locust(
        "-f", str(CHAT), "--web-host", "127.0.0.1", "--web-port", "0", "--autostart",
        "--autoquit", "2", "-u", "16", "-r", "16", "-t", "60s", "--ignore-eos",
        "--trace", str(trace), "--trace-speed", "8", "--llm-html", str(report),
        "--mock-args", "--ttft-ms 5 --tbt-ms 1 --prefix-cache-blocks 4096",
    )  # fmt: skip
    with reading(process) as run, chromium() as driver:
        url = run.wait_line(r"LLM live charts at (http://\S+/llm/)").group(1)
        driver.get(url)
        wait_for(driver, "!document.getElementById('arrivals').hidden", timeout=30)
        assert "mooncake-sample.jsonl (80 lines over" in driver.find_element(By.ID, "arrivals").text
        run.wait_line(r"every line of the trace was sent and answered; stopping")
        wait_for(
            driver,
            "document.getElementById('arrivals').innerText.includes('80 of 80')",
            timeout=15,
        )
        _shot(driver, "live-trace-replay.png")
        assert console_errors(driver) == []
        run.wait_line(r"Report: ")
        driver.get(report.as_uri())
        wait_for(driver, "document.body.dataset.ready === '1'")
        workload = driver.find_element(By.ID, "workload").text
        assert "lines started" in workload and "80 of 80" in workload
        assert console_errors(driver) == []
