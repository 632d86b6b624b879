"""The verdicts of a run as JUnit XML (``--llm-report verdicts.xml``), which CI systems
(GitHub Actions' test reporters, GitLab, Jenkins) show as test results.

One test case per ``--slo`` objective, failed with what was measured when it is not met;
a run without objectives gets one case that fails when nothing finished. A lost worker or
records the file could not hold are cases of their own, as they are exit codes. The suite's
properties carry the load and the key numbers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sagellm_users._report.load import load_text
from sagellm_users._report.model import LLMReport, SLOResult

__all__ = ["render_junit"]


def _measured(result: SLOResult) -> str:
    if result.value is None:
        return "nothing was measured"
    metric = result.slo.split("<")[0].split(">")[0]
    if metric == "error_rate":
        return f"measured {result.value:.2%}"
    if metric.endswith("throughput") or metric == "goodput":
        return f"measured {result.value:.4g}/s"
    return f"measured {result.value:.4g} ms"


def _case(suite: ET.Element, name: str, failure: str | None, classname: str) -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
    if failure is not None:
        ET.SubElement(case, "failure", message=failure, type="SLOFailed").text = failure


def render_junit(report: LLMReport) -> bytes:
    total = report.total
    suite = ET.Element(
        "testsuite",
        name="sagellm-locust",
        timestamp=(report.window.start or report.created).strftime("%Y-%m-%dT%H:%M:%S"),
        time=f"{report.window.seconds:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    pairs = {
        "host": report.run.host or "embedded mock server",
        "models": ", ".join(total.models),
        "requests": str(total.requests),
        "completed": str(total.completed),
        "failed": str(total.failed),
        "request_throughput": f"{total.request_throughput:.4g}",
        "output_throughput": f"{total.output_throughput:.4g}",
        "ttft_p99_ms": str(total.ttft_ms.percentiles.get("p99")),
        "itl_p99_ms": str(total.itl_ms.percentiles.get("p99")),
        "sagellm_locust": report.tool.version,
        "locust": report.tool.locust,
    }
    if report.run.load is not None:
        pairs["load"] = load_text(report.run.load)
    for name, value in pairs.items():
        ET.SubElement(properties, "property", name=name, value=value)
    for result in report.slos:
        failure = None
        if not result.passed:
            failure = f"{result.slo}: {_measured(result)}"
            if result.lost_early:
                failure += f" (stopped early: {result.lost_early})"
        _case(suite, result.slo, failure, "slo")
    if not report.slos:
        nothing = "no request finished: nothing was measured" if not total.completed else None
        _case(suite, "requests finished", nothing, "run")
    if report.lost_workers:
        lost = ", ".join(w.worker for w in report.lost_workers)
        _case(suite, "every worker reported", f"workers lost mid-run: {lost}", "run")
    if report.records_lost:
        _case(suite, "records file complete", f"{report.records_lost} records lost", "run")
    cases = suite.findall("testcase")
    failures = sum(1 for case in cases if case.find("failure") is not None)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    suites = ET.Element("testsuites", name="sagellm-locust", tests=str(len(cases)))
    suites.set("failures", str(failures))
    suites.append(suite)
    ET.indent(suites)
    body: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return body + b"\n"
