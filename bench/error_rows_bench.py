"""A gateway failing every request with a unique body: the client's memory and output.

    .venv/bin/python bench/error_rows_bench.py                       # 20 s, 32 users
    .venv/bin/python bench/error_rows_bench.py --against /tmp/before # side by side

Runs the real ``locust`` command (``locustfiles/chat.py``, headless) against the embedded
mock with ``--error-rate-502 1``: every answer is a 502 whose body names its own request id,
trace id and timestamp, as gateways write them. Prints, for each checkout, the failures
counted, the locust process's peak RSS (``wait4``'s, at exit), the size
of what it printed on stderr (Locust's error report is there) and the rows of that report.
With ``--against DIR`` both checkouts run at once, so they share the machine alike.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    checkout: Path
    failures: int
    peak_rss_mib: float
    stderr_bytes: int
    report_rows: int


def _start(checkout: Path, args: argparse.Namespace, out: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "locust", "-f", "locustfiles/chat.py", "--headless"]
    command += ["-u", str(args.users), "-r", str(args.users), "-t", f"{args.duration}s"]
    command += ["--only-summary", "--mock-args", "--error-rate-502 1 --ttft-ms 1"]
    with (out / "stdout").open("wb") as stdout, (out / "stderr").open("wb") as stderr:
        return subprocess.Popen(
            command, cwd=checkout, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL
        )


def _peak_rss(process: subprocess.Popen[bytes]) -> float:
    """The process's peak RSS in MiB, from the kernel when it is reaped (``wait4``), so the
    error report printed at exit counts too."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024


def _result(checkout: Path, out: Path, peak: float) -> Result:
    stdout = (out / "stdout").read_text(errors="replace")
    stderr = (out / "stderr").read_text(errors="replace")
    failed = re.search(r"failed (\d+)", stdout)
    report = stderr.split("Error report", 1)[1].splitlines() if "Error report" in stderr else []
    separators = [i for i, line in enumerate(report) if line.startswith("-----")]
    rows = separators[1] - separators[0] - 1 if len(separators) >= 2 else 0
    failures = int(failed.group(1)) if failed else 0
    return Result(checkout, failures, peak, len(stderr.encode()), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--against", type=Path, help="another checkout, run beside this one")
    args = parser.parse_args()
    checkouts = [ROOT] + ([args.against.resolve()] if args.against else [])
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / str(i) for i in range(len(checkouts))]
        for out in outs:
            out.mkdir()
        processes = [_start(c, args, o) for c, o in zip(checkouts, outs, strict=True)]
        peaks = [_peak_rss(p) for p in processes]
        results = [_result(c, o, p) for c, o, p in zip(checkouts, outs, peaks, strict=True)]
    print(f"{'checkout':<40} {'failures':>9} {'peak RSS MiB':>13} {'stderr KB':>10} {'rows':>6}")
    for r in results:
        print(
            f"{str(r.checkout)[-40:]:<40} {r.failures:>9} {r.peak_rss_mib:>13.0f} "
            f"{r.stderr_bytes / 1e3:>10.1f} {r.report_rows:>6}"
        )
    if len(results) == 2 and results[0].peak_rss_mib:
        this, other = results
        print(
            f"peak RSS, {other.checkout.name} / this: {other.peak_rss_mib / this.peak_rss_mib:.2f}"
        )


if __name__ == "__main__":
    main()
