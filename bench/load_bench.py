"""Whole-client benchmark: sagellm-locust, vllm bench serve and a raw-socket floor, side by side.

    .venv/bin/python bench/load_bench.py                                  # 256 streams
    .venv/bin/python bench/load_bench.py --vllm-python /path/to/venv/bin/python \\
        --vllm-tokenizer /path/to/local/tokenizer-dir --out results.json

The mock server runs on one core and each client in turn on another (sched_setaffinity,
when the machine has two or more cores). Every client streams ``--streams`` concurrent
chat requests of ``--tokens`` tokens, one token per ``--tbt-ms`` per stream. After
``--warmup`` seconds the harness reads the client's CPU time (its whole process tree) and
the mock's ``vllm:generation_tokens_total`` from ``/metrics``, and again ``--duration``
seconds later: CPU seconds per 100k events for each client, measured the same way, with
every recording feature of sagellm-locust on (per-chunk timestamps, distributions, TTFT/TBT
rows, the records file, the report).

Clients:
  * ``sagellm-locust``: the real ``locust`` command with ``locustfiles/chat.py``;
  * ``vllm bench serve``: vLLM's own benchmark (when ``--vllm-python`` has vllm; it needs
    a local tokenizer directory for its random prompts, nothing is downloaded);
  * ``raw floor``: ``bench/raw_reader.py``, a gevent socket reader that parses nothing.

Timing accuracy of the same read path against the mock's own send timestamps is measured
by ``bench/stream_bench.py``; here each client's ITL and TTFT percentiles are shown next
to the truth the mock was told to produce.

Before and after, in one run:

    .venv/bin/python bench/load_bench.py --against /tmp/before --duration 30 --repeat 3

``--against DIR`` measures the sagellm-locust client of this checkout and of the checkout
in DIR (e.g. ``git worktree add /tmp/before <commit>``) the same way, interleaved: this
one, then DIR's, ``--repeat`` times, so drifting machine load hits both alike. DIR's
``locust`` runs with ``PYTHONPATH=DIR`` from DIR (its ``sagellm_users`` and
``locustfiles/chat.py``; the harness checks that ``sagellm_users.__file__`` resolves into
DIR before measuring). Both read one mock, this checkout's, and both ask for
``ignore_eos``, so every stream is ``--tokens`` tokens whatever either side's mock would
have done by default; ``--held-back-rate`` (the mock's share of tokens sent with empty
text) is one setting for both. Printed: every run's CPU-s per 100k events, each side's
median with its range, and after/before (this checkout over DIR) as the ratio of the
medians with the range of the rounds' own ratios; then the same for the client's CPU over
the mock's in the same seconds. The mock streams the same events to either side, so its
CPU per event tracks the machine's speed at the time: on a shared VM both drift together
by 10-20% within minutes, and that ratio cancels the drift that the interleaving only
spreads evenly.
A run that fell behind (under 95% of the paced event rate, or timings not trustworthy)
is named in a warning: something else had the CPU, and the figures are not comparable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sagellm_users._metrics.health import CPU_LIMIT  # noqa: E402
from sagellm_users.mock_server import MockServerProcess  # noqa: E402

SEND_LOG = "mock-send.jsonl"
VLLM_SKIPPED = "skipped: needs --vllm-python with vllm and --vllm-tokenizer"
_VLLM_MAIN = """
import argparse, sys
from vllm.benchmarks.serve import add_cli_args, main
parser = argparse.ArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""


@dataclass
class ClientResult:
    client: str
    events: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    mock_cpu_s: float = 0.0
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    rss_peak_mb: float = 0.0
    delay_p50_ms: float | None = None
    delay_p99_ms: float | None = None
    ttft_error_p99_ms: float | None = None
    joined_events: int = 0
    health: dict[str, Any] | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_100k(self) -> float:
        return self.cpu_s * 1e5 / self.events if self.events else math.nan

    @property
    def mock_per_100k(self) -> float:
        return self.mock_cpu_s * 1e5 / self.events if self.events else math.nan

    @property
    def over_mock(self) -> float:
        """Client CPU over the mock's in the same seconds."""
        return self.cpu_s / self.mock_cpu_s if self.mock_cpu_s else math.nan


