"""Soak: does the load generator's memory stay flat over a long run at a high request rate?

    .venv/bin/python bench/soak_bench.py                       # 300 s, one process
    .venv/bin/python bench/soak_bench.py --processes 2         # a master and 2 forked workers
    .venv/bin/python bench/soak_bench.py --duration 3600       # the full hour
    .venv/bin/python bench/soak_bench.py --records             # also write the records file
    .venv/bin/python bench/soak_bench.py --tls                 # over https (a private CA)

The real ``locust`` command with ``locustfiles/chat.py`` and no ``--host`` (so it starts
the embedded mock server on 127.0.0.1) runs ``--users`` users against a fast mock (5 ms
TTFT, 1 ms between tokens, ``--max-tokens 8``): about 2,000 requests/s on one core, with
every recording feature on (distributions, timeline, Locust rows, report; the records file
with ``--records``). Every ``--interval`` seconds the harness reads the resident memory
(RSS) of the Locust process, of each forked worker (``--processes N``) and of the mock
server, each apart. The first ``--warmup`` seconds are left out: imports, connection
pools, the live view's last minute, and the heap up to Python's first full garbage
collection, which at this rate comes about 65 s in. A least-squares line through the rest
gives each process's growth in MiB/hour, judged against ``--bound`` for every
load-generating process. The exit code is 1 when one grows faster than that (2 when the
run itself failed).

The live timeline grows by design until it holds its 1,800 one-second points, 30 minutes
into the test (measured: about 9.7 MiB/h until then, 1.6-1.9 MiB/h after, 4 MiB in all).
So a run long enough to measure 15 minutes past that point leaves the first 31 minutes out
and judges what follows against ``--bound`` alone: the hour does. A shorter run (by
default 300 s, leaving out 90 s or a fifth, whichever is longer) cannot tell that filling
from a leak, and is judged against ``--bound`` plus the timeline's filling rate: it finds a
gross leak (before its fixes the client grew by 51 MiB/h in this run), the hour a slow one.

Locust is told to leave the same warm-up out of its measurement window (``--warmup``), so
the request count and rate read from its JSON report cover the part the line was fitted
to. The records file (``--records``) goes to a temporary directory and is deleted at the
end; it grows on disk (about 1.4 MB/s at 2,000 requests/s: 5 GB in an hour), not in the
load generator's memory, since each line is written and flushed as its request finishes.

With ``--tls`` the mock serves https with a certificate from a private CA made for the run
(``trustme``, a test dependency), and Locust verifies it with ``--ca-bundle``: the TLS read
path is the one the client takes for https servers.

A slope's uncertainty shrinks with the measured span to the power 1.5 (the ``± s.e.``
column). The ``2nd half`` column fits the last half of the measured span alone: a structure
that fills up to a fixed size raises the whole line but not the second half's, while a true
leak raises both alike. The verdict is taken on the whole line, the stricter of the two.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from sagellm_users._metrics.timeline import MAX_POINTS

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
MOCK_MODULE = "sagellm_users.mock_server"
SHUTDOWN_GRACE_S = 60.0
WARMUP_MIN_S = 90.0
TIMELINE_FULL_S = MAX_POINTS + 60.0
"""Seconds from launch until the live timeline holds all its one-second points (the test
starts a few seconds after launch; a minute of margin)."""
TIMELINE_FILL_MIB_H = 10.0
"""What the timeline adds until then: 9.7 MiB/h fitted over 300-1800 s of the hour
(``--duration 3600 --csv``), 1.6-1.9 MiB/h after."""
JUDGED_AFTER_FILL_S = 900.0
"""A run judged without the timeline's filling measures at least this long after it."""


@dataclass
class Series:
    """One process's RSS over time: seconds since launch, MiB."""

    role: str
    pid: int
    times: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    judged: bool = True


