"""Request records, metric derivation per docs/metrics.md, distributions, collector, outputs."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest

from sagellm_users._errors import ConfigError
from sagellm_users._metrics import (
    Distribution,
    EndpointStats,
    MetricsCollector,
    RecordsWriter,
    RequestRecord,
    render_summary,
)
from tests.records import T0, WALL, make_record, steady_record

# -- RequestRecord derivation ------------------------------------------------------------------


def test_derived_metrics_follow_the_definitions() -> None:
    t_send = 10.0
    t_out = [10.100, 10.130, 10.150, 10.200]
    record = make_record(t_out, t_send=t_send, t_done=10.5, usage_completion=4)
    assert record.ttft == pytest.approx(0.100)
    assert record.itl == pytest.approx([0.030, 0.020, 0.050])
    assert record.tbt == pytest.approx(statistics.mean([0.030, 0.020, 0.050]))
    # E2E ends at the last output chunk, not at stream close (t_done).
    assert record.e2e == pytest.approx(0.200)
    assert record.tpot == pytest.approx((0.200 - 0.100) / (4 - 1))
    assert record.elapsed == pytest.approx(0.5)


def test_tpot_uses_the_usage_token_count_not_the_chunk_count() -> None:
    # Two chunks carrying 9 tokens in all (e.g. speculative decoding or batched deltas).
    record = make_record([1.1, 1.5], t_send=1.0, usage_completion=9)
    assert record.output_tokens == 9
    assert record.tpot == pytest.approx((0.5 - 0.1) / 8)
    assert record.itl == pytest.approx([0.4])
    assert record.tbt == pytest.approx(0.4)


@pytest.mark.parametrize("usage", [0, 1])
def test_tpot_is_none_when_at_most_one_output_token(usage: int) -> None:
    record = make_record([1.1], t_send=1.0, usage_completion=usage)
    assert record.tpot is None
    assert record.ttft == pytest.approx(0.1)
    assert record.e2e == pytest.approx(0.1)
    assert record.itl == []
    assert record.tbt is None


def test_tpot_is_none_for_a_single_estimated_chunk() -> None:
    record = make_record([1.1], t_send=1.0)
    assert record.output_tokens == 1
    assert record.tpot is None


def test_no_output_means_no_timing_metrics() -> None:
    record = make_record([], t_send=1.0, t_done=1.3, usage_completion=0)
    assert record.ttft is None
    assert record.e2e is None
    assert record.tbt is None
    assert record.tpot is None
    assert record.itl == []
    assert record.elapsed == pytest.approx(0.3)


def test_failure_before_send_has_no_timings() -> None:
    record = make_record(
        [], t_send=None, t_done=T0 + 0.01, status="error", error_class="ConnectError"
    )
    assert record.ttft is None
    assert record.e2e is None
    assert record.tpot is None
    assert record.elapsed == pytest.approx(0.01)
    assert not record.ok


def test_ten_ms_per_token_record_yields_ten_ms_itl() -> None:
    record = steady_record(n=20, ttft=0.08, gap=0.010, usage_completion=20)
    assert len(record.itl) == 19
    assert all(gap == pytest.approx(0.010, abs=1e-9) for gap in record.itl)
    assert record.tbt == pytest.approx(0.010)
    assert record.tpot == pytest.approx(0.010)
    assert record.ttft == pytest.approx(0.08)
    assert record.e2e == pytest.approx(0.08 + 19 * 0.010)


def test_token_counts_from_usage() -> None:
    record = make_record([1.1, 1.2], t_send=1.0, usage_completion=7, usage_prompt=33)
    assert record.output_tokens == 7
    assert record.output_tokens_source == "usage"
    assert record.input_tokens == 33
    assert record.input_tokens_source == "usage"


def test_token_counts_estimated_without_usage() -> None:
    record = make_record([1.1, 1.2, 1.3], t_send=1.0, prompt_chars=400)
    assert record.output_tokens == 3
    assert record.output_tokens_source == "estimate"
    assert record.input_tokens == 100
    assert record.input_tokens_source == "estimate"


def test_token_counts_from_tokens_per_chunk() -> None:
    record = make_record([1.1, 1.2, 1.3], t_send=1.0, tokens_per_chunk=[1, 3, 2])
    assert record.output_tokens == 6
    assert record.output_tokens_source != "usage"


def test_no_output_and_no_usage_has_source_none() -> None:
    record = make_record([], t_send=1.0)
    assert record.output_tokens == 0
    assert record.output_tokens_source == "none"


def test_usage_wins_over_tokens_per_chunk() -> None:
    record = make_record([1.1, 1.2], t_send=1.0, tokens_per_chunk=[2, 2], usage_completion=5)
    assert record.output_tokens == 5


def test_itl_per_token_divides_by_the_later_chunks_tokens() -> None:
    record = make_record([1.1, 1.14, 1.20, 1.21], t_send=1.0, tokens_per_chunk=[1, 4, 3, 1])
    assert record.itl == pytest.approx([0.04, 0.06, 0.01])
    assert record.itl_per_token == pytest.approx([0.04 / 4, 0.06 / 3, 0.01 / 1])


def test_itl_per_token_empty_without_counts_or_on_mismatch() -> None:
    assert make_record([1.1, 1.2], t_send=1.0).itl_per_token == []
    assert make_record([1.1, 1.2], t_send=1.0, tokens_per_chunk=[1]).itl_per_token == []


def test_itl_per_token_skips_chunks_without_tokens() -> None:
    record = make_record([1.1, 1.2, 1.3], t_send=1.0, tokens_per_chunk=[1, 0, 2])
    assert record.itl_per_token == pytest.approx([0.05])


def test_ok_property() -> None:
    assert make_record([1.1], t_send=1.0).ok
    assert not make_record([], status="cancelled").ok


# -- JSON form ---------------------------------------------------------------------------------


def _tokenized(record: RequestRecord, tokens: int) -> RequestRecord:
    record.counted_output_tokens = tokens
    return record


def test_a_tokenizer_count_stands_between_usage_and_the_chunks() -> None:
    """No usage: the tokenizer's count of the reply is the output (and TPOT's N), flagged."""
    record = _tokenized(steady_record(n=6, ttft=0.1, gap=0.02), 9)
    assert (record.output_tokens, record.output_tokens_source) == (9, "tokenizer")
    assert record.tpot == pytest.approx(0.1 / 8)
    record.usage_completion_tokens = 7
    assert (record.output_tokens, record.output_tokens_source) == (7, "usage")


def test_to_json_holds_millisecond_offsets_and_derived_metrics() -> None:
    record = steady_record(n=5, ttft=0.05, gap=0.01, usage_completion=5, usage_prompt=12)
    data = record.to_json()
    assert data["id"] == 1
    assert data["status"] == "ok"
    assert data["ttft_ms"] == pytest.approx(50.0)
    assert data["tbt_ms"] == pytest.approx(10.0)
    assert data["tpot_ms"] == pytest.approx(10.0)
    assert data["e2e_ms"] == pytest.approx(90.0)
    assert data["out_ms"] == pytest.approx([50.0, 60.0, 70.0, 80.0, 90.0])
    assert data["send_delay_ms"] == pytest.approx(2.0)
    assert data["connect_ms"] == pytest.approx(1.5)
    assert data["output_tokens"] == 5
    assert data["output_tokens_source"] == "usage"
    assert data["input_tokens"] == 12
    assert data["input_tokens_source"] == "usage"
    json.dumps(data)  # plain JSON types only


@pytest.mark.parametrize(
    "record",
    [
        steady_record(n=12, ttft=0.0731, gap=0.0123, usage_completion=12, usage_prompt=40),
        steady_record(n=3, ttft=0.2, gap=0.05, prompt_chars=90),
        make_record([1000.1, 1000.25, 1000.3], tokens_per_chunk=[1, 5, 2]),
        make_record([], status="error", error_class="ReadTimeout", error_message="no data"),
        make_record([], t_send=None, status="error", error_class="ConnectError"),
        make_record([1000.1], status="cancelled"),
        _tokenized(steady_record(n=6, ttft=0.1, gap=0.02), 9),
    ],
    ids=[
        "usage",
        "estimate",
        "tokens-per-chunk",
        "error",
        "error-before-send",
        "cancelled",
        "tokenizer",
    ],
)
def test_json_round_trip_preserves_metrics_and_counts(record: RequestRecord) -> None:
    data = json.loads(json.dumps(record.to_json()))
    copy = RequestRecord.from_json(data)
    for name in ("ttft", "e2e", "tpot", "tbt"):
        original, restored = getattr(record, name), getattr(copy, name)
        if original is None:
            assert restored is None, name
        else:
            assert restored == pytest.approx(original, abs=1e-6), name
    assert copy.itl == pytest.approx(record.itl, abs=1e-6)
    assert copy.itl_per_token == pytest.approx(record.itl_per_token, abs=1e-6)
    assert copy.elapsed == pytest.approx(record.elapsed, abs=1e-6)
    assert copy.output_tokens == record.output_tokens
    assert copy.output_tokens_source == record.output_tokens_source
    assert copy.input_tokens == record.input_tokens
    assert copy.input_tokens_source == record.input_tokens_source
    assert copy.tokens_per_chunk == record.tokens_per_chunk
    assert len(copy.t_out) == len(record.t_out)
    assert (copy.t_send is None) == (record.t_send is None)
    for name in ("request_id", "status", "name", "model", "error_class", "error_message"):
        assert getattr(copy, name) == getattr(record, name), name
    # Times are rebuilt on the wall clock (about 1.7e9 s), where a double resolves ~0.24 us.
    for key in ("ttft_ms", "e2e_ms", "tpot_ms", "tbt_ms"):
        again, first = copy.to_json()[key], record.to_json()[key]
        assert (again is None) == (first is None), key
        if first is not None:
            assert again == pytest.approx(first, abs=1e-3), key


# -- Distribution ------------------------------------------------------------------------------


def _linear_percentile(values: list[float], p: float) -> float:
    """numpy's default ('linear') percentile, written out by hand."""
    data = sorted(values)
    rank = (len(data) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def test_percentiles_by_hand() -> None:
    dist = Distribution([40.0, 10.0, 30.0, 20.0])
    assert dist.percentile(0) == 10.0
    assert dist.percentile(100) == 40.0
    assert dist.percentile(50) == pytest.approx(25.0)
    assert dist.percentile(25) == pytest.approx(17.5)
    assert dist.percentile(90) == pytest.approx(37.0)
    assert dist.percentile(99) == pytest.approx(39.7)


@pytest.mark.parametrize("size", [2, 3, 7, 100, 1001])
def test_percentiles_match_statistics_inclusive_quantiles(size: int) -> None:
    rng = random.Random(size)
    values = [rng.lognormvariate(-3, 0.8) for _ in range(size)]
    dist = Distribution(values)
    expected = statistics.quantiles(values, n=100, method="inclusive")
    for p in range(1, 100):
        assert dist.percentile(p) == pytest.approx(expected[p - 1], rel=1e-12), p
        assert dist.percentile(p) == pytest.approx(_linear_percentile(values, p), rel=1e-12)


def test_fractional_percentile() -> None:
    dist = Distribution(float(i) for i in range(1001))
    assert dist.percentile(99.9) == pytest.approx(999.0)
    assert dist.percentile(12.5) == pytest.approx(125.0)


def test_single_sample_is_every_percentile() -> None:
    dist = Distribution([0.25])
    assert all(dist.percentile(p) == 0.25 for p in (0, 1, 50, 99, 100))


def test_empty_distribution_returns_none() -> None:
    dist = Distribution()
    assert dist.count == 0
    assert dist.percentile(50) is None
    assert dist.mean is None
    assert dist.std is None
    assert dist.min is None
    assert dist.max is None
    assert dist.exact_samples() == []


@pytest.mark.parametrize("p", [-0.1, 100.1, 150, -5, math.nan])
def test_bad_percentile_raises(p: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        Distribution([1.0, 2.0]).percentile(p)
    with pytest.raises(ValueError):
        Distribution().percentile(p)


def test_summary_statistics() -> None:
    dist = Distribution([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert dist.count == 8
    assert dist.mean == pytest.approx(5.0)
    assert dist.std == pytest.approx(2.0)
    assert dist.min == 2.0
    assert dist.max == 9.0


def test_add_and_extend_after_a_percentile_query() -> None:
    dist = Distribution([5.0, 1.0])
    assert dist.percentile(100) == 5.0
    dist.add(10.0)
    dist.extend([0.0, 20.0])
    assert dist.percentile(100) == 20.0
    assert dist.percentile(0) == 0.0
    assert dist.percentile(50) == 5.0
    assert dist.mean == pytest.approx(36.0 / 5)


def test_merge_equals_concatenation() -> None:
    rng = random.Random(7)
    parts = [[rng.expovariate(50) for _ in range(rng.randint(0, 300))] for _ in range(5)]
    merged = Distribution()
    for part in parts:
        merged.merge(Distribution(part))
    together = Distribution([x for part in parts for x in part])
    assert merged.count == together.count
    assert merged.mean == pytest.approx(together.mean)
    assert sorted(merged.exact_samples() or []) == sorted(together.exact_samples() or [])
    for p in (0, 1, 10, 50, 90, 99, 99.9, 100):
        assert merged.percentile(p) == together.percentile(p)


def test_merge_leaves_the_other_unchanged_and_allows_self_merge() -> None:
    a, b = Distribution([1.0, 2.0]), Distribution([3.0])
    a.merge(b)
    assert b.exact_samples() == [3.0]
    a.merge(a)
    assert sorted(a.exact_samples() or []) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_clear() -> None:
    dist = Distribution([1.0, 2.0])
    dist.clear()
    assert dist.count == 0
    assert dist.mean is None
    dist.add(4.0)
    assert dist.percentile(50) == 4.0
    assert dist.mean == 4.0


# -- EndpointStats and MetricsCollector --------------------------------------------------------


def test_endpoint_stats_counts_outcomes() -> None:
    stats = EndpointStats()
    stats.add(steady_record(n=4, usage_completion=4, usage_prompt=10))
    stats.add(steady_record(n=6, usage_completion=6, usage_prompt=20))
    stats.add(make_record([], status="error", error_class="ReadTimeout", error_message="r1"))
    stats.add(make_record([], status="error", error_class="ReadTimeout", error_message="r2"))
    stats.add(make_record([], status="error", error_class="HTTPStatusError", error_message="500"))
    stats.add(make_record([], status="cancelled"))
    assert stats.requests == 6
    assert stats.succeeded == 2
    assert stats.failed == 3
    assert stats.cancelled == 1
    assert stats.failures == {"ReadTimeout": 2, "HTTPStatusError": 1}
    assert stats.failure_examples == {"ReadTimeout": "r1", "HTTPStatusError": "500"}
    assert stats.error_rate == pytest.approx(3 / 5)
    assert stats.total_input_tokens == 30
    assert stats.total_output_tokens == 10
    assert stats.input_tokens.mean == 15 and stats.output_tokens.percentile(100) == 6
    assert stats.output_tokens_estimated == 0


def test_endpoint_stats_distributions_hold_only_successes() -> None:
    stats = EndpointStats()
    stats.add(steady_record(n=4, ttft=0.05, gap=0.01, usage_completion=4))
    stats.add(steady_record(n=3, ttft=0.07, gap=0.02, usage_completion=3))
    stats.add(make_record([T0 + 0.5], status="error", error_class="StreamCutError"))
    assert stats.ttft.count == 2
    assert sorted(stats.ttft.exact_samples() or []) == pytest.approx([0.05, 0.07])
    assert stats.itl.count == 3 + 2  # one sample per gap, pooled across requests
    assert stats.tbt.count == 2
    assert stats.tpot.count == 2
    assert stats.e2e.count == 2
    assert stats.itl.mean == pytest.approx((3 * 0.01 + 2 * 0.02) / 5)


def test_endpoint_stats_itl_per_token() -> None:
    stats = EndpointStats()
    stats.add(make_record([T0 + 0.1, T0 + 0.14], tokens_per_chunk=[1, 4]))
    assert stats.itl_per_token.exact_samples() == pytest.approx([0.01])
    assert stats.total_output_tokens == 5
    assert stats.output_tokens_estimated == 1


def test_estimated_output_tokens_are_flagged() -> None:
    stats = EndpointStats()
    stats.add(steady_record(n=3))
    stats.add(steady_record(n=3, usage_completion=3))
    assert stats.output_tokens_estimated == 1


def test_unnamed_error_class() -> None:
    stats = EndpointStats()
    stats.add(make_record([], status="error"))
    assert stats.failures == {"Error": 1}
    assert stats.failure_examples == {"Error": ""}


def test_window_from_first_send_to_last_completion() -> None:
    stats = EndpointStats()
    assert stats.window == 0.0
    assert stats.error_rate == 0.0
    stats.add(make_record([10.2], t_send=10.0, t_done=10.4))
    stats.add(make_record([11.0], t_send=10.5, t_done=12.0))
    stats.add(make_record([], t_send=9.5, t_done=9.9, status="error", error_class="E"))
    # The window is on the wall clock: wall_start plus the perf_counter offsets.
    assert stats.first_send == pytest.approx(WALL + 9.5 - T0)
    assert stats.last_done == pytest.approx(WALL + 12.0 - T0)
    assert stats.window == pytest.approx(2.5)


def test_cancelled_requests_do_not_extend_the_window_or_the_error_rate() -> None:
    stats = EndpointStats()
    stats.add(make_record([10.2], t_send=10.0, t_done=10.4))
    stats.add(make_record([], t_send=10.1, t_done=99.0, status="cancelled"))
    assert stats.last_done == pytest.approx(WALL + 10.4 - T0)
    assert stats.error_rate == 0.0


def test_endpoint_stats_merge_equals_adding_everything() -> None:
    records = [
        steady_record(n=4, usage_completion=4, request_id=1),
        make_record([T0 + 0.2, T0 + 0.3], t_send=T0 - 1.0, request_id=2),
        make_record([], status="error", error_class="ReadTimeout", error_message="a"),
        make_record([], status="error", error_class="ConnectError", error_message="b"),
        make_record([], status="cancelled"),
        steady_record(n=8, ttft=0.3, gap=0.02, usage_completion=9, usage_prompt=5),
    ]
    whole = EndpointStats()
    for record in records:
        whole.add(record)
    left, right = EndpointStats(), EndpointStats()
    for i, record in enumerate(records):
        (left if i % 2 else right).add(record)
    left.merge(right)
    for name in (
        "requests",
        "succeeded",
        "failed",
        "cancelled",
        "failures",
        "total_input_tokens",
        "total_output_tokens",
        "output_tokens_estimated",
        "first_send",
        "last_done",
    ):
        assert getattr(left, name) == getattr(whole, name), name
    assert set(left.failure_examples) == set(whole.failure_examples)
    for name in ("ttft", "tbt", "itl", "tpot", "e2e", "itl_per_token", "output_tokens"):
        left_samples = sorted(getattr(left, name).exact_samples())
        assert left_samples == sorted(getattr(whole, name).exact_samples()), name
    assert left.window == whole.window
    assert left.error_rate == whole.error_rate


def test_merge_into_empty_stats() -> None:
    source = EndpointStats()
    source.add(steady_record(n=3))
    empty = EndpointStats()
    empty.merge(source)
    assert empty.first_send == source.first_send
    assert empty.last_done == source.last_done
    assert empty.succeeded == 1
    EndpointStats().merge(EndpointStats())  # both empty: no error


def test_collector_groups_by_name_in_first_seen_order() -> None:
    collector = MetricsCollector()
    collector.add(steady_record(name="/v1/completions"))
    collector.add(steady_record(name="/v1/chat/completions"))
    collector.add(steady_record(name="/v1/completions"))
    collector.add(make_record([], name="/v1/chat/completions", status="error", error_class="E"))
    by_name = collector.by_name
    assert list(by_name) == ["/v1/completions", "/v1/chat/completions"]
    assert by_name["/v1/completions"].succeeded == 2
    assert by_name["/v1/chat/completions"].failed == 1
    total = collector.total()
    assert total.requests == 4
    assert total.succeeded == 3
    assert total.failed == 1
    assert total.error_rate == pytest.approx(0.25)


def test_collector_by_name_is_a_copy_and_reset_clears() -> None:
    collector = MetricsCollector()
    collector.add(steady_record())
    collector.by_name.clear()
    assert len(collector.by_name) == 1
    collector.reset()
    assert collector.by_name == {}
    assert collector.total().requests == 0


# -- console summary ---------------------------------------------------------------------------


def test_summary_with_one_endpoint() -> None:
    collector = MetricsCollector()
    for _ in range(3):
        collector.add(steady_record(n=10, ttft=0.05, gap=0.01, usage_completion=10))
    collector.add(
        make_record([], status="error", error_class="ReadTimeout", error_message="no data for 5 s")
    )
    text = render_summary(collector.by_name, collector.total())
    lines = text.splitlines()
    assert lines[0].startswith("LLM summary: window ")
    assert "/v1/chat/completions" in lines
    assert "All" not in lines
    ttft_row = next(line for line in lines if line.strip().startswith("TTFT (ms)"))
    cells = ttft_row.split()
    assert cells[2] == "3"  # count
    assert cells[3] == "50.00"  # mean
    assert cells[-1] == "50.00"  # max
    for label in ("TBT (ms)", "ITL (ms)", "TPOT (ms)", "E2E (ms)"):
        assert any(line.strip().startswith(label) for line in lines), label
    header = next(line for line in lines if "count" in line)
    assert header.split() == ["count", "mean", "p50", "p90", "p99", "max"]
    assert "  failure ReadTimeout x1: no data for 5 s" in lines
    assert "requests 4  ok 3  failed 1" in text
    assert "error rate 25.00%" in text


def test_summary_with_several_endpoints_adds_all_block_and_notes() -> None:
    collector = MetricsCollector()
    collector.add(steady_record(name="/v1/chat/completions", usage_completion=10))
    collector.add(steady_record(name="/v1/completions"))  # no usage: estimated tokens
    collector.add(make_record([], name="/v1/completions", status="cancelled"))
    text = render_summary(collector.by_name, collector.total(), percentiles=(50, 99.9))
    lines = text.splitlines()
    assert "/v1/chat/completions" in lines
    assert "/v1/completions" in lines
    assert "All" in lines
    assert any("note: 1 requests had no usage" in line for line in lines)
    assert any("cancelled 1" in line for line in lines)
    header = next(line for line in lines if "count" in line)
    assert header.split() == ["count", "mean", "p50", "p99.9", "max"]


def test_summary_without_successes_has_no_latency_table() -> None:
    collector = MetricsCollector()
    collector.add(make_record([], status="error", error_class="ConnectError", error_message="x"))
    text = render_summary(collector.by_name, collector.total())
    assert "TTFT" not in text
    assert "  failure ConnectError x1: x" in text.splitlines()


def test_summary_without_requests() -> None:
    assert "no requests" in render_summary({}, EndpointStats())


# -- records file ------------------------------------------------------------------------------


def test_records_writer_flushes_one_line_per_record(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    writer = RecordsWriter(path)
    try:
        assert not path.exists()  # opened on the first write
        first = steady_record(n=3, usage_completion=3, request_id=1)
        writer.write(first)
        lines = path.read_bytes().splitlines()
        assert len(lines) == 1
        assert json.loads(lines[0]) == json.loads(json.dumps(first.to_json()))
        writer.write(make_record([], status="error", error_class="E", request_id=2))
        writer.write_json({"id": 3, "custom": True})
        lines = path.read_bytes().splitlines()
        assert [json.loads(line)["id"] for line in lines] == [1, 2, 3]
        assert path.read_bytes().endswith(b"\n")
        assert writer.written == 3
    finally:
        writer.close()
    writer.close()  # closing twice is harmless
    assert len(path.read_bytes().splitlines()) == 3


def test_records_writer_truncates_an_old_file_once_and_appends_after_a_close(
    tmp_path: Path,
) -> None:
    """A record arriving after the file was closed (a user stopped late) is appended:
    reopening must never truncate the lines already written."""
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"id": 0, "from": "a previous run"}\n')
    writer = RecordsWriter(path)
    writer.write(steady_record(request_id=1))
    writer.close()
    writer.write(steady_record(request_id=2))
    writer.close()
    assert [json.loads(line)["id"] for line in path.read_bytes().splitlines()] == [1, 2]
    assert writer.written == 2


def test_records_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    record = steady_record(n=6, ttft=0.0421, gap=0.0113, usage_completion=6)
    writer = RecordsWriter(str(path))
    writer.write(record)
    writer.close()
    copy = RequestRecord.from_json(json.loads(path.read_text()))
    assert copy.ttft == pytest.approx(record.ttft, abs=1e-6)
    assert copy.itl == pytest.approx(record.itl, abs=1e-6)


def test_records_writer_missing_directory_raises_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "records.jsonl"
    with pytest.raises(ConfigError, match="does not exist"):
        RecordsWriter(missing)
    assert not missing.parent.exists()


def test_records_writer_unwritable_path_raises_config_error(tmp_path: Path) -> None:
    target = tmp_path / "a-directory"
    target.mkdir()
    with pytest.raises(ConfigError, match="is a directory; give a file name in it"):
        RecordsWriter(target)  # the parent exists, but the path is a directory: refused at once


def test_records_writer_that_cannot_open_its_file_raises_config_error(tmp_path: Path) -> None:
    writer = RecordsWriter(tmp_path / "records.jsonl")
    (tmp_path / "records.jsonl").mkdir()  # taken by a directory after the options were checked
    with pytest.raises(ConfigError, match="cannot be written"):
        writer.open()  # at start: a clear error before load (a write later counts it lost)


def _asked(record: RequestRecord, **asked: object) -> RequestRecord:
    for key, value in asked.items():
        setattr(record, key, value)
    return record


def test_a_length_mismatch_names_what_was_asked_and_what_came() -> None:
    exact = _asked(steady_record(n=5, usage_completion=5), max_tokens=5, ignore_eos=True)
    assert exact.length_mismatch is None
    short = _asked(steady_record(n=3, usage_completion=3), max_tokens=5, ignore_eos=True)
    assert short.length_mismatch == "asked exactly 5 (ignore_eos), got 3"
    floor = _asked(steady_record(n=3), max_tokens=9, min_tokens=4)
    assert floor.length_mismatch == "asked at least 4 (min_tokens), got 3 (estimate)"
    failed = _asked(make_record([], status="error"), max_tokens=5, ignore_eos=True)
    assert failed.length_mismatch is None, "only answers are judged"
    again = RequestRecord.from_json(json.loads(json.dumps(short.to_json())))
    assert (again.max_tokens, again.ignore_eos, again.min_tokens) == (5, True, None)
    assert again.length_mismatch == short.length_mismatch


def test_length_mismatch_examples_are_few_and_survive_the_wire() -> None:
    """Every mismatch is counted; ten per endpoint are kept, also when workers merge."""
    stats = EndpointStats()
    for i in range(15):
        record = _asked(steady_record(n=2, usage_completion=2), max_tokens=4, ignore_eos=True)
        record.request_id = i
        stats.add(record)
    assert stats.length_mismatches == 15 and len(stats.length_mismatch_examples) == 10
    merged = EndpointStats()
    merged.merge_wire(json.loads(json.dumps(stats.to_wire())))
    merged.merge(stats)
    assert merged.length_mismatches == 30
    assert merged.length_mismatch_examples == stats.length_mismatch_examples
    assert merged.length_mismatch_examples[0] == "#0: asked exactly 4 (ignore_eos), got 2"
