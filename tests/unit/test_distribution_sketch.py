"""The bounded-memory side of Distribution: exact -> sketch, merging, wire form, accuracy."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import msgpack
import orjson
import pytest

from sagellm_users.metrics.collector import MetricsCollector
from sagellm_users.metrics.distribution import (
    _KEY,
    BIN_LIMIT,
    EXACT_LIMIT,
    Distribution,
    batch_keys,
)
from sagellm_users.metrics.record import RequestRecord

PERCENTILES = (0, 0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100)


def exact_percentile(values: list[float], p: float) -> float:
    data = sorted(values)
    rank = (len(data) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def relative_error(estimate: float | None, exact: float) -> float:
    assert estimate is not None
    if exact == 0:
        return abs(estimate)
    return abs(estimate - exact) / abs(exact)


GENERATORS: dict[str, Callable[[random.Random], float]] = {
    "lognormal latency": lambda r: r.lognormvariate(math.log(0.05), 0.8),
    "bimodal": lambda r: r.choice((0.01, 0.4)) * r.uniform(0.95, 1.05),
    "uniform": lambda r: r.uniform(0.0, 2.0),
    "heavy tail": lambda r: r.paretovariate(1.5) * 0.01,
    "with zeros": lambda r: 0.0 if r.random() < 0.2 else r.expovariate(200),
    "token counts": lambda r: float(r.randint(1, 2048)),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_merged_parts_stay_within_one_percent_of_exact(name: str) -> None:
    rng = random.Random(name)
    values = [GENERATORS[name](rng) for _ in range(60_000)]
    parts = [values[i::5] for i in range(5)]
    merged = Distribution()
    for part in parts:
        merged.merge(Distribution.from_wire(Distribution(part).to_wire()))
    assert not merged.is_exact
    assert merged.count == len(values)
    assert merged.sum == pytest.approx(math.fsum(values), rel=1e-9)
    assert merged.min == min(values) and merged.max == max(values)
    for p in PERCENTILES:
        assert relative_error(merged.percentile(p), exact_percentile(values, p)) <= 0.01, p


def test_small_distributions_stay_exact() -> None:
    values = [float(i) for i in range(EXACT_LIMIT)]
    dist = Distribution(values)
    assert dist.exact_samples() == values
    assert dist.percentile(50) == exact_percentile(values, 50)
    dist.add(1e6)
    assert not dist.is_exact, "one sample over the limit moves everything into the sketch"
    assert dist.exact_samples() is None
    assert dist.count == EXACT_LIMIT + 1


def test_merging_exact_parts_past_the_limit_switches_to_the_sketch() -> None:
    half = EXACT_LIMIT // 2 + 1
    a = Distribution(float(i) for i in range(half))
    b = Distribution(float(i) for i in range(half, 2 * half))
    a.merge(b)
    assert not a.is_exact
    assert a.count == 2 * half
    assert relative_error(a.percentile(50), (2 * half - 1) / 2) <= 0.01


def test_memory_is_bounded_by_the_value_range_not_the_count() -> None:
    rng = random.Random(1)
    dist = Distribution()
    for _ in range(200_000):
        dist.add(rng.lognormvariate(0, 6))  # spans about 20 decades
    wire = dist.to_wire()
    assert len(wire["sketch"]["p"]) <= BIN_LIMIT
    assert dist.count == 200_000


def test_negative_values_survive_the_sketch() -> None:
    values = [float(v) for v in range(-3000, 3000)]
    dist = Distribution(values)
    for p in (1, 25, 50, 75, 99):
        expected = exact_percentile(values, p)
        assert abs((dist.percentile(p) or 0.0) - expected) <= max(0.01 * abs(expected), 0.51)


@pytest.mark.parametrize("encode", [orjson.dumps, msgpack.packb], ids=["json", "msgpack"])
@pytest.mark.parametrize("size", [0, 10, 5000])
def test_wire_form_round_trips(encode: Callable[[object], bytes], size: int) -> None:
    rng = random.Random(size)
    dist = Distribution(rng.expovariate(10) for _ in range(size))
    decode = orjson.loads if encode is orjson.dumps else msgpack.unpackb
    back = Distribution.from_wire(decode(encode(dist.to_wire())))
    assert back.count == dist.count
    assert back.is_exact == dist.is_exact
    for p in (0, 50, 99, 100):
        assert back.percentile(p) == dist.percentile(p)
    assert back.std == dist.std


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
            exact = getattr(want, name).percentile(p)
            assert relative_error(getattr(got, name).percentile(p), exact) <= 0.01, (name, p)


def test_batch_keys_are_the_sketch_mappings_keys() -> None:
    rng = random.Random(11)
    values = [10 ** rng.uniform(-9, 6) for _ in range(100_000)]
    values += [1e-3 * (1.01**i) for i in range(2000)]  # dense around bin edges
    assert batch_keys(values) == [_KEY(v) for v in values]
