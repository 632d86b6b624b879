"""Workload accuracy: open-loop rates as asked, prompts as long as asked, side by side.

    .venv/bin/python bench/workload_bench.py
    .venv/bin/python bench/workload_bench.py --tokenizer /path/to/model-dir --seconds 20

1. Open loop. The real ``locust`` command with ``locustfiles/chat.py`` runs each arrival
   process (gamma with burstiness 0.5) at each rate against the embedded mock (fast: 5 ms
   TTFT, 8 output tokens) with enough users for the rate, and its JSON report gives the
   rate the schedule drew, the rate achieved, and the start lag. ``ach/target`` compares
   with the rate asked (for Poisson and gamma it includes the sample's own randomness,
   about 1/sqrt(requests)); ``ach/drawn`` with the schedule's own sample: how well the
   client kept it.
2. Exact lengths. The same command with ``locustfiles/completions.py`` and
   ``--input-tokens MIN:MAX`` counts prompts with the mock's ``/tokenize``; the records
   file gives each request's length as built and as the server counted it in ``usage``.
3. With ``--tokenizer``, the time one exact-length prompt takes to build with that
   tokenizer, per prompt length.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sagellm_users._workloads import PromptSynthesizer, load_tokenizer  # noqa: E402

MOCK = "--ttft-ms 5 --tbt-ms 1"


def locust(args: list[str], timeout: float) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, "-m", "locust", "--headless", "--only-summary", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"locust failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def open_loop(kind: str, rate: float, seconds: float, out: Path) -> dict[str, Any]:
    users = max(8, int(rate * 0.05) + 8)  # ~14 ms a request: several times the need
    report = out / f"open-{kind}-{rate:g}.json"
    locust(
        [
            *("-f", "locustfiles/chat.py", "-u", str(users), "-r", str(users)),
            *("-t", f"{seconds:g}s", "--stop-timeout", "5", "--mock-args", MOCK),
            *("--input-tokens", "32", "--max-tokens", "8", "--ignore-eos"),
            *("--request-rate", f"{rate:g}", "--arrival", kind, "--seed", "1"),
            *("--burstiness", "0.5"),
            *("--llm-report", str(report)),
        ],
        timeout=seconds + 60,
    )
    arrivals: dict[str, Any] = orjson.loads(report.read_bytes())["arrivals"]
    return arrivals


def exact_lengths(seconds: float, out: Path) -> tuple[int, int, int]:
    records = out / "lengths.jsonl"
    locust(
        [
            *("-f", "locustfiles/completions.py", "-u", "8", "-r", "8", "-t", f"{seconds:g}s"),
            *("--mock-args", MOCK, "--input-tokens", "16:1024", "--max-tokens", "2"),
            *("--llm-records", str(records)),
        ],
        timeout=seconds + 60,
    )
    rows = [orjson.loads(line) for line in records.read_bytes().splitlines()]
    ok = [r for r in rows if r["status"] == "ok"]
    exact = sum(
        r["input_tokens_source"] == "usage" and r["input_tokens"] == r["prompt_tokens"] for r in ok
    )
    lengths = {r["input_tokens"] for r in ok}
    return len(ok), exact, len(lengths)


def synthesis(tokenizer: str) -> list[tuple[int, float]]:
    counter = load_tokenizer(tokenizer)
    synth = PromptSynthesizer(counter, random.Random(1))
    out = []
    for n in (128, 512, 2048, 8192):
        synth.make(n)  # learns the word costs
        calls = 50
        start = time.perf_counter()
        prompts = [synth.make(n) for _ in range(calls)]
        elapsed = time.perf_counter() - start
        assert all(p.exact and counter.count(p.text) == n for p in prompts)
        out.append((n, elapsed / calls * 1e3))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per open-loop run")
    parser.add_argument("--rates", default="10,100,400", help="requests per second")
    parser.add_argument("--tokenizer", default="", help="a tokenizer.json or model directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        print(f"open loop against the mock ({args.seconds:g} s per run)")
        print(f"{'arrivals':>9} {'target':>7} {'drawn':>8} {'achieved':>9} {'ach/target':>11}"
              f" {'ach/drawn':>10} {'lag p99 ms':>11} {'late':>6} {'requests':>9}")  # fmt: skip
        for kind in ("constant", "poisson", "gamma"):
            for rate in (float(r) for r in args.rates.split(",")):
                a = open_loop(kind, rate, args.seconds, out)
                drawn, achieved = a["intended_rate"] or 0.0, a["achieved_rate"] or 0.0
                print(
                    f"{kind:>9} {rate:>7g} {drawn:>8.2f} {achieved:>9.2f} "
                    f"{achieved / rate:>11.4f} {achieved / drawn if drawn else 0:>10.4f} "
                    f"{a['lag_ms']['percentiles']['p99']:>11.2f} "
                    f"{a['late']:>6} {a['requests']:>9}"
                )
        ok, exact, distinct = exact_lengths(args.seconds, out)
        print(
            f"\nexact lengths (--input-tokens 16:1024, the mock's /tokenize): {ok} requests, "
            f"{exact} whose length as built equals the server's usage count, "
            f"{distinct} distinct lengths"
        )
    if args.tokenizer:
        print(f"\nexact-length prompt synthesis with {args.tokenizer}:")
        for n, ms in synthesis(args.tokenizer):
            print(f"  {n:>5} tokens: {ms:.2f} ms a prompt")


if __name__ == "__main__":
    main()
