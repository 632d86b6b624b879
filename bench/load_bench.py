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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sagellm_users.mock_server import MockServerProcess  # noqa: E402

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
) -> ClientResult:
    result = ClientResult(name)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        if core is not None:  # before it spawns anything: its children inherit the core
            os.sched_setaffinity(proc.pid, {core})
        client = psutil.Process(proc.pid)
        time.sleep(args.warmup)  # pacing the benchmark's phases, not synchronisation
        cpu0, mock0, events0, t0 = tree_cpu(client), _cpu(mock), generated_tokens(url), _now()
        time.sleep(args.duration)
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


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _now() -> float:
    return time.perf_counter()


def sagellm_client(args: argparse.Namespace, url: str, work: Path) -> tuple[list[str], Path]:
    report = work / "sagellm.json"
    run_time = math.ceil(args.warmup + args.duration + 2)
    cmd = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "chat.py"),
        "--headless", "-u", str(args.streams), "-r", str(args.streams), "-t", f"{run_time}s",
        "--host", url, "--max-tokens", str(args.tokens), "--ignore-eos", "--only-summary",
        "--warmup", f"{args.warmup:g}s", "--llm-percentiles", "50,99",
        "--llm-report", str(report), "--llm-records", str(work / "sagellm.jsonl"),
    ]  # fmt: skip
    return cmd, report


def read_sagellm(result: ClientResult, report: Path) -> None:
    if not report.exists():
        result.note = result.note or "no report written"
        return
    total = json.loads(report.read_bytes())["total"]
    result.itl_p50_ms = total["itl_ms"]["percentiles"]["p50"]
    result.itl_p99_ms = total["itl_ms"]["percentiles"]["p99"]
    result.ttft_p50_ms = total["ttft_ms"]["percentiles"]["p50"]
    result.ttft_p99_ms = total["ttft_ms"]["percentiles"]["p99"]
    result.extra = {"completed": total["completed"], "failed": total["failed"]}


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
        f"{'ITL p50':>8} {'ITL p99':>8} {'TTFT p50':>9} {'TTFT p99':>9} {'mock/client':>11}"
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
            f"{fmt(r.itl_p50_ms):>8} {fmt(r.itl_p99_ms):>8} {fmt(r.ttft_p50_ms):>9} "
            f"{fmt(r.ttft_p99_ms):>9} {fmt(ratio, '.2f') + 'x' if ratio else '-':>11}"
            + (f"  ({r.note})" if r.note else "")
        )
    print(
        f"truth: ITL {args.tbt_ms:g} ms, TTFT {args.ttft_ms:g} ms (plus the mock's own lag); "
        "mock/client = client CPU / mock CPU for the same events"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--tbt-ms", type=float, default=10.0)
    parser.add_argument("--ttft-ms", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument(
        "--clients", default="sagellm,vllm,floor", help="comma-separated: sagellm, vllm, floor"
    )
    parser.add_argument("--vllm-python", default=sys.executable, help="a python with vllm")
    parser.add_argument("--vllm-tokenizer", default="", help="local tokenizer dir for vllm")
    parser.add_argument("--out", default="", help="write the results as JSON here")
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    mock_core, client_core = (cores[-1], cores[0]) if len(cores) >= 2 else (None, None)
    placement = (
        f"mock on core {mock_core}, client on core {client_core}"
        if mock_core is not None
        else "one core shared (pessimistic)"
    )
    work = Path(tempfile.mkdtemp(prefix="sagellm-bench-"))
    results: list[ClientResult] = []
    mock_args = ["--tbt-ms", str(args.tbt_ms), "--ttft-ms", str(args.ttft_ms)]
    with MockServerProcess(mock_args) as mock:
        assert mock.url is not None and mock.pid is not None
        if mock_core is not None:
            os.sched_setaffinity(mock.pid, {mock_core})
        mock_proc = psutil.Process(mock.pid)
        for name in [c.strip() for c in args.clients.split(",") if c.strip()]:
            if name == "sagellm":
                cmd, report = sagellm_client(args, mock.url, work)
                label, reader = "sagellm-locust", read_sagellm
            elif name == "vllm":
                if not vllm_available(args.vllm_python) or not args.vllm_tokenizer:
                    results.append(
                        ClientResult(
                            "vllm bench serve",
                            note="skipped: needs --vllm-python with vllm and --vllm-tokenizer",
                        )
                    )
                    continue
                cmd, report = vllm_client(args, mock.url, work)
                label, reader = "vllm bench serve", read_vllm
            elif name == "floor":
                seconds = args.warmup + args.duration + 1
                cmd = [sys.executable, str(ROOT / "bench" / "raw_reader.py"), mock.url,
                       str(args.streams), str(args.tokens), str(seconds)]  # fmt: skip
                report, label, reader = work / "none", "raw floor", None
            else:
                parser.error(f"unknown client {name!r}; choose from sagellm, vllm, floor")
            print(f"running {label} ...", flush=True)
            result = measure(
                label, cmd, args=args, mock=mock_proc, url=mock.url, core=client_core,
                log=work / f"{name}.log",
            )  # fmt: skip
            if reader is not None:
                reader(result, report)
            results.append(result)
    print_table(results, args, placement)
    if args.out:
        data = {
            "settings": vars(args),
            "placement": placement,
            "results": [
                {
                    **asdict(r),
                    "events_per_s": r.events_per_s,
                    "cpu_per_100k": r.cpu_per_100k,
                    "mock_cpu_per_100k": r.mock_per_100k,
                }
                for r in results
            ],
        }
        Path(args.out).write_text(json.dumps(data, indent=2, default=str))
        print(f"results: {args.out}")
    print(f"logs: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
