"""In-process Locust runs against the mock server: timings, rows, records, failures."""

from __future__ import annotations

import gc
import statistics
from pathlib import Path

import gevent
import orjson
import pytest

from sagellm_users import OpenAIChatUser, OpenAICompletionsUser
from sagellm_users._users.frozen_heap import GEN1_THRESHOLD, GEN2_THRESHOLD
from sagellm_users.mock_server import MockServerProcess
from tests.conftest import MOCK_TBT_MS, MOCK_TTFT_MS
from tests.locust_harness import LocalRun, stats_row

CHAT = "/v1/chat/completions"


def test_chat_users_measure_the_mock_timing(mock_url: str, tmp_path: Path) -> None:
    records_path = tmp_path / "records.jsonl"
    run = LocalRun(
        [OpenAIChatUser],
        [
            "--host", mock_url, "--max-tokens", "20", "--ignore-eos",
            "--llm-records", str(records_path),
        ],
    )  # fmt: skip
    records = run.run_until(requests=24, users=4)

    assert all(r.status in ("ok", "cancelled") for r in records)
    ok = [r for r in records if r.ok]
    assert len(ok) >= 24
    assert all(r.output_tokens == 20 and r.output_tokens_source == "usage" for r in ok)
    assert all(r.model == "mock-llm" for r in ok), "model comes from /v1/models"
    ttfts = [r.ttft * 1e3 for r in ok if r.ttft is not None]
    itls = [gap * 1e3 for r in ok for gap in r.itl]
    assert statistics.median(ttfts) == pytest.approx(MOCK_TTFT_MS, abs=5)
    assert statistics.median(itls) == pytest.approx(MOCK_TBT_MS, abs=1.5)
    # Batched reads would show up as many near-zero gaps followed by long ones. (A rare short
    # gap is real: the mock keeps an absolute schedule and catches up after a late tick.)
    short = sum(gap < MOCK_TBT_MS * 0.4 for gap in itls)
    assert short / len(itls) < 0.05, f"{short} of {len(itls)} gaps near zero: batched events"
    assert all(len(r.itl) == 19 for r in ok)

    env = run.environment
    ttft_row = stats_row(env, "TTFT", CHAT)
    tbt_row = stats_row(env, "TBT", CHAT)
    e2e_row = stats_row(env, "E2E", CHAT)
    assert ttft_row.num_requests == tbt_row.num_requests == e2e_row.num_requests
    assert ttft_row.median_response_time == pytest.approx(MOCK_TTFT_MS, abs=6)
    assert tbt_row.avg_response_time == pytest.approx(MOCK_TBT_MS, abs=1.5)
    expected_e2e = MOCK_TTFT_MS + 19 * MOCK_TBT_MS
    assert e2e_row.avg_response_time == pytest.approx(expected_e2e, rel=0.15)
    assert env.stats.total.num_requests == e2e_row.num_requests, "TTFT/TBT stay out of Aggregated"

    lines = records_path.read_bytes().splitlines()
    assert len(lines) == len(records)
    first = orjson.loads(lines[0])
    assert first["output_tokens"] == 20 and len(first["out_ms"]) == 20
    assert first["ttft_ms"] == pytest.approx(first["out_ms"][0])
    assert str(first["response_id"]).startswith("chatcmpl-")
    assert len({r.response_id for r in ok}) == len(ok), "each record names its own response"

    # The runner measured itself while the load ran: loop lag, start lags, CPU.
    health = run.runtime.health
    assert list(health.processes) == ["local"]
    local = health.processes["local"]
    assert local.loop_lag.count > 0
    assert local.start_lag.count == sum(r.start_lag_s is not None for r in records) > 0
    assert all(r.start_lag_s is None or r.start_lag_s >= 0 for r in records)


def test_completions_and_no_stream(mock_url: str) -> None:
    run = LocalRun(
        [OpenAICompletionsUser], ["--host", mock_url, "--max-tokens", "5", "--no-stream"]
    )
    records = [r for r in run.run_until(requests=4, users=2) if r.ok]
    assert records and all(r.name == "/v1/completions" for r in records)
    for record in records:
        assert not record.stream
        assert len(record.t_out) == 1, "a non-streamed answer arrives as one piece"
        assert record.output_tokens == 5
        assert record.ttft == record.e2e
        assert record.tpot is None and record.tbt is None, "no per-token timing without a stream"
        expected = (MOCK_TTFT_MS + 4 * MOCK_TBT_MS) / 1e3
        assert record.e2e is not None and record.e2e >= expected * 0.9


def test_failures_are_classified_and_the_test_goes_on() -> None:
    with MockServerProcess(["--ttft-ms", "1", "--tbt-ms", "1", "--error-rate-429", "0.5"]) as mock:
        assert mock.url is not None
        run = LocalRun([OpenAIChatUser], ["--host", mock.url, "--max-tokens", "4"])
        records = run.run_until(requests=40, users=2)
    failed = [r for r in records if r.status == "error"]
    ok = [r for r in records if r.ok]
    assert failed and ok, "both outcomes occur at a 50% error rate"
    assert {r.error_class for r in failed} == {"HTTPStatusError"}
    assert all(r.http_status == 429 and "429" in (r.error_message or "") for r in failed)
    row = stats_row(run.environment, "E2E", CHAT)
    assert row.num_failures == len(failed)
    total = run.runtime.collector.total()
    assert total.failures["HTTPStatusError"] == len(failed)