def generated_tokens(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("vllm:generation_tokens_total"):
                return int(float(line.rsplit(" ", 1)[1]))
    raise RuntimeError("the mock's /metrics has no vllm:generation_tokens_total")


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(
    name: str,
    cmd: list[str],
    *,
    args: argparse.Namespace,
    mock: psutil.Process,
    url: str,
    core: int | None,
    log: Path,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
) -> ClientResult:
    result = ClientResult(name)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        if core is not None:  # before it spawns anything: its children inherit the core
            os.sched_setaffinity(proc.pid, {core})
        client = psutil.Process(proc.pid)
        # Pacing the benchmark's phases (not synchronisation), sampling memory meanwhile.
        result.rss_peak_mb = sample_rss(client, args.warmup)
        cpu0, mock0, events0, t0 = tree_cpu(client), _cpu(mock), generated_tokens(url), _now()
        result.rss_peak_mb = max(result.rss_peak_mb, sample_rss(client, args.duration))
        cpu1, mock1, events1, t1 = tree_cpu(client), _cpu(mock), generated_tokens(url), _now()
        try:
            proc.wait(timeout=args.warmup + args.duration + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            result.note = "did not stop by itself"
    result.events = events1 - events0
    result.seconds = t1 - t0
    result.cpu_s = cpu1 - cpu0
    result.mock_cpu_s = mock1 - mock0
    if proc.returncode not in (0, None) and not result.note:
        result.note = f"exit code {proc.returncode} (see {log})"
    return result


def sample_rss(proc: psutil.Process, seconds: float) -> float:
    """Wait ``seconds`` while sampling the process tree's resident memory; the peak in MB."""
    peak = 0.0
    end = _now() + seconds
    while (left := end - _now()) > 0:
        rss = 0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                rss += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        peak = max(peak, rss / 2**20)
        time.sleep(min(0.5, left))
    return peak


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _now() -> float:
    return time.perf_counter()


def sagellm_client(
    args: argparse.Namespace, url: str, work: Path, *, root: Path = ROOT, name: str = "sagellm"
) -> tuple[list[str], Path]:
    """The ``locust`` command of the checkout in ``root`` (run it from there, with
    ``PYTHONPATH=root``, for that checkout's package); its files are named ``name``."""
    report = work / f"{name}.json"
    run_time = math.ceil(args.warmup + args.duration + 2)
    cmd = [
        sys.executable, "-m", "locust", "-f", str(root / "locustfiles" / "chat.py"),
        "--headless", "-u", str(args.streams), "-r", str(args.spawn_rate or args.streams),
        "-t", f"{run_time}s",
        "--host", url, "--max-tokens", str(args.tokens), "--ignore-eos", "--only-summary",
        "--warmup", f"{args.warmup:g}s", "--llm-percentiles", "50,99",
        "--llm-report", str(report), "--llm-records", str(work / f"{name}.jsonl"),
    ]  # fmt: skip
    return cmd, report


def read_sagellm(result: ClientResult, report: Path) -> None:
    if not report.exists():
        result.note = result.note or "no report written"
        return
    data = json.loads(report.read_bytes())
    total = data["total"]
    result.itl_p50_ms = total["itl_ms"]["percentiles"]["p50"]
    result.itl_p99_ms = total["itl_ms"]["percentiles"]["p99"]
    result.ttft_p50_ms = total["ttft_ms"]["percentiles"]["p50"]
    result.ttft_p99_ms = total["ttft_ms"]["percentiles"]["p99"]
    result.extra = {"completed": total["completed"], "failed": total["failed"]}
    client = data.get("client")
    if client is not None:
        result.health = {
            "trustworthy": client["trustworthy"],
            "processes_needed": client["processes_needed"],
            "loop_lag_p99_ms": client["total"]["loop_lag_ms"]["percentiles"]["p99"],
            "cpu_mean": client["total"]["cpu_mean"],
            "warnings": client["warnings"],
        }
    records = report.with_suffix(".jsonl")
    send_log = report.parent / SEND_LOG
    if records.exists():
        count_connections(result, records)
    if records.exists() and send_log.exists():
        join_accuracy(result, records, send_log)


def count_connections(result: ClientResult, records: Path) -> None:
    """How the finished requests went out: on a pooled connection (``connect_ms`` null) or
    a new one, and how many failed (with 10,000 users, most connections sit on file
    descriptors above 1023)."""
    sent = reused = failed = 0
    with records.open("rb") as lines:
        for line in lines:
            record = orjson.loads(line)
            if record["status"] == "cancelled":
                continue
            failed += record["status"] == "error"
            if record["t_send"] is not None:
                sent += 1
                reused += record["connect_ms"] is None
    result.extra["connections"] = {"requests": sent, "reused": reused, "failed": failed}


def join_accuracy(result: ClientResult, records: Path, send_log: Path) -> None:
    """Each measured record against the mock's own send times, joined by response id.

    Event delay = client read time - mock write time, per output event; TTFT error =
    client TTFT - (mock first write - mock request arrival). Both clocks are
    perf_counter() (CLOCK_MONOTONIC) on one machine."""
    truth: dict[str, tuple[float, list[float]]] = {}
    with send_log.open("rb") as lines:
        for line in lines:
            entry = orjson.loads(line)
            truth[entry["id"]] = (entry["t_received"], entry["t_send"])
    delays: list[float] = []
    ttft_errors: list[float] = []
    with records.open("rb") as lines:
        for line in lines:
            record = orjson.loads(line)
            if record["status"] != "ok" or record["warmup"] or record["t_send"] is None:
                continue
            match = truth.get(record.get("response_id") or "")
            if match is None or len(match[1]) != len(record["out_ms"]):
                continue
            received, sent = match
            t_send = record["t_send"]
            reads = [t_send + ms / 1e3 for ms in record["out_ms"]]
            delays.extend(read - mock for read, mock in zip(reads, sent, strict=True))
            ttft_errors.append((reads[0] - t_send) - (sent[0] - received))
    if len(delays) < 2 or len(ttft_errors) < 2:
        result.note = result.note or "no records joined with the mock's send log"
        return
    result.joined_events = len(delays)
    result.delay_p50_ms = statistics.median(delays) * 1e3
    result.delay_p99_ms = _p99(delays) * 1e3
    result.ttft_error_p99_ms = _p99(ttft_errors) * 1e3


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def vllm_client(args: argparse.Namespace, url: str, work: Path) -> tuple[list[str], Path]:
    per_request = (args.ttft_ms + args.tokens * args.tbt_ms) / 1000
    prompts = math.ceil(args.streams / per_request * (args.warmup + args.duration + 2))
    cmd = [
        args.vllm_python, "-c", _VLLM_MAIN,
        "--backend", "openai-chat", "--base-url", url, "--endpoint", "/v1/chat/completions",
        "--model", "mock-llm", "--tokenizer", args.vllm_tokenizer,
        "--dataset-name", "random", "--random-input-len", "16",
        "--random-output-len", str(args.tokens), "--ignore-eos",
        "--num-prompts", str(prompts), "--max-concurrency", str(args.streams),
        "--request-rate", "inf", "--disable-tqdm", "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--metric-percentiles", "50,99", "--save-result", "--result-dir", str(work),
        "--result-filename", "vllm.json",
    ]  # fmt: skip
    return cmd, work / "vllm.json"


def read_vllm(result: ClientResult, report: Path) -> None:
    if not report.exists():
        result.note = result.note or "no result written"
        return
    data = json.loads(report.read_bytes())
    result.itl_p50_ms = data.get("p50_itl_ms")
    result.itl_p99_ms = data.get("p99_itl_ms")
    result.ttft_p50_ms = data.get("p50_ttft_ms")
    result.ttft_p99_ms = data.get("p99_ttft_ms")
    result.extra = {"completed": data.get("completed"), "failed": data.get("failed")}


def vllm_available(python: str | None) -> bool:
    if not python:
        return False
    check = [python, "-c", "import vllm.benchmarks.serve"]
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


def fmt(value: float | None, spec: str = ".2f") -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def print_table(results: list[ClientResult], args: argparse.Namespace, placement: str) -> None:
    print(
        f"\n{args.streams} streams x {args.tokens} tokens, one per {args.tbt_ms:g} ms "
        f"(TTFT {args.ttft_ms:g} ms); {placement}; measured over {args.duration:g} s "
        f"after {args.warmup:g} s"
    )
    vllm = next((r for r in results if r.client == "vllm bench serve" and r.events), None)
    header = (
        f"{'client':18} {'events/s':>9} {'CPU-s/100k':>10} {'core':>5} {'vs vllm':>8} "
        f"{'ITL p99':>8} {'TTFT p99':>9} {'delay p99':>9} {'TTFTerr p99':>11} "
        f"{'RSS MB':>7} {'mock/client':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        versus = vllm.cpu_per_100k / r.cpu_per_100k if vllm and r.events else None
        share = r.cpu_s / r.seconds if r.seconds else None
        ratio = r.cpu_s / r.mock_cpu_s if r.mock_cpu_s else None
        print(
            f"{r.client:18} {r.events_per_s:9,.0f} {fmt(r.cpu_per_100k):>10} "
            f"{fmt(share, '.0%'):>5} {fmt(versus, '.2f') + 'x' if versus else '-':>8} "
            f"{fmt(r.itl_p99_ms):>8} {fmt(r.ttft_p99_ms):>9} {fmt(r.delay_p99_ms):>9} "
            f"{fmt(r.ttft_error_p99_ms):>11} {fmt(r.rss_peak_mb, '.0f'):>7} "
            f"{fmt(ratio, '.2f') + 'x' if ratio else '-':>11}" + (f"  ({r.note})" if r.note else "")
        )
        if r.health is not None:
            verdict = "trustworthy" if r.health["trustworthy"] else "NOT trustworthy"
            print(
                f"{'':18} client health: loop lag p99 {fmt(r.health['loop_lag_p99_ms'])} ms, "
                f"CPU {fmt(r.health['cpu_mean'], '.0%')}, {verdict}, processes needed "
                f"{r.health['processes_needed']}"
            )
        connections = r.extra.get("connections")
        if connections is not None:
            print(
                f"{'':18} requests sent {connections['requests']:,}, "
                f"{connections['reused']:,} on a pooled connection; "
                f"{connections['failed']:,} failed"
            )
    print(
        f"truth: ITL {args.tbt_ms:g} ms, TTFT {args.ttft_ms:g} ms (plus the mock's own lag); "
        "delay = client read - mock write, TTFTerr = client TTFT - mock TTFT (sagellm-locust "
        "records joined with the mock's --send-log); mock/client = client CPU / mock CPU"
    )


def place(cores: list[int]) -> tuple[int | None, int | None, str]:
    """The mock's core, the client's core, and the placement in words."""
    mock_core, client_core = (cores[-1], cores[0]) if len(cores) >= 2 else (None, None)
    placement = (
        f"mock on core {mock_core}, client on core {client_core}"
        if mock_core is not None
        else "one core shared (pessimistic)"
    )
    return mock_core, client_core, placement


def mock_args(args: argparse.Namespace, work: Path) -> list[str]:
    """This checkout's mock, as the scenario asks for it."""
    out = [
        "--tbt-ms", str(args.tbt_ms), "--ttft-ms", str(args.ttft_ms),
        "--tbt-jitter-ms", str(args.tbt_jitter_ms),
        "--send-log", str(work / SEND_LOG),
    ]  # fmt: skip
    if args.held_back_rate is not None:
        out += ["--held-back-rate", str(args.held_back_rate)]
    return out


def run_scenario(
    args: argparse.Namespace, clients: list[str], work: Path, cores: list[int]
) -> tuple[list[ClientResult], str]:
    """Every client in turn against one mock pinned to its own core."""
    mock_core, client_core, placement = place(cores)
    work.mkdir(parents=True, exist_ok=True)
    results: list[ClientResult] = []
    with MockServerProcess(mock_args(args, work)) as mock:
        assert mock.url is not None and mock.pid is not None
        if mock_core is not None:
            os.sched_setaffinity(mock.pid, {mock_core})
        mock_proc = psutil.Process(mock.pid)
        for name in clients:
            reader: Any
            if name == "sagellm":
                cmd, report = sagellm_client(args, mock.url, work)
                label, reader = "sagellm-locust", read_sagellm
            elif name == "vllm":
                if not vllm_available(args.vllm_python) or not args.vllm_tokenizer:
                    results.append(ClientResult("vllm bench serve", note=VLLM_SKIPPED))
                    continue
                cmd, report = vllm_client(args, mock.url, work)
                label, reader = "vllm bench serve", read_vllm
            elif name == "floor":
                seconds = args.warmup + args.duration + 1
                cmd = [sys.executable, str(ROOT / "bench" / "raw_reader.py"), mock.url,
                       str(args.streams), str(args.tokens), str(seconds)]  # fmt: skip
                report, label, reader = work / "none", "raw floor", None
            else:
                raise SystemExit(f"unknown client {name!r}; choose from sagellm, vllm, floor")
            print(f"running {label} ...", flush=True)
            result = measure(
                label, cmd, args=args, mock=mock_proc, url=mock.url, core=client_core,
                log=work / f"{name}.log",
            )  # fmt: skip
            if reader is not None:
                reader(result, report)
            results.append(result)
    return results, placement


def package_of(root: Path) -> Path:
    """Where ``import sagellm_users`` resolves for a side run from ``root`` with
    ``PYTHONPATH=root``; exits unless it is ``root``'s own package."""
    check = [sys.executable, "-c", "import sagellm_users; print(sagellm_users.__file__)"]
    out = subprocess.run(
        check, cwd=root, env=side_env(root), capture_output=True, text=True, check=True
    )
    found = Path(out.stdout.strip()).resolve()
    if not found.is_relative_to(root):
        raise SystemExit(f"sagellm_users from {root} resolves to {found}, not into {root}")
    return found


def side_env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root)}


def run_against(
    args: argparse.Namespace, against: Path, work: Path, cores: list[int]
) -> tuple[list[tuple[ClientResult, ClientResult]], str]:
    """sagellm-locust of this checkout and of ``against``, alternately, ``args.repeat``
    times against one mock of this checkout; the (after, before) pair of each round."""
    sides = {"after": ROOT, "before": against}
    for side, root in sides.items():
        print(f"{side}: {root} (sagellm_users from {package_of(root)})", flush=True)
    mock_core, client_core, placement = place(cores)
    work.mkdir(parents=True, exist_ok=True)
    rounds: list[tuple[ClientResult, ClientResult]] = []
    with MockServerProcess(mock_args(args, work)) as mock:
        assert mock.url is not None and mock.pid is not None
        if mock_core is not None:
            os.sched_setaffinity(mock.pid, {mock_core})
        mock_proc = psutil.Process(mock.pid)
        for i in range(1, args.repeat + 1):
            pair: list[ClientResult] = []
            for side, root in sides.items():
                name = f"{side}-{i}"
                cmd, report = sagellm_client(args, mock.url, work, root=root, name=name)
                print(f"round {i}/{args.repeat}: {side} ...", flush=True)
                result = measure(
                    f"{side} {i}", cmd, args=args, mock=mock_proc, url=mock.url,
                    core=client_core, log=work / f"{name}.log", cwd=root, env=side_env(root),
                )  # fmt: skip
                read_sagellm(result, report)
                pair.append(result)
            rounds.append((pair[0], pair[1]))
    return rounds, placement


def print_against(
    rounds: list[tuple[ClientResult, ClientResult]],
    args: argparse.Namespace,
    against: Path,
    placement: str,
) -> None:
    held = "the mock's default" if args.held_back_rate is None else f"{args.held_back_rate:g}"
    print(
        f"\n{args.streams} streams x {args.tokens} tokens, one per {args.tbt_ms:g} ms "
        f"(TTFT {args.ttft_ms:g} ms); {placement}; measured over {args.duration:g} s "
        f"after {args.warmup:g} s, {len(rounds)} rounds, after then before in each\n"
        f"after = this checkout ({ROOT}), before = {against}\n"
        f"identical streams: one mock (this checkout's) for both sides, both ask for "
        f"ignore_eos (every stream {args.tokens} tokens), held-back rate {held} for both"
    )
    header = (
        f"{'run':10} {'events/s':>9} {'CPU-s/100k':>10} {'core':>5} {'ITL p99':>8} "
        f"{'TTFT p99':>9} {'delay p99':>9} {'RSS MB':>7} {'vs mock':>7} {'health':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in (r for pair in rounds for r in pair):
        share = r.cpu_s / r.seconds if r.seconds else None
        health = "-"
        if r.health is not None:
            health = "trustworthy" if r.health["trustworthy"] else "NOT trusted"
        print(
            f"{r.client:10} {r.events_per_s:9,.0f} {fmt(r.cpu_per_100k):>10} "
            f"{fmt(share, '.0%'):>5} {fmt(r.itl_p99_ms):>8} {fmt(r.ttft_p99_ms):>9} "
            f"{fmt(r.delay_p99_ms):>9} {fmt(r.rss_peak_mb, '.0f'):>7} {fmt(r.over_mock):>7} "
            f"{health:>11}" + (f"  ({r.note})" if r.note else "")
        )
    print("-" * len(header))
    for label, attribute in (
        ("CPU-s/100k events", "cpu_per_100k"),
        ("client CPU / mock CPU", "over_mock"),
    ):
        after: list[float] = [getattr(a, attribute) for a, _ in rounds]
        before: list[float] = [getattr(b, attribute) for _, b in rounds]
        ratios = [a / b for a, b in zip(after, before, strict=True)]
        print(f"{label}:")
        for side, values in (("after", after), ("before", before)):
            print(
                f"  {side:7} median {fmt(statistics.median(values), '.3f')} "
                f"(range {fmt(min(values), '.3f')}-{fmt(max(values), '.3f')})"
            )
        print(
            f"  after/before {statistics.median(after) / statistics.median(before):.3f} "
            f"(ratio of medians; the rounds' own {fmt(min(ratios), '.3f')}-"
            f"{fmt(max(ratios), '.3f')}: {', '.join(fmt(x, '.3f') for x in ratios)})"
        )
    print(
        "vs mock = client CPU / mock CPU over the same seconds: the mock does the same work "
        "for both sides, so machine-speed drift between runs cancels in it"
    )
    target = args.streams * 1000 / args.tbt_ms
    behind = [
        r.client
        for pair in rounds
        for r in pair
        if r.events_per_s < 0.95 * target or (r.health is not None and not r.health["trustworthy"])
    ]
    if behind:
        print(
            f"WARNING: {', '.join(behind)} fell behind (under 95% of {target:,.0f} events/s, "
            "or timings not trustworthy): something else had the CPU; rerun on a quiet machine"
        )


# The scenarios behind the targets: name -> (settings, clients).
SUITE: dict[str, tuple[dict[str, float], list[str]]] = {
    "stream": ({"streams": 256, "tokens": 256, "tbt_ms": 10}, ["sagellm", "vllm", "floor"]),
    "short": ({"streams": 256, "tokens": 16, "tbt_ms": 10}, ["sagellm", "vllm"]),
    "quiet": ({"streams": 8, "tokens": 256, "tbt_ms": 10}, ["sagellm"]),
    # Independent streams: Locust starts users in clumps (500 a second here), and a mock
    # without jitter would keep each clump's events in the same millisecond for ever;
    # +-250 ms of gap jitter (mean still 1 s) spreads them as a real server's would.
    "scale": (
        {
            "streams": 5000,
            "tokens": 8,
            "tbt_ms": 1000,
            "tbt_jitter_ms": 250,
            "spawn_rate": 500,
            "warmup": 12,
            "duration": 20,
        },
        ["sagellm"],
    ),
    "overload": ({"streams": 768, "tokens": 256, "tbt_ms": 2}, ["sagellm"]),
}


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: could not be measured here


def judge(runs: dict[str, list[ClientResult]]) -> list[Target]:
    """The issue's six targets, each from the scenario that measures it."""

    def find(scenario: str, client: str) -> ClientResult | None:
        return next((r for r in runs.get(scenario, []) if r.client == client and r.events), None)

    out: list[Target] = []
    s, v = find("stream", "sagellm-locust"), find("stream", "vllm bench serve")
    if s is not None:
        ratio = v.cpu_per_100k / s.cpu_per_100k if v else None
        out.append(Target(
            "1 ingest cost", "<= 2.7 CPU-s/100k events, >= 1.25x vllm bench serve",
            f"{s.cpu_per_100k:.2f} CPU-s/100k, {fmt(ratio)}x vllm",
            s.cpu_per_100k <= 2.7 and (ratio is None or ratio >= 1.25),
        ))  # fmt: skip
        q = find("quiet", "sagellm-locust")
        ok = (
            s.events_per_s >= 20_000 and s.delay_p99_ms is not None
            and s.delay_p99_ms <= 2 and (s.ttft_error_p99_ms or math.inf) <= 5
            and q is not None and (q.delay_p99_ms or math.inf) <= 0.5
        )  # fmt: skip
        out.append(Target(
            "2 accuracy", "delay p99 <= 2, TTFT err p99 <= 5 ms at >= 20k ev/s; 8 streams <= 0.5",
            f"{s.events_per_s:,.0f} ev/s: delay p99 {fmt(s.delay_p99_ms)}, TTFT err p99 "
            f"{fmt(s.ttft_error_p99_ms)}; 8 streams: {fmt(q.delay_p99_ms if q else None)} ms",
            ok,
        ))  # fmt: skip
    s16, v16 = find("short", "sagellm-locust"), find("short", "vllm bench serve")
    if s16 is not None:
        out.append(Target(
            "3 short requests", "requests/s per core >= vllm bench serve's (16 tokens)",
            f"{s16.cpu_per_100k:.2f} vs {fmt(v16.cpu_per_100k if v16 else None)} CPU-s/100k "
            f"({fmt(v16.cpu_per_100k / s16.cpu_per_100k if v16 else None)}x)",
            None if v16 is None else s16.cpu_per_100k <= v16.cpu_per_100k,
        ))  # fmt: skip
    big = find("scale", "sagellm-locust")
    if big is not None:
        failed = big.extra.get("failed")
        out.append(Target(
            "4 scale", "5,000 streams at 1 token/s: RSS < 1 GiB, delay p99 <= 5 ms",
            f"RSS peak {big.rss_peak_mb:.0f} MB, delay p99 {fmt(big.delay_p99_ms)} ms, "
            f"{big.extra.get('completed')} completed, {failed} failed",
            big.rss_peak_mb < 1024 and (big.delay_p99_ms or math.inf) <= 5 and failed == 0,
        ))  # fmt: skip
    over = find("overload", "sagellm-locust")
    if s is not None and over is not None and s.health and over.health:
        out.append(Target(
            "5 self-awareness", "trustworthy when it keeps up; warns and sizes when it does not",
            f"stream: trustworthy={s.health['trustworthy']}; overload: trustworthy="
            f"{over.health['trustworthy']}, loop lag p99 {fmt(over.health['loop_lag_p99_ms'])} "
            f"ms, processes needed {over.health['processes_needed']}",
            s.health["trustworthy"] and not over.health["trustworthy"]
            and over.health["processes_needed"] > 1,
        ))  # fmt: skip
    if s is not None and s.mock_cpu_s and over is not None and over.mock_cpu_s:
        # Capacities per core: the mock's events per CPU-second where it runs hardest
        # (overload), against the most one worker ingests while its numbers are
        # trustworthy (CPU_LIMIT of a core at the stream scenario's cost per event).
        mock_capacity = over.events / over.mock_cpu_s
        worker_capacity = CPU_LIMIT * s.events / s.cpu_s
        ratio = mock_capacity / worker_capacity
        out.append(Target(
            "6 mock headroom", "the mock streams >= 2x what one worker ingests (per core)",
            f"{ratio:.2f}x: mock {mock_capacity:,.0f} ev/s per core vs a trustworthy worker's "
            f"{worker_capacity:,.0f} ev/s ({CPU_LIMIT:.0%} of a core); at the same rate "
            f"{s.cpu_s / s.mock_cpu_s:.2f}x CPU per event",
            ratio >= 2,
        ))  # fmt: skip
    return out


def print_targets(targets: list[Target]) -> None:
    print("\nTargets")
    width = max(len(t.goal) for t in targets)
    for t in targets:
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[t.met]
        print(f"  {t.name:18} {t.goal:<{width}}  {verdict:>12}\n  {'':18} {t.measured}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--tbt-ms", type=float, default=10.0)
    parser.add_argument("--ttft-ms", type=float, default=10.0)
    parser.add_argument(
        "--tbt-jitter-ms", type=float, default=0.0, help="the mock's uniform gap jitter"
    )
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--spawn-rate",
        type=float,
        default=0,
        help="sagellm-locust users started per second (default: all at once)",
    )
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument(
        "--clients", default="sagellm,vllm,floor", help="comma-separated: sagellm, vllm, floor"
    )
    parser.add_argument(
        "--suite",
        action="store_true",
        help="run every scenario behind the performance targets and judge each target",
    )
    parser.add_argument("--vllm-python", default=sys.executable, help="a python with vllm")
    parser.add_argument("--vllm-tokenizer", default="", help="local tokenizer dir for vllm")
    parser.add_argument(
        "--held-back-rate",
        type=float,
        default=None,
        help="the mock's share of tokens sent with empty text (default: the mock's own)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout: measure its sagellm-locust beside this one's (before/after)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds with --against (each side once a round)"
    )
    parser.add_argument("--out", default="", help="write the results as JSON here")
    args = parser.parse_args()
    if args.against is not None:
        return main_against(args)

    cores = sorted(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="sagellm-bench-"))
    if args.suite:
        scenarios = {
            name: (argparse.Namespace(**{**vars(args), **settings}), clients)
            for name, (settings, clients) in SUITE.items()
        }
    else:
        clients = [c.strip() for c in args.clients.split(",") if c.strip()]
        scenarios = {"custom": (args, clients)}
    runs: dict[str, list[ClientResult]] = {}
    for name, (settings, clients) in scenarios.items():
        print(f"\n== {name} ==", flush=True)
        results, placement = run_scenario(settings, clients, work / name, cores)
        runs[name] = results
        print_table(results, settings, placement)
    targets = judge(runs) if args.suite else []
    if targets:
        print_targets(targets)
    if args.out:
        data = {
            "settings": vars(args),
            "runs": {
                name: [
                    {
                        **asdict(r),
                        "events_per_s": r.events_per_s,
                        "cpu_per_100k": r.cpu_per_100k,
                        "mock_cpu_per_100k": r.mock_per_100k,
                    }
                    for r in results
                ]
                for name, results in runs.items()
            },
            "targets": [asdict(t) for t in targets],
        }
        Path(args.out).write_text(json.dumps(data, indent=2, default=str))
        print(f"results: {args.out}")
    print(f"logs: {work}")
    return 0


def main_against(args: argparse.Namespace) -> int:
    if args.suite:
        raise SystemExit("--against measures one scenario; leave out --suite")
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    against = args.against.resolve()
    if not (against / "locustfiles" / "chat.py").is_file():
        raise SystemExit(f"{against} is not a checkout (no locustfiles/chat.py)")
    work = Path(tempfile.mkdtemp(prefix="sagellm-bench-"))
    cores = sorted(os.sched_getaffinity(0))
    rounds, placement = run_against(args, against, work, cores)
    print_against(rounds, args, against, placement)
    if args.out:
        data = {
            "settings": vars(args),
            "rounds": [
                {
                    side: {**asdict(r), "events_per_s": r.events_per_s,
                           "cpu_per_100k": r.cpu_per_100k, "over_mock": r.over_mock}
                    for side, r in zip(("after", "before"), pair, strict=True)
                }
                for pair in rounds
            ],
        }  # fmt: skip
        Path(args.out).write_text(json.dumps(data, indent=2, default=str))
        print(f"results: {args.out}")
    print(f"logs: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