@dataclass(frozen=True)
class Fit:
    """A least-squares line through RSS samples: slope in MiB per hour, its standard error."""

    slope_mib_h: float
    stderr_mib_h: float
    samples: int
    start_mib: float
    end_mib: float
    peak_mib: float

    @property
    def slope_kib_min(self) -> float:
        return self.slope_mib_h * 1024 / 60


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Ordinary least squares ``y = a + b x``: (slope b, intercept a, standard error of b).

    The standard error is ``nan`` with fewer than three points (no residual left)."""
    n = len(xs)
    if n != len(ys):
        raise ValueError(f"{n} x values but {len(ys)} y values")
    if n < 2:
        raise ValueError("a line needs at least two points")
    mean_x = math.fsum(xs) / n
    mean_y = math.fsum(ys) / n
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("all x values are equal")
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    if n < 3:
        return slope, intercept, math.nan
    residual = math.fsum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, intercept, math.sqrt(residual / (n - 2) / sxx)


def after_warmup(
    times: Sequence[float], values: Sequence[float], warmup_s: float
) -> tuple[list[float], list[float]]:
    """The samples taken at or after ``warmup_s`` (same time origin as ``times``)."""
    kept = [(t, v) for t, v in zip(times, values, strict=True) if t >= warmup_s]
    return [t for t, _ in kept], [v for _, v in kept]


def default_warmup(duration_s: float) -> float:
    """Past the timeline's filling when the run is long enough to measure 15 minutes after
    it; else 90 s (past the first full garbage collection at the default rate) or a fifth."""
    if duration_s >= TIMELINE_FULL_S + JUDGED_AFTER_FILL_S:
        return TIMELINE_FULL_S
    return max(WARMUP_MIN_S, duration_s / 5)


def filling_allowance(warmup_s: float) -> float:
    """MiB/h the verdict allows on top of ``--bound``: the timeline's filling, when the
    measured span starts before the timeline is full."""
    return 0.0 if warmup_s >= TIMELINE_FULL_S else TIMELINE_FILL_MIB_H


def second_half_start(warmup_s: float, duration_s: float) -> float:
    """Where the last half of the measured span begins (the ``2nd half`` column)."""
    return warmup_s + (duration_s - warmup_s) / 2


def fit_rss(series: Series, warmup_s: float) -> Fit | None:
    """The growth of one process after warm-up; None with fewer than two samples left."""
    times, rss = after_warmup(series.times, series.rss_mib, warmup_s)
    if len(times) < 2 or times[0] == times[-1]:
        return None
    slope_per_s, _, stderr_per_s = fit_line(times, rss)
    return Fit(
        slope_mib_h=slope_per_s * 3600,
        stderr_mib_h=stderr_per_s * 3600,
        samples=len(times),
        start_mib=rss[0],
        end_mib=rss[-1],
        peak_mib=max(rss),
    )


def verdict(
    fits: dict[str, Fit | None], bound_mib_h: float, allowance_mib_h: float = 0.0
) -> tuple[bool, str]:
    """Flat when every judged process grows slower than the bound plus the allowance (and
    each was measured)."""
    missing = [role for role, fit in fits.items() if fit is None]
    if missing or not fits:
        return False, f"not measured: {', '.join(missing) or 'no load-generating process'}"
    grown = {role: fit.slope_mib_h for role, fit in fits.items() if fit is not None}
    worst = max(grown, key=lambda role: grown[role])
    slope = grown[worst]
    limit = bound_mib_h + allowance_mib_h
    bound = f"bound {bound_mib_h:g}" + (f" + {allowance_mib_h:g}" if allowance_mib_h else "")
    why = ", the timeline filling" if allowance_mib_h else ""
    if slope < limit:
        return True, f"flat: slope {slope:.2f} MiB/h < {bound} MiB/h ({worst}{why})"
    return False, f"GROWS: slope {slope:.2f} MiB/h >= {bound} MiB/h ({worst}{why})"


class Stop(Exception):
    """SIGTERM to the harness: clean up as on Ctrl-C."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


class Sampler:
    """Finds the Locust process's children as they appear and samples every one's RSS."""

    def __init__(self, locust: psutil.Process, processes: int) -> None:
        self.locust = locust
        self.series: dict[int, Series] = {
            locust.pid: Series("master" if processes else "locust", locust.pid)
        }
        self._handles: dict[int, psutil.Process] = {locust.pid: locust}
        self._workers = 0

    def mock_handles(self) -> list[psutil.Process]:
        return [self._handles[pid] for pid, s in self.series.items() if s.role == "mock"]

    def sample(self, t: float) -> None:
        self._discover()
        for pid, handle in list(self._handles.items()):
            rss = _rss(handle)
            if self.series[pid].role == "mock":  # with --workers N, its own children too
                rss += sum(_rss(child) for child in _children(handle, recursive=True))
            if rss:
                self.series[pid].times.append(t)
                self.series[pid].rss_mib.append(rss / MIB)

    def _discover(self) -> None:
        for child in _children(self.locust, recursive=False):
            if child.pid in self._handles:
                continue
            try:
                is_mock = MOCK_MODULE in " ".join(child.cmdline())
            except psutil.Error:
                continue
            if is_mock:
                role, judged = "mock", False
            else:  # --processes forks workers: the same command line as the master
                self._workers += 1
                role, judged = f"worker {self._workers}", True
            self._handles[child.pid] = child
            self.series[child.pid] = Series(role, child.pid, judged=judged)


