"""run_load_test: a whole test from Python, returning the report model."""

from __future__ import annotations

import pytest

from sagellm_users import ConfigError, LLMOptions, OpenAIChatUser, run_load_test


def test_run_load_test_against_the_embedded_mock() -> None:
    report = run_load_test(
        [OpenAIChatUser],
        users=2,
        run_time=1.5,
        options=["--max-tokens", "4", "--slo", "ttft_p99<=2s", "--mock-args", "--ttft-ms 20"],
    )
    assert report.run.host is not None and report.run.host.startswith("http://127.0.0.1:")
    assert report.total.completed > 0
    assert report.total.total_output_tokens == 4 * report.total.completed
    assert report.total.ttft_ms.median == pytest.approx(20, abs=8)
    assert report.slos and report.slos_passed


def test_run_load_test_against_a_given_host(mock_url: str) -> None:
    report = run_load_test(
        [OpenAIChatUser], host=mock_url, users=1, run_time=1.0, options=["--max-tokens", "4"]
    )
    assert report.run.host == mock_url
    assert report.total.completed > 0


def test_run_load_test_takes_the_options_model(mock_url: str) -> None:
    options = LLMOptions(max_tokens=3, slo="ttft_p99<=2s", headers={"X-Tenant": "a"})
    report = run_load_test([OpenAIChatUser], host=mock_url, users=1, run_time=1.0, options=options)
    assert report.total.completed > 0
    assert report.total.total_output_tokens == 3 * report.total.completed
    assert report.run.options["max_tokens"] == 3 and report.run.options["header_names"] == [
        "X-Tenant"
    ]
    assert [slo.slo for slo in report.slos] == ["ttft_p99<=2s"]


def test_run_load_test_rejects_bad_options_before_load() -> None:
    with pytest.raises(ConfigError):
        run_load_test([OpenAIChatUser], options=["--max-tokens", "-1"], run_time=1)
    with pytest.raises(ConfigError):
        run_load_test([OpenAIChatUser], options=["--no-such-option"], run_time=1)


def test_run_load_test_stops_early_when_an_slo_is_lost() -> None:
    """All TTFTs are 50 ms: a 1 ms max is lost with the first request, long before 60 s."""
    report = run_load_test(
        [OpenAIChatUser],
        users=2,
        run_time=60,
        options=[
            *("--max-tokens", "4", "--slo", "ttft_max<=1ms,error_rate<=1%"),
            *("--slo-early-stop", "--mock-args", "--ttft-ms 50"),
        ],
    )
    assert report.early_stop is not None
    assert list(report.early_stop.objectives) == ["ttft_max<=1ms"]
    assert report.window.seconds < 30, "stopped at the first check, not at --run-time"
    lost, kept = report.slos
    assert not lost.passed and lost.lost_early and kept.passed and kept.lost_early is None


def test_run_load_test_runs_to_the_end_while_slos_can_still_be_met() -> None:
    report = run_load_test(
        [OpenAIChatUser],
        users=2,
        run_time=2.5,
        options=["--max-tokens", "4", "--slo", "ttft_p50<=1ms", "--slo-early-stop"],
    )
    # p50 of 50 ms TTFTs fails at the end, but with 2.5 s to go the first checks cannot
    # know: twice the traffic so far, all instant, would bring p50 under 1 ms.
    assert report.window.seconds > 1.5
    assert not report.slos_passed
