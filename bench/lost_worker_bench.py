"""How long a master takes to name a worker killed with SIGKILL (docs/distributed.md).

    .venv/bin/python bench/lost_worker_bench.py [--trials 5]

Each trial runs the real commands: the embedded mock of one ``locust --master --headless``
with two ``locust --worker`` processes, two users each; once the test runs, one worker is
killed with SIGKILL and the harness times, from the kill, the master's
``sagellm: worker ... stopped sending heartbeats`` line. Prints each delay and the range.

Where the delay comes from: a worker sends a heartbeat once a second; the master's count
for it starts at Locust's ``HEARTBEAT_LIVENESS`` (3) at each heartbeat, goes down by one
at each of its own once-a-second ticks, and the worker is marked missing at the tick after
the count fell below 0: 4 to 5 s after the last heartbeat, which came 0 to 1 s before the
kill. The watch then sees it within its poll interval.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAT = str(ROOT / "locustfiles" / "chat.py")


def _lines(process: subprocess.Popen[str], into: queue.Queue[tuple[float, str]]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        into.put((time.monotonic(), line))


def _start(*args: str, log: bool = False) -> subprocess.Popen[str]:
    """``locust ARGS``; with ``log``, its log (stderr) is piped to be read."""
    return subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", CHAT, *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # Locust's tables; its log (read here) is on stderr
        stderr=subprocess.PIPE if log else subprocess.DEVNULL,
        text=True,
    )


def _wait_for(lines: queue.Queue[tuple[float, str]], text: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(
                f"no {text!r} within {timeout} s; the master said:\n" + "".join(seen[-20:])
            )
        try:
            at, line = lines.get(timeout=left)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return at


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def trial(port: int) -> float:
    master = _start(
        "--master", "--headless", "-u", "4", "-r", "4", "-t", "60s", "--max-tokens", "16",
        "--expect-workers", "2", "--master-bind-port", str(port), log=True,
    )  # fmt: skip
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    threading.Thread(target=_lines, args=(master, lines), daemon=True).start()
    workers = [_start("--worker", "--master-port", str(port)) for _ in range(2)]
    try:
        _wait_for(lines, "All users spawned", 60)
        time.sleep(2)  # the test runs, heartbeats flow
        killed = time.monotonic()
        workers[0].send_signal(signal.SIGKILL)
        named = _wait_for(lines, "stopped sending heartbeats", 30)
        return named - killed
    finally:
        for process in [master, *workers]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [master, *workers]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    delays = []
    for i in range(args.trials):
        delay = trial(_free_port())
        delays.append(delay)
        print(f"trial {i + 1}: named {delay:.2f} s after SIGKILL", flush=True)
    print(
        f"lost-worker detection: min {min(delays):.2f} s, median "
        f"{statistics.median(delays):.2f} s, max {max(delays):.2f} s over {len(delays)} trials"
    )


if __name__ == "__main__":
    main()
