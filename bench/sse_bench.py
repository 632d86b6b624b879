"""SSE decoding of one big event: time, and how long the event loop is held.

    .venv/bin/python bench/sse_bench.py                         # this checkout
    .venv/bin/python bench/sse_bench.py --against /tmp/before   # beside another checkout

One event of ``--size`` bytes (5 MB: a long completion sent as one chunk, or a gateway
that buffers) is fed to ``SSEDecoder`` in ``--read``-byte pieces (1,448: one TCP segment
on Ethernet, what a socket read returns when the bytes come off a real network), with a
gevent hub switch after every read, as a socket read that waits for data would. A ticker
greenlet wakes every millisecond and records how late it woke: the event-loop lag every
other user of the process sees while the event is decoded. Printed per side: the decode
time, the longest single ``feed`` (the hub is held that long at once), and the lag's p99 and
max; with ``--against`` the two sides are printed together with before/after ratios.
Then the fast path: ns per event for ordinary one-line events, both sides' decoders loaded
into one process and timed in alternating rounds.

Each side runs in a child process with ``PYTHONPATH`` set to its checkout, so the other
checkout's ``sagellm_users._sse`` is the one measured (the script checks that it is).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from time import perf_counter
from typing import Any

import gevent
from gevent.event import Event

from sagellm_users import _sse as sse  # the child's PYTHONPATH picks the checkout measured

ROOT = Path(__file__).resolve().parents[1]
TICK_S = 0.001


def _ticker(lags: list[float], stop: Event) -> None:
    """Wake every millisecond; record how late each wake-up came."""
    while not stop.is_set():
        due = perf_counter() + TICK_S
        gevent.sleep(TICK_S)
        lags.append(max(0.0, perf_counter() - due))


def measure(size: int, read: int, repeat: int) -> dict[str, Any]:
    """Runs in the child: the best of ``repeat`` decodes, with the lag of that run."""
    token = b"x" * size
    stream = b"data: " + token + b"\n\ndata: [DONE]\n\n"
    pieces = [stream[at : at + read] for at in range(0, len(stream), read)]
    runs: list[dict[str, float]] = []
    for _ in range(repeat):
        lags: list[float] = []
        stop = Event()
        tick = gevent.spawn(_ticker, lags, stop)
        gevent.sleep(0.01)
        decoder = sse.SSEDecoder()
        events: list[bytes] = []
        longest = 0.0
        started = perf_counter()
        for piece in pieces:
            t = perf_counter()
            events.extend(decoder.feed(piece))
            longest = max(longest, perf_counter() - t)
            gevent.sleep(0)
        total = perf_counter() - started
        stop.set()
        tick.join()
        assert events == [token, b"[DONE]"], "the event did not decode"
        lags.sort()
        runs.append(
            {
                "decode_s": total,
                "longest_feed_ms": longest * 1e3,
                "lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1e3,
                "lag_max_ms": lags[-1] * 1e3,
            }
        )
    best = min(runs, key=lambda r: r["decode_s"])
    return {
        "module": sse.__file__,
        "reads": len(pieces),
        "median_decode_s": statistics.median(r["decode_s"] for r in runs),
        **best,
    }


# What vLLM streams per token: one ``data:`` line of about 250 bytes, LF line ends.
_TYPICAL = (
    b'data: {"id":"chatcmpl-5f0d","object":"chat.completion.chunk","created":1717000000,'
    b'"model":"mock-llm","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,'
    b'"finish_reason":null,"token_ids":null}]}\n\n'
)


def _fast_path_ns(decoder_class: Any, reads: list[bytes], events: int) -> float:
    decoder = decoder_class()
    feed = decoder.feed
    started = perf_counter()
    for data in reads:
        feed(data)
    return (perf_counter() - started) / events * 1e9


def common_events(sides: dict[str, Path], rounds: int = 9, events: int = 100_000) -> None:
    """The fast path: ns per event with one event per read (the usual case) and with four
    per read (a client that fell behind). Both sides' decoders are loaded into this one
    process and measured in alternating rounds, so load on the machine hits both alike;
    each side's best round is shown."""
    classes = {name: _load_decoder(path, name) for name, path in sides.items()}
    cases = {"1 per read": [_TYPICAL] * events, "4 per read": [_TYPICAL * 4] * (events // 4)}
    print(f"common events (one 250-byte data line each), ns per event, best of {rounds} rounds:")
    for label, reads in cases.items():
        best = dict.fromkeys(classes, float("inf"))
        for _ in range(rounds):
            for name, decoder_class in classes.items():
                best[name] = min(best[name], _fast_path_ns(decoder_class, reads, events))
        line = "  ".join(f"{name} {ns:7.1f}" for name, ns in best.items())
        ratio = f"  after/before {best['after'] / best['before']:.3f}" if "before" in best else ""
        print(f"  {label:10}  {line}{ratio}")


def _load_decoder(checkout: Path, name: str) -> Any:
    """``checkout``'s ``SSEDecoder``, loaded from its file under a name of its own."""
    path = checkout / "sagellm_users" / "sse.py"
    spec = importlib.util.spec_from_file_location(f"_sse_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SSEDecoder


def run_side(checkout: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, __file__, "--child"]
    command += ["--size", str(args.size), "--read", str(args.read), "--repeat", str(args.repeat)]
    out = subprocess.run(
        command, check=False, env=env, cwd=checkout, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"{checkout}: the measurement failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    if not Path(result["module"]).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"{checkout}: measured {result['module']}, not this checkout's")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5_000_000, help="event bytes (5,000,000)")
    parser.add_argument("--read", type=int, default=1448, help="bytes per read (1,448)")
    parser.add_argument("--repeat", type=int, default=3, help="decodes per side; best shown")
    parser.add_argument("--against", type=Path, help="another checkout, measured beside")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.size, args.read, args.repeat)))
        return
    sides = {"after": ROOT} if args.against is None else {"before": args.against, "after": ROOT}
    results = {name: run_side(path, args) for name, path in sides.items()}
    reads = next(iter(results.values()))["reads"]
    print(f"one {args.size:,}-byte SSE event in {reads:,} reads of {args.read:,} bytes")
    print(f"{'':8} {'decode s':>10} {'longest feed ms':>16} {'lag p99 ms':>11} {'lag max ms':>11}")
    for name, r in results.items():
        print(
            f"{name:8} {r['decode_s']:10.3f} {r['longest_feed_ms']:16.2f} "
            f"{r['lag_p99_ms']:11.2f} {r['lag_max_ms']:11.2f}"
        )
    if "before" in results:
        b, a = results["before"], results["after"]
        print(
            f"{'after/before':12} decode {a['decode_s'] / b['decode_s']:.4f}, "
            f"longest feed {a['longest_feed_ms'] / b['longest_feed_ms']:.4f}, "
            f"lag p99 {a['lag_p99_ms'] / max(b['lag_p99_ms'], 1e-9):.4f}"
        )
    common_events(sides)


if __name__ == "__main__":
    main()
