"""Distribution's percentile contract: numpy's linear percentile of every sample, within
max(0.1%, 0.05 ms), exact while small, in fixed fine bins once large, merged across workers
and shipped through msgpack and JSON; bounded memory; lower-bound counts."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from itertools import pairwise

import msgpack
import orjson
import pytest

from sagellm_users._metrics.bins import COARSE
from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.distribution import EXACT_LIMIT, GAP_EXACT_LIMIT, Distribution
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._metrics.timeline import Bucket

PERCENTILES = (0, 0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100)


def linear_percentile(values: list[float], p: float, *, is_sorted: bool = False) -> float:
    """numpy.percentile(values, p) (method "linear"), written out: numpy is not a dependency."""
    data = values if is_sorted else sorted(values)
    rank = (len(data) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def tolerance(exact: float) -> float:
    """The contract: max(0.1% of the value, 0.05 ms), with values in seconds."""
    return max(1e-3 * abs(exact), 5e-5)


def reading(dist: Distribution, p: float) -> float:
    value = dist.percentile(p)
    assert value is not None
    return value


def assert_contract(dist: Distribution, values: list[float], label: str = "") -> None:
    """Every percentile within tolerance of exact, within [min, max], monotone in p."""
    data = sorted(values)
    assert dist.count == len(data)
    assert dist.min == data[0] and dist.max == data[-1]
    for p in [*PERCENTILES, *range(0, 101, 5)]:
        got = reading(dist, p)
        want = linear_percentile(data, p, is_sorted=True)
        assert abs(got - want) <= tolerance(want), (label, p, got, want)
    readings = [reading(dist, p / 10) for p in range(0, 1001)]
    assert readings == sorted(readings), f"{label}: monotone in p"
    assert data[0] <= min(readings) and max(readings) <= data[-1], label


def test_the_measured_defect_is_gone() -> None:
    """256 users, 3,840 requests: a 0.5% sketch printed one value for E2E p50..p99, below
    the mean, and 10.00 ms for every TBT percentile."""
    rng = random.Random(22)
    e2e = [2.5994 + rng.gammavariate(1.5, 0.0019) for _ in range(3840)]
    tbt = [0.01 + rng.gammavariate(2.0, 0.00002) for _ in range(3840)]
    for values in (e2e, tbt):
        dist = Distribution(values)
        got = [reading(dist, p) for p in (50, 90, 95, 99)]
        assert got == [
            pytest.approx(linear_percentile(values, p), rel=1e-12) for p in (50, 90, 95, 99)
        ]
        assert got == sorted(set(got)), "p50 < p90 < p95 < p99"
    e2e_dist = Distribution(e2e)
    assert reading(e2e_dist, 99) > (e2e_dist.mean or 0)


GENERATORS: dict[str, Callable[[random.Random], float]] = {
    "lognormal gaps": lambda r: r.lognormvariate(math.log(0.01), 0.6),
    "bimodal gaps": lambda r: r.choice((0.008, 0.09)) * r.uniform(0.9, 1.1),
    "e2e around 2.6 s": lambda r: 2.5994 + r.gammavariate(1.5, 0.0019),
    "uniform 0-2 s": lambda r: r.uniform(0.0, 2.0),
    "heavy tail": lambda r: r.paretovariate(1.2) * 0.01,
    "lag with zeros": lambda r: 0.0 if r.random() < 0.3 else r.expovariate(500),
    "token counts": lambda r: float(r.randint(1, 8192)),
    "negatives": lambda r: r.uniform(-3.0, 3.0) * r.choice((1e-3, 1.0)),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_binned_percentiles_keep_the_contract_after_a_merge_through_the_wire(name: str) -> None:
    rng = random.Random(name)
    values = [GENERATORS[name](rng) for _ in range(EXACT_LIMIT + 30_000)]
    single = Distribution(values)
    assert not single.is_exact
    assert_contract(single, values, name)
    # Seven workers of unequal size: some ship bins, some exact samples.
    cuts = [0, 70_000, 80_000, 86_000, 90_000, 93_000, 95_000, len(values)]
    merged = Distribution()
    for i, (start, end) in enumerate(pairwise(cuts)):
        wire = Distribution(values[start:end]).to_wire()
        shipped = msgpack.unpackb(msgpack.packb(wire)) if i % 2 else json.loads(json.dumps(wire))
        merged.merge(Distribution.from_wire(shipped))
    assert_contract(merged, values, name)
    for p in range(0, 1001):
        assert merged.percentile(p / 10) == single.percentile(p / 10), "bit for bit"


def test_the_same_samples_in_any_grouping_give_the_same_answers() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(-4, 0.4) for _ in range(EXACT_LIMIT + 5000)]
    one_by_one = Distribution()
    for value in values:
        one_by_one.add(value)
    batched = Distribution()
    for start in range(0, len(values), 256):
        batched.extend(values[start : start + 256])
    halves = Distribution(values[: len(values) // 2])
    halves.merge(Distribution(values[len(values) // 2 :]))
    want = one_by_one.to_wire()
    for other in (batched, halves, Distribution(values)):
        got = other.to_wire()
        assert got["bins"] == want["bins"]
        assert got["count"] == want["count"]
        assert got["min"] == want["min"] and got["max"] == want["max"]


def test_short_runs_are_bit_exact_and_fold_past_the_limit() -> None:
    values = [float(i) * 1e-3 for i in range(EXACT_LIMIT)]
    dist = Distribution(values)
    assert dist.exact_samples() == values
    for p in (1, 50, 99.9):
        assert dist.percentile(p) == linear_percentile(values, p)
    dist.add(1e3)
    assert not dist.is_exact, "one sample over the limit moves everything into bins"
    assert dist.exact_samples() is None
    assert dist.count == EXACT_LIMIT + 1


def test_merging_exact_parts_past_the_limit_folds_them() -> None:
    half = EXACT_LIMIT // 2 + 1
    a = Distribution(float(i) for i in range(half))
    b = Distribution(float(i) for i in range(half, 2 * half))
    a.merge(b)
    assert not a.is_exact and a.count == 2 * half
    want = linear_percentile([float(i) for i in range(2 * half)], 50)
    assert abs((a.percentile(50) or 0) - want) <= tolerance(want)


def test_a_binned_distribution_merges_with_itself() -> None:
    dist = Distribution(float(i % 100) for i in range(EXACT_LIMIT + 1))
    dist.merge(dist)
    assert dist.count == 2 * (EXACT_LIMIT + 1)
    assert sum(dist.bin_counts([0.0, 50.0, 100.0])) == dist.count


def test_whole_numbers_read_back_as_whole_numbers_once_binned() -> None:
    rng = random.Random(9)
    values = [float(rng.randint(1, 4096)) for _ in range(EXACT_LIMIT + 1000)]
    dist = Distribution(values)
    assert not dist.is_exact
    for p in (1, 10, 50, 90, 99):
        assert dist.percentile(p) == linear_percentile(values, p), p
    dist.add(0.5)
    assert dist.percentile(50) == pytest.approx(linear_percentile([*values, 0.5], 50), rel=2e-4)


def test_add_keys_a_sample_as_the_batch_does() -> None:
    values = [i * 1.7e-5 for i in range(4000)] + [0.049999999, 0.05, 0.0500001, 7.0, -0.2]
    added = Distribution([1.0] * (EXACT_LIMIT + 1))
    batched = Distribution([1.0] * (EXACT_LIMIT + 1))
    for value in values:
        added.add(value)
    batched.extend(values)
    assert added.to_wire()["bins"] == batched.to_wire()["bins"]


def test_memory_is_bounded_by_the_spread_not_the_count() -> None:
    rng = random.Random(1)
    dist = Distribution()
    for _ in range(4):
        dist.extend([rng.uniform(0.005, 0.030) for _ in range(EXACT_LIMIT + 1)])
        # 25 ms of spread in 10 us bins: at most 2,501, however many samples come.
        assert len(dist.to_wire()["bins"]["counts"]) <= 2501


def test_counts_above_and_below_are_exact_while_exact() -> None:
    """Binned they are lower bounds (tests/unit/test_early_stop.py holds them to that)."""
    rng = random.Random(7)
    values = [rng.expovariate(10) for _ in range(20_000)]
    dist = Distribution(values)
    for bound in (0.01, 0.05, 0.1, 0.3):
        above = sum(v > bound for v in values)
        below = sum(v < bound for v in values)
        assert (dist.count_above(bound), dist.count_below(bound)) == (above, below)
    assert dist.count_above(10.0) == 0 and dist.count_below(0.0) == 0
    assert dist.count_above(-1.0) == dist.count_below(10.0) == len(values)


def test_non_finite_samples_are_refused_and_change_nothing() -> None:
    dist = Distribution([1.0, 2.0])
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            dist.add(bad)
        with pytest.raises(ValueError, match="finite"):
            dist.extend([3.0, bad])
    assert dist.count == 2 and dist.exact_samples() == [1.0, 2.0]


@pytest.mark.parametrize("encode", [orjson.dumps, msgpack.packb], ids=["json", "msgpack"])
@pytest.mark.parametrize("size", [0, 10, EXACT_LIMIT + 5000])
def test_wire_form_round_trips(encode: Callable[[object], bytes], size: int) -> None:
    rng = random.Random(size)
    dist = Distribution(rng.expovariate(10) for _ in range(size))
    decode = orjson.loads if encode is orjson.dumps else msgpack.unpackb
    back = Distribution.from_wire(decode(encode(dist.to_wire())))
    assert back.count == dist.count
    assert back.is_exact == dist.is_exact
    for p in (0, 1, 50, 99, 99.9, 100):
        assert back.percentile(p) == dist.percentile(p)
    assert back.std == dist.std
    assert back.to_wire() == dist.to_wire()


def _record(request_id: int, user: str, ttft: float, gaps: list[float]) -> RequestRecord:
    t_send = 100.0
    t_out = [t_send + ttft]
    for gap in gaps:
        t_out.append(t_out[-1] + gap)
    return RequestRecord(
        request_id=request_id,
        user=user,
        backend="openai",
        api="chat",
        name="/v1/chat/completions",
        model="m",
        stream=True,
        wall_start=1_700_000_000.0 + request_id,
        t_start=t_send,
        t_send=t_send,
        t_out=t_out,
        t_done=t_out[-1],
        usage_completion_tokens=len(t_out),
        usage_prompt_tokens=7,
    )


def test_drained_worker_deltas_merge_to_the_single_process_result() -> None:
    rng = random.Random(5)
    records = [
        _record(i, rng.choice(("ChatUser", "OtherUser")), rng.uniform(0.02, 0.2),
                [rng.expovariate(100) for _ in range(rng.randint(1, 60))])
        for i in range(3000)
    ]  # fmt: skip
    single = MetricsCollector()
    for record in records:
        single.add(record)
    workers = [MetricsCollector() for _ in range(3)]
    master = MetricsCollector()
    for i, record in enumerate(records):
        workers[i % 3].add(record)
        if i % 250 == 0:  # reports at arbitrary points, as Locust's timer would
            for worker in workers:
                master.merge_wire(msgpack.unpackb(msgpack.packb(worker.drain())))
    for worker in workers:
        master.merge_wire(worker.drain())
        assert worker.total().requests == 0, "a drain empties the worker"

    assert set(master.by_key) == set(single.by_key)
    got, want = master.total(), single.total()
    assert (got.requests, got.succeeded, got.total_output_tokens) == (
        want.requests,
        want.succeeded,
        want.total_output_tokens,
    )
    assert got.first_send == want.first_send and got.last_done == want.last_done
    for name in ("ttft", "itl", "tbt", "tpot", "e2e", "output_tokens"):
        for p in (50, 90, 99, 99.9):
            assert getattr(got, name).percentile(p) == getattr(want, name).percentile(p)
    gaps = [gap for record in records for gap in record.itl]
    assert len(gaps) > EXACT_LIMIT and not got.itl.is_exact
    assert_contract(got.itl, gaps, "itl")


def test_gap_distributions_fold_early_and_their_limit_travels() -> None:
    gaps = Distribution.for_gaps()
    gaps.extend([0.01] * GAP_EXACT_LIMIT)
    assert gaps.exact_samples() == [0.01] * GAP_EXACT_LIMIT
    halves = [Distribution.from_wire(gaps.to_wire()) for _ in range(2)]
    halves[0].merge(halves[1])
    assert not halves[0].is_exact, "the limit came over the wire"
    gaps.add(0.02)
    assert not gaps.is_exact
    assert Bucket().itl.to_wire()["limit"] == GAP_EXACT_LIMIT
    assert Distribution().to_wire()["limit"] == EXACT_LIMIT


def test_a_worker_report_ships_per_request_values_exactly_and_gaps_in_bins() -> None:
    rng = random.Random(8)
    worker = MetricsCollector()
    for i in range(300):
        gaps = [rng.lognormvariate(math.log(0.01), 0.3) for _ in range(255)]
        worker.add(_record(i, "ChatUser", rng.uniform(0.05, 0.5), gaps))
    single = worker.total()
    assert single.ttft.is_exact and single.e2e.is_exact
    assert not single.itl.is_exact
    report = msgpack.packb(worker.drain())
    assert len(report) < 40_000, "76,500 raw gaps would be 690 KB"
    master = MetricsCollector()
    master.merge_wire(msgpack.unpackb(report))
    merged = master.total()
    for name in ("ttft", "e2e", "itl", "tbt"):
        for p in (0, 50, 90, 99, 99.9, 100):
            assert getattr(merged, name).percentile(p) == getattr(single, name).percentile(p)


def _parts(rng: random.Random) -> dict[str, Distribution]:
    """One distribution of each kind a worker ships: empty, exact, binned, whole numbers."""
    binned = Distribution.for_gaps()
    binned.extend([rng.expovariate(1 / 0.015) for _ in range(GAP_EXACT_LIMIT + 500)])
    return {
        "empty": Distribution(),
        "exact": Distribution(rng.uniform(0.05, 2.0) for _ in range(300)),
        "binned": binned,
        "integral": Distribution(float(rng.randint(1, 900)) for _ in range(EXACT_LIMIT + 10)),
    }


@pytest.mark.parametrize("into", ["empty", "exact", "binned", "integral"])
@pytest.mark.parametrize("incoming", ["empty", "exact", "binned", "integral"])
def test_merging_the_wire_form_equals_merging_what_it_decodes_to(into: str, incoming: str) -> None:
    """The master merges worker bins straight from the wire: the result must be, bit for
    bit, the one merging the decoded distribution gives (every mode meeting every mode)."""
    direct, decoded = _parts(random.Random(1))[into], _parts(random.Random(1))[into]
    wire = msgpack.unpackb(msgpack.packb(_parts(random.Random(2))[incoming].to_wire()))
    direct.merge_wire(wire)
    decoded.merge(Distribution.from_wire(wire))
    assert direct.to_wire() == decoded.to_wire()
    assert [direct.percentile(p) for p in PERCENTILES] == [
        decoded.percentile(p) for p in PERCENTILES
    ]


def test_a_damaged_wire_form_is_refused_before_anything_is_merged() -> None:
    dist = Distribution(float(i) for i in range(EXACT_LIMIT + 1))
    before = dist.to_wire()
    wire = Distribution.for_gaps()
    wire.extend([0.001 * i for i in range(GAP_EXACT_LIMIT + 1)])
    damaged = wire.to_wire()
    damaged["bins"]["counts"].pop()
    with pytest.raises(ValueError, match="bin keys but"):
        dist.merge_wire(damaged)
    assert dist.to_wire() == before


def test_coarse_grid_percentiles_keep_the_contract_and_never_merge_with_fine() -> None:
    """The timeline's gaps fold into the coarse grid: every percentile still within the
    tolerance of numpy's; the grid travels on the wire; grids never mix."""
    rng = random.Random(21)
    values = [rng.expovariate(1 / 0.015) for _ in range(20_000)] + [0.0] * 300
    parts = [Distribution.for_gaps(grid=COARSE) for _ in range(4)]
    for i, value in enumerate(values):
        parts[i % 4].add(value)
    merged = Distribution.for_gaps(grid=COARSE)
    for part in parts:
        merged.merge_wire(msgpack.unpackb(msgpack.packb(part.to_wire())))
    data = sorted(values)
    for p in PERCENTILES:
        want = linear_percentile(data, p, is_sorted=True)
        assert abs(reading(merged, p) - want) <= tolerance(want) * (1 + 1e-9), p
    assert merged.percentile(1) == 0.0, "zero gaps (events of one read) read as zero"
    assert merged.to_wire()["grid"] == "coarse"
    assert "grid" not in Distribution(values).to_wire(), "the fine grid's wire is unchanged"
    fine = Distribution.for_gaps()
    fine.extend(values)
    with pytest.raises(ValueError, match="coarse grid does not merge into one of the fine"):
        fine.merge(merged)
    with pytest.raises(ValueError, match="coarse grid does not merge"):
        fine.merge_wire(merged.to_wire())
    with pytest.raises(ValueError, match="unknown bin grid 'nano'"):
        Distribution.from_wire({**merged.to_wire(), "grid": "nano"})