def test_unreachable_host_is_a_connect_error(unused_port: int) -> None:
    run = LocalRun(
        [OpenAIChatUser],
        ["--host", f"http://127.0.0.1:{unused_port}", "--model", "m", "--connect-timeout", "2",
         "--skip-host-check"],
    )  # fmt: skip
    records = [r for r in run.run_until(requests=3, users=1) if r.status != "cancelled"]
    assert len(records) >= 2
    assert all(r.status == "error" and r.error_class == "ConnectError" for r in records)
    assert "refused" in (records[0].error_message or "").lower()


def test_continuous_usage_gives_tokens_per_chunk(mock_url: str) -> None:
    usage_every_chunk = (
        '{"stream_options": {"include_usage": true, "continuous_usage_stats": true}}'
    )
    run = LocalRun(
        [OpenAIChatUser],
        ["--host", mock_url, "--max-tokens", "6", "--extra-body", usage_every_chunk],
    )
    records = [r for r in run.run_until(requests=4, users=2) if r.ok]
    assert records
    for record in records:
        assert record.tokens_per_chunk == [1] * 6
        assert len(record.itl_per_token) == 5
    total = run.runtime.collector.total()
    assert total.itl_per_token.count == total.itl.count > 0


def test_request_warmup_is_excluded_from_the_report(mock_url: str, tmp_path: Path) -> None:
    records_path = tmp_path / "w.jsonl"
    run = LocalRun(
        [OpenAIChatUser],
        ["--host", mock_url, "--max-tokens", "3", "--warmup", "6req",
         "--llm-records", str(records_path)],
    )  # fmt: skip
    records = run.run_until(requests=20, users=2)
    warm = [r for r in records if r.warmup]
    measured = [r for r in records if not r.warmup]
    collector = run.runtime.collector
    finished = [r for r in records if r.status != "cancelled"]
    assert all(r.warmup for r in finished[:6]), "the first six finished requests warm up"
    assert collector.window_start is not None
    # Requests still in flight when the sixth finished were sent during warm-up too.
    assert all(r.wall_send < collector.window_start for r in warm[6:])
    total = collector.total()
    assert collector.excluded == len(warm)
    assert total.requests == len(measured)
    assert total.succeeded == sum(r.ok for r in measured)
    assert collector.window_start is not None
    assert all(r.wall_send >= collector.window_start for r in measured)
    lines = [orjson.loads(line) for line in records_path.read_bytes().splitlines()]
    assert sum(line["warmup"] for line in lines) == len(warm), "warm-up stays in the records"
    e2e_row = stats_row(run.environment, "E2E", CHAT)
    assert e2e_row.num_requests == sum(r.status != "cancelled" for r in records), (
        "Locust's live rows show everything"
    )
    health = run.runtime.health.processes["local"]
    assert health.start_lag.count == sum(r.start_lag_s is not None for r in measured), (
        "the client's own lag is judged over the measured requests only"
    )


def test_measure_after_spawn_waits_for_every_user(mock_url: str) -> None:
    run = LocalRun(
        [OpenAIChatUser], ["--host", mock_url, "--max-tokens", "3", "--measure-after-spawn"]
    )
    records = run.run_until(requests=10, users=3)
    collector = run.runtime.collector
    assert collector.window_start is not None
    measured = [r for r in records if not r.warmup]
    assert all(r.wall_send >= collector.window_start for r in measured)
    assert collector.total().requests == len(measured) > 0


def test_the_heap_is_frozen_while_users_run_and_thawed_after(mock_url: str) -> None:
    """Full GC walks of thousands of users' objects stall every stream (see plugin)."""
    before = gc.get_threshold()
    run = LocalRun([OpenAIChatUser], ["--host", mock_url, "--max-tokens", "4"])
    run.runner.start(2, spawn_rate=2)
    try:
        assert run.wait_for(2)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (before[0], GEN1_THRESHOLD, GEN2_THRESHOLD)
    finally:
        run.runner.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
    run.finish()


def test_the_health_probe_leaves_the_stopping_of_users_out(mock_url: str) -> None:
    """Stopping thousands of users blocks the loop for a while: the client's lag while
    the test ends is not lag of the test, and must not push the verdict over its limit."""
    import time as real_time  # gevent patches time.sleep; spin on the real clock instead

    run = LocalRun([OpenAIChatUser], ["--host", mock_url, "--max-tokens", "4"])
    lag = run.runtime.own_health.loop_lag
    during_stop: list[int] = []

    def block_then_yield(**_kw: object) -> None:
        before = lag.count
        end = real_time.perf_counter() + 0.06
        while real_time.perf_counter() < end:
            pass
        gevent.sleep(0.05)  # a probe still alive would wake now, 60 ms late
        during_stop.append(lag.count - before)

    # Registered after the plugin's own listener, so it runs once the probe was told to stop.
    run.environment.events.test_stopping.add_listener(block_then_yield)
    run.runner.start(1, spawn_rate=1)
    try:
        assert run.wait_for(2)
        assert lag.count > 0
    finally:
        run.finish()
    assert during_stop == [0]
    assert (lag.max or 0.0) < 0.06