def _children(proc: psutil.Process, *, recursive: bool) -> list[psutil.Process]:
    try:
        return list(proc.children(recursive=recursive))
    except psutil.Error:
        return []


def _rss(proc: psutil.Process) -> int:
    try:
        return int(proc.memory_info().rss)
    except psutil.Error:
        return 0


def tls_files(work: Path) -> tuple[list[str], list[str]]:
    """A private CA and a certificate for 127.0.0.1 in ``work``: (mock args, locust args)."""
    try:
        import trustme  # noqa: PLC0415 - a test dependency, needed by --tls only
    except ImportError:
        sys.exit("--tls needs trustme (a test dependency): pip install -e '.[dev]'")
    ca = trustme.CA()
    served, bundle = work / "served.pem", work / "ca.pem"  # the key and chain in one file
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(served))
    ca.cert_pem.write_to_path(str(bundle))
    return ["--tls-cert", str(served), "--tls-key", str(served)], ["--ca-bundle", str(bundle)]


def locust_command(args: argparse.Namespace, work: Path, warmup_s: float) -> list[str]:
    mock_args = shlex.split(args.mock_args)
    tls_args: list[str] = []
    if args.tls:
        tls_mock_args, tls_args = tls_files(work)
        mock_args += tls_mock_args
    cmd = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "chat.py"),
        "--headless", "--only-summary", "-u", str(args.users), "-r", str(args.users),
        "-t", f"{math.ceil(args.duration)}s", "--mock-args", shlex.join(mock_args), *tls_args,
        "--max-tokens", str(args.max_tokens), "--ignore-eos",
        "--warmup", f"{warmup_s:g}s", "--llm-report", str(work / "report.json"),
    ]  # fmt: skip
    if args.processes:
        cmd += ["--processes", str(args.processes)]
    if args.records:
        cmd += ["--llm-records", str(work / "records.jsonl")]
    return cmd


def run(args: argparse.Namespace, work: Path) -> tuple[Sampler, int, str]:
    """Start locust, sample for ``--duration`` seconds, wait for it to exit; stop it if
    anything interrupts. Returns the samples, locust's exit code and its log's tail."""
    warmup_s = args.warmup
    log_path = work / "locust.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            locust_command(args, work, warmup_s),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the harness only: it stops locust itself
        )
    sampler = Sampler(psutil.Process(proc.pid), args.processes)
    try:
        start = time.monotonic()
        # The test itself starts a second or two after launch, so sampling ends before
        # locust's run time does: no shutdown work in the samples.
        ticks = int(args.duration / args.interval)
        for k in range(ticks + 1):
            if proc.poll() is not None:
                break
            sampler.sample(time.monotonic() - start)
            if k < ticks:  # pacing the samples (a fixed schedule, so no drift)
                time.sleep(max(0.0, start + (k + 1) * args.interval - time.monotonic()))
        code = proc.wait(timeout=SHUTDOWN_GRACE_S)
    finally:
        stop(proc, sampler.mock_handles())
    tail = log_path.read_text(errors="replace").splitlines()[-40:]
    return sampler, code, "\n".join(tail)


