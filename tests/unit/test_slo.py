"""--slo parsing, goodput's per-request rule, and the verdicts in the report."""

from __future__ import annotations

import pytest

from sagellm_users._errors import ConfigError
from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._metrics.slo import SLO, good_request_rule, parse_slos
from sagellm_users._report import build_report

THROUGHPUT = SLO("output_throughput>=1000", "output_throughput", None, ">=", 1000.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ttft_p99<=500ms", SLO("ttft_p99<=500ms", "ttft_ms", "p99", "<=", 500.0)),
        ("tpot_p50 <= 0.05s", SLO("tpot_p50<=0.05s", "tpot_ms", "p50", "<=", 50.0)),
        ("E2E_MAX<2s", SLO("e2e_max<2s", "e2el_ms", "max", "<", 2000.0)),
        ("itl_p99.9<=30", SLO("itl_p99.9<=30", "itl_ms", "p99.9", "<=", 30.0)),
        ("error_rate<=1%", SLO("error_rate<=1%", "error_rate", None, "<=", 0.01)),
        ("error_rate<0.05", SLO("error_rate<0.05", "error_rate", None, "<", 0.05)),
        ("error_rate<=0", SLO("error_rate<=0", "error_rate", None, "<=", 0.0)),
        ("error_rate<=100%", SLO("error_rate<=100%", "error_rate", None, "<=", 1.0)),
        ("output_throughput>=1000", THROUGHPUT),
        ("goodput>2.5", SLO("goodput>2.5", "goodput", None, ">", 2.5)),
        ("ttst_p99<=80ms", SLO("ttst_p99<=80ms", "ttst_ms", "p99", "<=", 80.0)),
    ],
)  # fmt: skip
def test_parse_one_clause(text: str, expected: SLO) -> None:
    assert parse_slos(text) == (expected,)


def test_parse_several_and_empty() -> None:
    assert len(parse_slos("ttft_p99<=500ms, tpot_p50<=50ms,error_rate<=1%")) == 3
    assert parse_slos("") == ()
    assert parse_slos(" , ") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ttft<=500ms", "unknown metric"),
        ("ttft_p99=500", "cannot read"),
        ("latency_p99<=5", "unknown metric"),
        ("ttft_p99<=5%", "not %"),
        ("error_rate<=5ms", "fraction"),
        ("output_throughput>=5s", "no unit"),
        ("ttft_avg<=5", "unknown metric"),
        # A bare 1 reads as 100%: always met. Refused, with both ways to write 1%.
        ("error_rate<=1", r"a bare number is a fraction.*write 1% or 0\.01"),
        ("error_rate<5", r"write 5% or 0\.05"),
        ("error_rate<=150%", "at most 100%"),
    ],
)
def test_bad_clauses_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_slos(text)


def make(ttft: float, gap: float, i: int = 0, ok: bool = True) -> RequestRecord:
    t_out = [100.0 + ttft + gap * k for k in range(4)]
    return RequestRecord(
        request_id=i, user="U", backend="openai", api="chat", name="/v1/chat/completions",
        model="m", stream=True, wall_start=1e9 + i, t_start=100.0, t_send=100.0,
        t_out=t_out if ok else [], t_done=t_out[-1], usage_completion_tokens=4 if ok else None,
        status="ok" if ok else "error", error_class=None if ok else "E",
    )  # fmt: skip


def test_good_request_rule_uses_only_upper_bounds_on_timings() -> None:
    rule = good_request_rule(parse_slos("ttft_p99<=100ms,tpot_mean<20ms,output_throughput>=1"))
    assert rule is not None
    assert rule(make(0.050, 0.010))
    assert not rule(make(0.150, 0.010)), "TTFT over its bound"
    assert not rule(make(0.050, 0.030)), "TPOT over its bound"
    assert good_request_rule(parse_slos("error_rate<=1%,ttft_p99>=1ms")) is None


def test_time_to_second_token_is_an_objective_of_its_own() -> None:
    """A server that sends its first token at once and then stalls meets TTFT, not TTST."""
    rule = good_request_rule(parse_slos("ttft_p99<=100ms,ttst_p99<=100ms"))
    assert rule is not None
    assert rule(make(0.050, 0.010))
    assert not rule(make(0.050, 0.080)), "the second token 130 ms after the send"
    single = make(0.050, 0.010)
    single.t_out = single.t_out[:1]
    assert single.ttst is None and rule(single), "no second token: nothing to judge"
    collector = MetricsCollector()
    for i in range(10):
        collector.add(make(0.050, 0.020 + 0.001 * i, i))
    report = build_report(
        collector, percentiles=[50, 99], host=None, user_classes=[], options={}, warmup="",
        measure_after_spawn=False, slos=parse_slos("ttst_p99<=60ms"),
    )  # fmt: skip
    assert report.total.ttst_ms is not None
    assert report.total.ttst_ms.percentiles["p50"] == pytest.approx(74.5, abs=0.5)
    assert [v.passed for v in report.slos] == [False]


def test_report_judges_each_objective_and_counts_goodput() -> None:
    collector = MetricsCollector()
    slos = parse_slos("ttft_p99<=100ms,error_rate<=10%,goodput>=0.5,itl_p99.9<=15ms")
    collector.good_request = good_request_rule(slos)
    for i in range(8):
        collector.add(make(0.050 if i < 6 else 0.200, 0.010, i))
    collector.add(make(0.05, 0.01, 9, ok=False))
    report = build_report(
        collector, percentiles=[50.0], host=None, user_classes=["U"], options={},
        warmup="none", measure_after_spawn=False, slos=slos,
    )  # fmt: skip
    verdicts = {r.slo: r.passed for r in report.slos}
    assert verdicts == {
        "ttft_p99<=100ms": False,
        "error_rate<=10%": False,  # 1 of 9
        "goodput>=0.5": True,
        "itl_p99.9<=15ms": True,
    }
    assert not report.slos_passed
    assert report.total.good_requests == 6
    assert "p99.9" in report.total.itl_ms.percentiles, "SLO percentiles are always computed"
    assert report.vllm_fields()["request_goodput"] == report.total.request_goodput
