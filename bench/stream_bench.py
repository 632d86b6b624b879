"""Client ingest cost, mock capacity and timing accuracy, measured side by side in one run.

    .venv/bin/python bench/stream_bench.py --streams 256 --tbt-ms 10 --duration 20

The mock server runs on one core and this client on another (sched_setaffinity, when the
machine has two or more cores). Every stream asks the mock for ``--tokens`` tokens paced
``--tbt-ms`` apart, with the mock's send timestamps embedded (``--send-timestamps``). The
client runs the same hot path as ``OpenAIClient.stream`` (socket read, llhttp, SSE framing,
JSON parse into a Chunk) and also reads the embedded ``mock_t_send`` with a byte search.

Printed:
  * events/s and the client's CPU seconds per 100k events (getrusage of this process);
  * the mock's CPU seconds per 100k events (from /proc), and the ratio of the two: how many
    times over one mock core can feed one client core;
  * event delay = client read time - mock send time (one CLOCK_MONOTONIC on Linux);
  * ITL error = |client gap - mock gap| per consecutive event pair;
  * TTFT error = client TTFT - (mock first send - mock request arrival).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402

from sagellm_users._backends.base import GenerationRequest  # noqa: E402
from sagellm_users._backends.http import HttpTransport  # noqa: E402
from sagellm_users._backends.openai import build_payload, parse_event  # noqa: E402
from sagellm_users._sse import SSEDecoder  # noqa: E402
from sagellm_users.mock_server import MockServerProcess  # noqa: E402

_SEND_KEY = b'"mock_t_send":'
_REQUEST_KEY = b'"mock_t_request":'


@dataclass
class Samples:
    events: int = 0
    delays: list[float] = field(default_factory=list)
    itl_errors: list[float] = field(default_factory=list)
    ttft_errors: list[float] = field(default_factory=list)


def _stamp(event: bytes, key: bytes) -> float:
    start = event.rfind(key) + len(key)
    end = start
    while event[end] in b"0123456789.e-+":
        end += 1
    return float(event[start:end])


def one_request(transport: HttpTransport, body: bytes, samples: Samples) -> None:
    exchange = transport.exchange(
        "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}
    )
    exchange.send()
    decoder = SSEDecoder()
    last: tuple[float, float] | None = None
    for t_read, data in exchange.iter_body():
        for event in decoder.feed(data):
            if event == b"[DONE]":
                continue
            chunk = parse_event(event, t_read)
            if not (chunk.has_output or (chunk.step and last is not None)):
                continue  # the role chunk and the usage chunk are no decode steps
            sent = _stamp(event, _SEND_KEY)
            samples.events += 1
            samples.delays.append(t_read - sent)
            if last is None:
                assert exchange.t_send is not None
                server_ttft = sent - _stamp(event, _REQUEST_KEY)
                samples.ttft_errors.append((t_read - exchange.t_send) - server_ttft)
            else:
                samples.itl_errors.append(abs((t_read - last[0]) - (sent - last[1])))
            last = (t_read, sent)
    exchange.close()


def stream_forever(url: str, body: bytes, samples: Samples, stop_at: float) -> None:
    transport = HttpTransport(url)
    while time.perf_counter() < stop_at:
        one_request(transport, body, samples)
    transport.close()


def percentile(values: list[float], p: float) -> float:
    data = sorted(values)
    rank = (len(data) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--tbt-ms", type=float, default=10.0)
    parser.add_argument("--ttft-ms", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    mock = MockServerProcess(
        ["--tbt-ms", str(args.tbt_ms), "--ttft-ms", str(args.ttft_ms), "--send-timestamps"]
    )
    url = mock.start()
    assert mock.pid is not None
    mock_proc = psutil.Process(mock.pid)
    if len(cores) >= 2:
        os.sched_setaffinity(mock.pid, {cores[-1]})
        os.sched_setaffinity(0, {cores[0]})
        placement = f"mock on core {cores[-1]}, client on core {cores[0]}"
    else:
        placement = "one core shared (results are pessimistic)"
    request = GenerationRequest(
        api="chat", model="mock-llm", prompt="bench", max_tokens=args.tokens, ignore_eos=True
    )
    body = orjson.dumps(build_payload(request))

    warm = Samples()
    end_warm = time.perf_counter() + args.warmup
    jobs = [gevent.spawn(stream_forever, url, body, warm, end_warm) for _ in range(args.streams)]
    gevent.joinall(jobs, raise_error=True)

    samples = Samples()
    cpu0, mock0 = cpu_seconds(), sum(mock_proc.cpu_times()[:2])
    t0 = time.perf_counter()
    stop_at = t0 + args.duration
    jobs = [gevent.spawn(stream_forever, url, body, samples, stop_at) for _ in range(args.streams)]
    gevent.joinall(jobs, raise_error=True)
    elapsed = time.perf_counter() - t0
    client_cpu = cpu_seconds() - cpu0
    mock_cpu = sum(mock_proc.cpu_times()[:2]) - mock0
    mock.stop()

    per100k = 1e5 / samples.events
    print(f"streams {args.streams}, {args.tokens} tokens every {args.tbt_ms:g} ms; {placement}")
    print(
        f"events            {samples.events} in {elapsed:.1f} s = {samples.events / elapsed:,.0f}/s"
    )
    print(
        f"client            {client_cpu * per100k:.2f} CPU-s per 100k events "
        f"({client_cpu / elapsed:.0%} of a core)"
    )
    print(
        f"mock              {mock_cpu * per100k:.2f} CPU-s per 100k events "
        f"({mock_cpu / elapsed:.0%} of a core)"
    )
    print(
        f"mock / client     {client_cpu / mock_cpu:.2f}x "
        "(events one mock core feeds per client core)"
    )
    for label, values in (
        ("event delay", samples.delays),
        ("ITL error", samples.itl_errors),
        ("TTFT error", samples.ttft_errors),
    ):
        ms = [v * 1e3 for v in values]
        print(
            f"{label:<17} p50 {percentile(ms, 50):.3f}  p90 {percentile(ms, 90):.3f}  "
            f"p99 {percentile(ms, 99):.3f}  max {max(ms):.3f} ms  (n={len(ms)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
