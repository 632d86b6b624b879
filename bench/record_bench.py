"""What recording one finished request costs, and how exact the merge across workers is.

    .venv/bin/python bench/record_bench.py                 # 256-token streamed requests
    .venv/bin/python bench/record_bench.py --tokens 16     # short requests

Part 1 times each step of ``LLMRuntime.submit`` for a request of N output chunks, with
every recording feature on: the collector (distributions for TTFT, ITL, TBT, TPOT, E2E and
token counts), the timeline (its time bucket's TTFT, ITL, TPOT and E2E), the JSONL records
file, and Locust's request events (E2E, TTFT and TBT rows in the stats of a real local
runner). Printed as microseconds per request and per token,
and as a share of what reading one streamed event costs the client (``--event-us``, from
``bench/stream_bench.py``).

Part 2 splits the same traffic among K simulated workers, ships each part through the wire
form the workers send to the master (msgpack-able dicts), merges them, and prints the worst
relative error of every percentile against exact percentiles over all samples, plus counts.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from locust import User
from locust.env import Environment
from locust.event import Events

from sagellm_users._metrics import MetricsCollector, RecordsWriter, RequestRecord
from sagellm_users._metrics.timeline import Timeline

PERCENTILES = (1, 10, 50, 90, 95, 99, 99.9)


def make_records(n: int, tokens: int, seed: int) -> list[RequestRecord]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        t0 = 1000.0 + i
        ttft = rng.lognormvariate(math.log(0.05), 0.5)
        t = t0 + ttft
        t_out = [t]
        for _ in range(tokens - 1):
            t += rng.lognormvariate(math.log(0.01), 0.3)
            t_out.append(t)
        records.append(
            RequestRecord(
                request_id=i,
                user="ChatUser",
                backend="openai",
                api="chat",
                name="/v1/chat/completions",
                model="m",
                stream=True,
                wall_start=1.7e9 + i,
                t_start=t0,
                t_send=t0,
                t_out=t_out,
                t_done=t + 0.0001,
                prompt_chars=120,
                usage_prompt_tokens=30,
                usage_completion_tokens=tokens,
                finish_reason="length",
            )
        )
    return records


def best_of(runs: int, fn: Callable[[], None]) -> float:
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def recording_costs(records: list[RequestRecord], tokens: int, event_us: float) -> None:
    class ChatUser(User):
        pass

    env = Environment(user_classes=[ChatUser], events=Events())
    env.create_local_runner()  # its listener feeds Locust's stats, as in a real run
    fire = env.events.request.fire
    tmp = Path(tempfile.mkdtemp())

    def collect() -> None:
        collector = MetricsCollector()
        for record in records:
            collector.add(record)

    def timeline() -> None:
        # Records here start a second apart: 100-second buckets hold 100 requests each,
        # as one-second buckets do at 100 requests/s.
        line = Timeline(width=100.0)
        for record in records:
            line.add(record)

    def write_file() -> None:
        writer = RecordsWriter(tmp / "records.jsonl")
        for record in records:
            writer.write(record)
        writer.close()

    def locust_rows() -> None:
        for record in records:
            for row, seconds in (("E2E", record.e2e), ("TTFT", record.ttft), ("TBT", record.tbt)):
                assert seconds is not None
                fire(
                    request_type=row,
                    name=record.name,
                    response_time=seconds * 1e3,
                    response_length=0,
                    exception=None,
                    context={},
                )

    n = len(records)
    rows = [
        ("collector: every distribution", best_of(3, collect)),
        ("timeline: its bucket's distributions", best_of(3, timeline)),
        ("records file: one JSON line, flushed", best_of(3, write_file)),
        ("Locust request events: E2E/TTFT/TBT", best_of(3, locust_rows)),
    ]
    rows.append(("all recording", sum(seconds for _, seconds in rows)))
    print(f"{n} requests x {tokens} output chunks; best of 3")
    print(f"{'step':40} {'us/request':>10} {'us/token':>9} {'of ingest':>9}")
    for label, seconds in rows:
        per = seconds / n * 1e6
        share = per / tokens / event_us
        print(f"{label:40} {per:10.1f} {per / tokens:9.3f} {share:9.1%}")


def merge_accuracy(records: list[RequestRecord], workers: int) -> None:
    parts = [MetricsCollector() for _ in range(workers)]
    for i, record in enumerate(records):
        parts[i % workers].add(record)
    master = MetricsCollector()
    for part in parts:
        master.merge_wire(part.drain())
    merged = master.total()
    print(f"\nmerge of {workers} workers over {len(records)} requests: counts and worst error")
    for metric in ("ttft", "itl", "tpot", "e2e"):
        values = sorted(
            v for r in records for v in ([getattr(r, metric)] if metric != "itl" else r.itl)
        )
        dist = getattr(merged, metric)
        worst = max(abs(dist.percentile(p) / exact(values, p) - 1) for p in PERCENTILES)
        same = "equal" if dist.count == len(values) else f"{dist.count} != {len(values)}"
        print(f"  {metric:5} samples {len(values):>9} ({same})  worst percentile error {worst:.3%}")


def exact(sorted_values: list[float], p: float) -> float:
    rank = (len(sorted_values) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--event-us",
        type=float,
        default=27.0,
        help="client CPU per streamed event, to compare with (27 us = 2.7 CPU-s per 100k)",
    )
    args = parser.parse_args()
    records = make_records(args.requests, args.tokens, seed=1)
    recording_costs(records, args.tokens, args.event_us)
    merge_accuracy(records, args.workers)


if __name__ == "__main__":
    main()
