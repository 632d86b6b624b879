"""The HTML report: one self-contained file; ``sagellm-report`` renders saved reports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from sagellm_users._metrics import MetricsCollector
from sagellm_users._metrics.timeline import Timeline
from sagellm_users._report import SCHEMA_VERSION, LLMReport, build_report
from sagellm_users._report.cli import load_report, main, unique_labels
from sagellm_users._report.html import render_html, render_html_report
from sagellm_users._report.writers import render_json
from tests.records import make_record, steady_record


def _report(model: str = "tiny", ttft: float = 0.05) -> LLMReport:
    collector = MetricsCollector()
    timeline = Timeline()
    for i in range(30):
        record = steady_record(n=6, ttft=ttft, request_id=i)
        record.model = model
        collector.add(record)
        timeline.add(record)
    failed = make_record(status="error", error_class="HTTPError 500", error_message="boom")
    collector.add(failed)
    timeline.add(failed)
    timeline.close(record.wall_done + 10)
    return build_report(
        collector,
        percentiles=[50, 90, 99],
        host="http://127.0.0.1:9",
        user_classes=["OpenAIChatUser"],
        options={"max_tokens": 6},
        warmup="0",
        measure_after_spawn=False,
        timeline=timeline,
    )


def _embedded(page: str) -> dict[str, Any]:
    match = re.search(
        r'<script id="sagellm-data" type="application/json">(.*?)</script>', page, re.DOTALL
    )
    assert match is not None
    data: dict[str, Any] = orjson.loads(match.group(1))
    return data


def test_the_page_holds_the_report_and_everything_it_needs() -> None:
    page = render_html_report(_report()).decode()
    data = _embedded(page)
    assert data["labels"] == ["this run"]
    (report,) = data["reports"]
    assert report["total"]["completed"] == 30 and report["timeline"]["points"]
    assert "{{" not in page, "every placeholder was filled"
    assert "uPlot" in page, "the chart library is inlined"
    assert not re.search(r'<(?:script|link|img)[^>]+(?:src|href)="(?!data:)', page), "loads none"
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", page), "nor from CSS"


def test_text_from_the_run_cannot_close_the_data_script() -> None:
    hostile = '</script><script>alert("x")</script>'
    page = render_html_report(_report(model=hostile)).decode()
    assert hostile not in page
    assert hostile in _embedded(page)["reports"][0]["total"]["models"]


def test_several_reports_render_with_their_labels() -> None:
    page = render_html(
        [_report().to_json_dict(), _report(ttft=0.08).to_json_dict()], ["before", "after"], "A/B"
    ).decode()
    data = _embedded(page)
    assert data["labels"] == ["before", "after"]
    assert data["reports"][1]["total"]["ttft_ms"]["median"] == pytest.approx(80.0)
    assert "<title>A/B</title>" in page
    with pytest.raises(ValueError, match="one label per report"):
        render_html([_report().to_json_dict()], [], "x")


def test_sagellm_report_renders_a_saved_report(tmp_path: Path, capsys: Any) -> None:
    saved = tmp_path / "run.json"
    saved.write_bytes(render_json(_report()))
    assert main([str(saved)]) == 0
    out = tmp_path / "run.html"
    assert f"Report: {out}" in capsys.readouterr().out
    (report,) = _embedded(out.read_text())["reports"]
    assert report["total"]["failed"] == 1


def test_sagellm_report_compares_runs_against_the_first(tmp_path: Path) -> None:
    paths = []
    for name, ttft in (("a", 0.05), ("b", 0.07)):
        path = tmp_path / f"{name}.json"
        path.write_bytes(render_json(_report(ttft=ttft)))
        paths.append(str(path))
    out = tmp_path / "ab.html"
    assert main([*paths, "-o", str(out), "--label", "base", "--label", "new"]) == 0
    data = _embedded(out.read_text())
    assert data["labels"] == ["base", "new"]
    assert [r["total"]["ttft_ms"]["median"] for r in data["reports"]] == [
        pytest.approx(50.0),
        pytest.approx(70.0),
    ]


def test_labels_tell_same_named_files_apart() -> None:
    assert unique_labels([Path("a/run.json"), Path("b/base.json")]) == ["run", "base"]
    assert unique_labels([Path("a/run.json"), Path("b/run.json")]) == ["a/run", "b/run"]
    assert unique_labels([Path("run.json"), Path("run.json")]) == ["run #1", "run #2"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a sagellm-locust report"),
        (b'{"schema_version": 99, "total": {}}', "schema version 99"),
        (b'{"schema_version": 1, "total": {}}', "not a valid report: "),
        (b'{"schema_version": 2, "total": {}}', "not a valid report: "),
        (b'{"schema_version": 3, "total": {}}', "not a valid report: "),
    ],
)
def test_a_file_that_is_not_a_report_is_named_with_the_reason(
    tmp_path: Path, capsys: Any, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    assert main([str(path), "-o", str(tmp_path / "out.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sagellm-report: error: {path}: ") and message in err, err
    assert not (tmp_path / "out.html").exists(), "nothing written"


def test_bad_arguments_are_refused_before_reading(tmp_path: Path, capsys: Any) -> None:
    saved = tmp_path / "run.json"
    saved.write_bytes(render_json(_report()))
    for argv, message in (
        ([str(saved), "-o", str(tmp_path / "out.pdf")], "end the name in .html"),
        ([str(saved), "-o", str(tmp_path / "no" / "out.html")], "does not exist"),
        ([str(saved), "--label", "a", "--label", "b"], "--label given 2 time(s) for 1"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
        assert message in capsys.readouterr().err


def test_a_saved_report_loads_back_to_the_same_json(tmp_path: Path) -> None:
    report = _report()
    saved = tmp_path / "run.json"
    saved.write_bytes(render_json(report))
    assert load_report(saved) == orjson.loads(render_json(report))


def _v1_server(mean_ms: float, percentiles: dict[str, float | None]) -> dict[str, Any]:
    """A histogram as schema version 1 wrote it: bare interpolated numbers, no buckets."""
    return {"count": 152, "mean": mean_ms, "percentiles": percentiles}


def test_a_version_1_report_still_loads_without_its_impossible_percentiles(
    tmp_path: Path,
) -> None:
    """Version 1 kept only ``histogram_quantile``'s number: the bucket is lost, but the mean
    still bounds each percentile (Markov: p <= mean / (1 - q)), so what it cannot be is
    shown as a bound and the rest as an interpolation ("~")."""
    raw = orjson.loads(render_json(_report()))
    raw["schema_version"] = 1
    server = {
        "host": "http://127.0.0.1:8000", "version": "0.32.0", "scrapes": 3,
        "failed_scrapes": 0, "seconds": 10.0, "requests": 152, "prompt_tokens": 10,
        "generation_tokens": 20, "preemptions": 0, "running": None, "waiting": None,
        "kv_cache_usage": None,
        "e2el_ms": _v1_server(16.9, {"p50": 150.0, "p99": 297.0}),
        "itl_ms": _v1_server(10.0, {"p50": 5.0, "p99": 9.9}),
        "queue_ms": _v1_server(0.006, {"p50": 150.0, "p99": None}),
    }  # fmt: skip
    raw["server"] = [server]
    saved = tmp_path / "v1.json"
    saved.write_bytes(orjson.dumps(raw))
    loaded = load_report(saved)
    assert loaded["schema_version"] == SCHEMA_VERSION
    (read,) = loaded["server"]
    shown = {
        field: {k: (p and p["display"]) for k, p in read[field]["percentiles"].items()}
        for field in ("e2el_ms", "itl_ms", "queue_ms")
    }
    assert shown == {
        "e2el_ms": {"p50": "≤ 33.8", "p99": "~297"},
        "itl_ms": {"p50": "~5.00", "p99": "~9.90"},
        "queue_ms": {"p50": "≤ 0.012", "p99": None},
    }
    p50 = read["e2el_ms"]["percentiles"]["p50"]
    assert p50["bucket"] is None and p50["histogram_quantile"] == 150.0
    assert main([str(saved), "-o", str(tmp_path / "v1.html")]) == 0


def test_a_version_2_report_keeps_its_tokens_by_request_end_and_says_so(tmp_path: Path) -> None:
    """Version 2 counted the timeline's output tokens at each request's end: they load as
    ``completed_output_tokens`` and as ``output_tokens`` (their arrival was not recorded),
    marked so the page can say what its chart shows."""
    raw = orjson.loads(render_json(_report()))
    timeline = raw["timeline"]
    del timeline["late_tokens"], timeline["output_by_arrival"]
    for point in timeline["points"]:
        del point["completed_output_tokens"]
    raw["schema_version"] = 2
    saved = tmp_path / "v2.json"
    saved.write_bytes(orjson.dumps(raw))
    loaded = load_report(saved)
    assert loaded["schema_version"] == SCHEMA_VERSION == 3
    upgraded = loaded["timeline"]
    assert upgraded["output_by_arrival"] is False and upgraded["late_tokens"] == 0
    assert [p["completed_output_tokens"] for p in upgraded["points"]] == [
        p["output_tokens"] for p in timeline["points"]
    ]
    assert main([str(saved), "-o", str(tmp_path / "v2.html")]) == 0
