"""/llm/metrics: the run's numbers in Prometheus' format, read back with Prometheus' own
parser: every bucket is the exact count of samples at or below its bound."""

from __future__ import annotations

import random

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.distribution import EXACT_LIMIT, Distribution
from sagellm_users._metrics.exposition import HISTOGRAMS, LoadTestCollector, registry_for
from sagellm_users._metrics.record import RequestRecord


def _record(i: int, ttft: float, gaps: list[float], ok: bool = True) -> RequestRecord:
    t_out = [10.0 + ttft]
    for gap in gaps:
        t_out.append(t_out[-1] + gap)
    record = RequestRecord(
        request_id=i, user="ChatUser", backend="openai", api="chat", name="/v1/chat/completions",
        model="m", stream=True, wall_start=1e9 + i, t_start=10.0, t_send=10.0, t_out=t_out,
        t_done=t_out[-1], usage_completion_tokens=len(t_out), usage_prompt_tokens=9,
    )  # fmt: skip
    if not ok:
        record.status, record.error_class = "error", "HTTPStatusError 503"
    return record


def _scrape(collector: MetricsCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = registry_for(LoadTestCollector(lambda: collector, lambda: (4, 2, 1)))
    text = generate_latest(registry).decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def test_counters_and_histograms_are_the_runs_exact_counts() -> None:
    rng = random.Random(4)
    collector = MetricsCollector()
    # Three gaps a request: 900 in all, so every distribution is still exact.
    records = [
        _record(i, rng.uniform(0.005, 3.0), [rng.expovariate(1 / 0.02) for _ in range(3)])
        for i in range(300)
    ]
    records += [_record(300 + i, 0.1, [], ok=False) for i in range(3)]
    for record in records:
        collector.add(record)
    samples = _scrape(collector)
    labels = (("endpoint", "/v1/chat/completions"), ("user", "ChatUser"))
    ok = [r for r in records if r.ok]
    requests = samples["sagellm_client_requests_total"]
    assert {dict(k)["outcome"]: v for k, v in requests.items()} == {
        "ok": 300,
        "failed": 3,
        "cancelled": 0,
    }
    failures = samples["sagellm_client_failures_total"]
    assert {dict(k)["error"]: v for k, v in failures.items()} == {"HTTPStatusError 503": 3}
    assert samples["sagellm_client_output_tokens_total"][labels] == sum(r.output_tokens for r in ok)
    assert samples["sagellm_client_users"][()] == 4
    assert samples["sagellm_client_requests_in_flight"][()] == 2
    for attribute, name, _doc, bounds in HISTOGRAMS:
        if attribute == "itl":
            values = [gap for r in ok for gap in r.itl]
        else:
            values = [getattr(r, attribute) for r in ok]
        buckets = {dict(k)["le"]: v for k, v in samples[f"sagellm_client_{name}_bucket"].items()}
        for bound in bounds:
            assert buckets[repr(float(bound))] == sum(1 for v in values if v <= bound), name
        assert buckets["+Inf"] == len(values)
        assert samples[f"sagellm_client_{name}_count"][labels] == len(values)
        assert samples[f"sagellm_client_{name}_sum"][labels] == pytest.approx(sum(values))


def test_a_binned_distribution_counts_each_bin_where_it_reads() -> None:
    rng = random.Random(5)
    values = [rng.expovariate(1 / 0.05) for _ in range(EXACT_LIMIT + 5_000)]
    dist = Distribution(values)
    assert not dist.is_exact
    bounds = [0.001, 0.01, 0.05, 0.1, 0.5]
    got = dist.counts_at_or_below(bounds)
    for bound, count in zip(bounds, got, strict=True):
        exact = sum(1 for v in values if v <= bound)
        near = sum(1 for v in values if abs(v - bound) <= max(1e-3 * bound, 5e-5))
        assert abs(count - exact) <= near, bound
    assert got == sorted(got) and Distribution().counts_at_or_below(bounds) == [0] * 5
