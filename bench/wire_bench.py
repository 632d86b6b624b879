"""The master's CPU per merged worker report, and how many workers one master holds.

Each worker sends the master one report every 3 s (Locust's interval): what it measured
in those 3 s, exact distributions included. The master decodes it (Locust's msgpack),
reads it (:class:`WorkerReport`), merges its token timeline and gathers its finished
requests into a batch, which it folds into the run's, live and stage numbers once a
second (see sagellm_users._metrics.batch). This builds real reports from synthetic
requests at a given load per worker, then measures the master's CPU time per report over
many merges into one master (its numbers growing as in a long run) and per settle, and
derives the workers one master holds at half a core:
``(0.5 core - CPU per settle) * 3 s / CPU per report``.

    python bench/wire_bench.py [--reports 300]
"""

from __future__ import annotations

import argparse
import math
import random
import time

from locust.env import Environment
from locust.event import Events
from locust.rpc.protocol import Message

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics import MetricsCollector, RequestRecord
from sagellm_users._users.options import LLMOptions
from sagellm_users._users.runtime import LLMRuntime
from sagellm_users._users.worker_wire import WIRE_KEY, Merger, WorkerReport, collect

REPORT_INTERVAL_S = 3.0
"""Locust's worker report interval (locust.runners.WORKER_REPORT_INTERVAL)."""
MASTER_SHARE = 0.5
"""The CPU the master may spend merging: half a core."""
SETTLE_EVERY = 50
"""Reports gathered per timed settle (a master settles once a second whatever the count:
its batch's bins are the union of the workers', which stops growing after a few)."""
LOADS = (
    ("light: 5 req/s, 64 tokens each", 5.0, 64),
    ("busy: 50 req/s, 128 tokens each", 50.0, 128),
    ("heavy: 200 req/s, 256 tokens each", 200.0, 256),
)


def _runtime() -> LLMRuntime:
    events = Events()  # type: ignore[no-untyped-call]
    environment = Environment(user_classes=[OpenAIChatUser], events=events)
    runtime = LLMRuntime(environment, LLMOptions())
    runtime.live = True  # the master with a web UI merges into the live view too
    return runtime


def _worker_report(rate: float, tokens: int, seed: int) -> bytes:
    """One worker's 3 s at ``rate`` requests/s of ``tokens`` tokens, as Locust sends it."""
    rng = random.Random(seed)
    runtime = _runtime()
    now = time.perf_counter()
    for i in range(round(rate * REPORT_INTERVAL_S)):
        t = now + rng.uniform(0, REPORT_INTERVAL_S)
        send = t
        t += rng.uniform(0.02, 0.2)
        t_out = []
        for _ in range(tokens):
            t_out.append(t)
            t += rng.expovariate(1 / 0.015)
        record = RequestRecord(
            request_id=i, user="OpenAIChatUser", backend="openai", api="chat",
            name="/v1/chat/completions", model="m", stream=True, wall_start=1.7e9 + send,
            t_start=send, t_send=send, t_out=t_out, t_done=t, prompt_chars=400,
            usage_prompt_tokens=100, usage_completion_tokens=tokens, finish_reason="length",
        )  # fmt: skip
        runtime.collector.add(record)
        runtime.timeline.add(record)
    report = collect(runtime)
    data = {WIRE_KEY: report.to_wire(), "user_count": 8}
    message = Message("stats", data, f"w{seed}")  # type: ignore[no-untyped-call]
    payload: bytes = message.serialize()  # type: ignore[no-untyped-call]
    return payload


def _merge_cost(payloads: list[bytes], reports: int) -> tuple[float, float, float]:
    """CPU seconds per report (decode, read, gather, timeline) over ``reports`` merges into
    one master, CPU seconds per settle (the gathered reports folded into the run's, live
    and stage numbers, which a master does once a second), and the payload's mean size."""
    master = _runtime()
    master.stage = MetricsCollector()  # a sweep's stage measuring too: the heaviest case
    merger = Merger(master)
    for payload in payloads[:5]:  # warm up: the master's numbers exist before timing
        message = Message.unserialize(payload)  # type: ignore[no-untyped-call]
        merger.merge(message.node_id, WorkerReport.from_wire(message.data[WIRE_KEY]))
    master.settle()
    batch = master._batch
    batch.max_age = math.inf  # settles are timed on their own, below
    merge_s = settle_s = 0.0
    settles = 0
    for i in range(reports):
        start = time.process_time()
        message = Message.unserialize(payloads[i % len(payloads)])  # type: ignore[no-untyped-call]
        merger.merge(message.node_id, WorkerReport.from_wire(message.data[WIRE_KEY]))
        merge_s += time.process_time() - start
        if (i + 1) % SETTLE_EVERY == 0:
            start = time.process_time()
            master.settle()
            settle_s += time.process_time() - start
            settles += 1
    return merge_s / reports, settle_s / max(settles, 1), sum(map(len, payloads)) / len(payloads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=300, help="merges timed per load")
    args = parser.parse_args()
    print(
        f"{'worker load':<36} {'report':>9} {'CPU/report':>11} {'CPU/settle':>11} "
        f"{'workers/master':>15}"
    )
    for name, rate, tokens in LOADS:
        payloads = [_worker_report(rate, tokens, seed) for seed in range(8)]
        per_report, per_settle, size = _merge_cost(payloads, args.reports)
        # Each second: one settle, and the reports of workers / 3 s workers.
        workers = (MASTER_SHARE - per_settle) * REPORT_INTERVAL_S / per_report
        print(
            f"{name:<36} {size / 1024:>7.1f}KiB {per_report * 1e3:>9.2f}ms "
            f"{per_settle * 1e3:>9.2f}ms {workers:>15,.0f}"
        )
    print(
        f"workers/master: how many workers' reports one master merges every "
        f"{REPORT_INTERVAL_S:g} s, with one settle a second, on {MASTER_SHARE:g} of a core "
        "(web UI open and a sweep stage measuring)"
    )


if __name__ == "__main__":
    main()
