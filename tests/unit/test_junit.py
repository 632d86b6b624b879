"""SLO verdicts as JUnit XML: one test case per objective, a failure that says what was
measured, the load and key numbers as properties; what CI test reporters read."""

from __future__ import annotations

from xml.etree import ElementTree

from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._metrics.slo import parse_slos
from sagellm_users._report import build_report
from sagellm_users._report.junit import render_junit
from sagellm_users._report.model import LLMReport, LoadInfo, LostWorker


def _report(slos: str, records: int = 20) -> LLMReport:
    collector = MetricsCollector()
    for i in range(records):
        t_out = [10.2 + 0.01 * k for k in range(5)]
        record = RequestRecord(
            request_id=i, user="U", backend="openai", api="chat", name="/v1/chat", model="m",
            stream=True, wall_start=1e9 + i, t_start=10.0, t_send=10.0, t_out=t_out,
            t_done=t_out[-1], usage_completion_tokens=5,
        )  # fmt: skip
        collector.add(record)
    return build_report(
        collector, percentiles=[50, 99], host="http://h:8000", user_classes=["U"],
        options={}, warmup="none", measure_after_spawn=False, slos=parse_slos(slos),
        load=LoadInfo(users=4, spawn_rate=2.0, max_tokens=5),
    )  # fmt: skip


def _suite(report: LLMReport) -> ElementTree.Element:
    root = ElementTree.fromstring(render_junit(report))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    return suite


def test_one_case_per_objective_and_a_failure_that_says_what_was_measured() -> None:
    suite = _suite(_report("ttft_p99<=500ms, e2el_p99<=10ms, error_rate<=1%"))
    cases = list(suite.iter("testcase"))
    assert [c.get("name") for c in cases] == ["ttft_p99<=500ms", "e2el_p99<=10ms", "error_rate<=1%"]
    failures = [c.find("failure") for c in cases]
    assert failures[0] is None and failures[2] is None
    assert failures[1] is not None
    assert failures[1].get("message", "").startswith("e2el_p99<=10ms: measured 2")
    assert failures[1].get("message", "").endswith(" ms")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["completed"] == "20" and properties["host"] == "http://h:8000"
    assert str(properties["load"]).startswith("4 users, spawn 2/s")


def test_a_run_without_objectives_fails_only_when_nothing_finished_or_a_worker_was_lost() -> None:
    ran = _suite(_report(""))
    assert [(c.get("name"), c.find("failure")) for c in ran.iter("testcase")] == [
        ("requests finished", None)
    ]
    empty = _report("", records=0)
    assert _suite(empty).find("testcase/failure") is not None
    lost = _report("")
    lost.lost_workers = [LostWorker(worker="w-1", lost_at=lost.created, last_report_at=None)]
    failure = _suite(lost).find("testcase[@name='every worker reported']/failure")
    assert failure is not None and "w-1" in failure.get("message", "")