def stop(proc: subprocess.Popen[bytes], mocks: list[psutil.Process]) -> None:
    """Stop locust as Ctrl-C would (it stops its users, workers and mock server), then kill
    whatever of its process group and its mock server is still there."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # forked workers share the group
    proc.wait()
    for mock in mocks:  # its own session; it also exits when locust's end of its stdin closes
        with contextlib.suppress(psutil.Error):
            mock.kill()  # psutil checks that the pid is still the same process


def read_report(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def print_results(
    args: argparse.Namespace, sampler: Sampler, report: dict[str, Any] | None, work: Path
) -> bool:
    warmup_s = args.warmup
    print(
        f"soak: locust -f locustfiles/chat.py -u {args.users} --max-tokens {args.max_tokens} "
        f"--mock-args {shlex.quote(args.mock_args)}"
        f"{f' --processes {args.processes}' if args.processes else ''}"
        f"{' --llm-records' if args.records else ''}{' over https' if args.tls else ''}; "
        f"{args.duration:g} s, RSS every "
        f"{args.interval:g} s, first {warmup_s:g} s left out"
    )
    print(
        f"{'process':<10} {'pid':>8} {'samples':>8} {'RSS start':>10} {'RSS end':>9} "
        f"{'peak':>7} {'slope MiB/h':>12} {'± s.e.':>7} {'KiB/min':>8} {'2nd half':>9}"
    )
    second_half_s = second_half_start(warmup_s, args.duration)
    judged: dict[str, Fit | None] = {}
    for series in sampler.series.values():
        fit = fit_rss(series, warmup_s)
        if series.judged:
            judged[series.role] = fit
        name = series.role + ("" if series.judged else "*")
        if fit is None:
            print(f"{name:<10} {series.pid:>8} {len(series.times):>8}  (too few samples)")
            continue
        print(
            f"{name:<10} {series.pid:>8} {fit.samples:>8} {fit.start_mib:>6.1f} MiB "
            f"{fit.end_mib:>5.1f} MiB {fit.peak_mib:>7.1f} {fit.slope_mib_h:>12.2f} "
            f"{fit.stderr_mib_h:>7.2f} {fit.slope_kib_min:>8.2f} "
            f"{_slope_text(fit_rss(series, second_half_s)):>9}"
        )
    print("* not judged: the mock server is the system under test here, not the load generator")
    if report is not None:
        total, window = report["total"], report["window"]
        print(
            f"requests: {total['requests']:,} in the {window['seconds']:.1f} s after warm-up "
            f"({window['excluded_requests']:,} in warm-up), {total['request_throughput']:,.0f} "
            f"req/s, {total['failed']:,} failed"
        )
    else:
        print("requests: no report was written")
    records = sorted(work.glob("records*.jsonl"))
    if records:
        size = sum(path.stat().st_size for path in records)
        print(
            f"records file: {size / MIB:,.0f} MiB on disk ({len(records)} file(s)), "
            "written line by line as requests finish, not held in memory"
        )
    flat, line = verdict(judged, args.bound, filling_allowance(warmup_s))
    print(f"verdict: {line}")
    return flat


def _slope_text(fit: Fit | None) -> str:
    return "-" if fit is None else f"{fit.slope_mib_h:.2f}"


def write_csv(path: Path, sampler: Sampler) -> None:
    with path.open("w") as out:
        out.write("t_s,process,pid,rss_mib\n")
        for s in sampler.series.values():
            for t, rss in zip(s.times, s.rss_mib, strict=True):
                out.write(f"{t:.3f},{s.role},{s.pid},{rss:.3f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (3600: an hour)")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--mock-args", default="--ttft-ms 5 --tbt-ms 1")
    parser.add_argument(
        "--processes", type=int, default=0, help="locust --processes N (0: one process)"
    )
    parser.add_argument("--records", action="store_true", help="also write --llm-records")
    parser.add_argument("--tls", action="store_true", help="over https, verified (a private CA)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument(
        "--warmup",
        type=float,
        help=f"seconds left out (default: {TIMELINE_FULL_S:g} when the run lasts "
        f"{TIMELINE_FULL_S + JUDGED_AFTER_FILL_S:g} s or more, else 90 or duration/5, the longer)",
    )
    parser.add_argument("--bound", type=float, default=8.0, help="MiB/hour a process may grow")
    parser.add_argument(
        "--csv", type=Path, help="also write every sample here (t_s,process,pid,rss_mib)"
    )
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = default_warmup(args.duration)
    if args.duration - args.warmup < 10 * args.interval or args.warmup < 0:
        parser.error("--duration must exceed --warmup by at least 10 sample intervals")
    signal.signal(signal.SIGTERM, _raise_stop)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        try:
            sampler, code, tail = run(args, work)
        except (KeyboardInterrupt, Stop):
            sys.exit("interrupted: locust and its mock server were stopped")
        except subprocess.TimeoutExpired:
            sys.exit(f"locust did not exit within {SHUTDOWN_GRACE_S:g} s of its run time")
        if code != 0:
            print(f"locust exited with {code}; the end of its output:\n{tail}", file=sys.stderr)
        flat = print_results(args, sampler, read_report(work / "report.json"), work)
    if args.csv:
        write_csv(args.csv, sampler)
    sys.exit(2 if code != 0 else 0 if flat else 1)


if __name__ == "__main__":
    main()
