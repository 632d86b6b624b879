"""The master's CPU per merged worker report, and how many workers one master holds.

Each worker sends the master one report every 3 s (Locust's interval): what it measured
in those 3 s, exact distributions included. The master decodes it (Locust's msgpack),
reads it (:class:`WorkerReport`) and merges it into the run's numbers. This builds real
reports from synthetic requests at a given load per worker, then measures the master's
CPU time per report over many merges into one master (its numbers growing as in a long
run), and derives the workers one master holds at half a core:
``0.5 core * 3 s / CPU per report``.

    python bench/wire_bench.py [--reports 300]
"""

from __future__ import annotations

import argparse
import random
import time

from locust.env import Environment
from locust.event import Events
from locust.rpc.protocol import Message

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics import RequestRecord
from sagellm_users._users.options import LLMOptions
from sagellm_users._users.runtime import LLMRuntime
from sagellm_users._users.worker_wire import WIRE_KEY, Merger, WorkerReport, collect

REPORT_INTERVAL_S = 3.0
"""Locust's worker report interval (locust.runners.WORKER_REPORT_INTERVAL)."""
MASTER_SHARE = 0.5
"""The CPU the master may spend merging: half a core."""
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


def _merge_cost(payloads: list[bytes], reports: int) -> tuple[float, float]:
    """CPU seconds per report (decode, read, merge) over ``reports`` merges into one
    master, and the payload's mean size."""
    master = _runtime()
    merger = Merger(master)
    for payload in payloads[:5]:  # warm up: the master's numbers exist before timing
        message = Message.unserialize(payload)  # type: ignore[no-untyped-call]
        merger.merge(message.node_id, WorkerReport.from_wire(message.data[WIRE_KEY]))
    start = time.process_time()
    for i in range(reports):
        message = Message.unserialize(payloads[i % len(payloads)])  # type: ignore[no-untyped-call]
        merger.merge(message.node_id, WorkerReport.from_wire(message.data[WIRE_KEY]))
    spent = time.process_time() - start
    return spent / reports, sum(map(len, payloads)) / len(payloads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=300, help="merges timed per load")
    args = parser.parse_args()
    print(f"{'worker load':<36} {'report':>9} {'CPU/report':>11} {'workers/master':>15}")
    for name, rate, tokens in LOADS:
        payloads = [_worker_report(rate, tokens, seed) for seed in range(8)]
        per_report, size = _merge_cost(payloads, args.reports)
        workers = MASTER_SHARE * REPORT_INTERVAL_S / per_report
        print(f"{name:<36} {size / 1024:>7.1f}KiB {per_report * 1e3:>9.2f}ms {workers:>15,.0f}")
    print(
        f"workers/master: how many workers' reports one master merges every "
        f"{REPORT_INTERVAL_S:g} s on {MASTER_SHARE:g} of a core"
    )


if __name__ == "__main__":
    main()
