"""What recording a sample in a Distribution costs, and how close its percentiles come.

    .venv/bin/python bench/sketch_bench.py                        # this checkout
    .venv/bin/python bench/sketch_bench.py --against /tmp/old     # beside another checkout

Per sample, in microseconds and as a multiple of a plain list append (the floor):
``Distribution.add`` of per-request values (lognormal, median 1 s) and
``Distribution.extend`` of a request's gaps at a time (256 per batch, lognormal, median
10 ms, into ``Distribution.for_gaps()``), each while a distribution is still exact (up to
its exact limit: 65,536 values, 1,024 gaps) and in a long run (a distribution already past
it: what every later sample of an hour's run costs); and HdrHistogram when the
``hdrhistogram`` package is installed. The last
column is the worst percentile error over p1..p99.99 against exact linear interpolation,
as a share of the contract's tolerance, max(0.1% of the value, 0.05 ms): under 1 meets it.

``--against DIR`` measures the sagellm_users package of another checkout the same way, for
a before/after comparison in one run: make one with ``git archive <commit> | tar -x -C DIR``.
Each round runs both sides in child processes, alternately, so drifting machine load hits
both alike; the table gives each side's median over the rounds and the ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:  # optional: only for comparison
    from hdrh.histogram import HdrHistogram
except ImportError:
    HdrHistogram = None

PERCENTILES = (1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99)
ROOT = Path(__file__).resolve().parents[1]


def exact(sorted_values: list[float], p: float) -> float:
    rank = (len(sorted_values) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def worst_error(read: Callable[[float], float], values: list[float]) -> float:
    """The worst percentile error as a share of max(0.1% of the value, 0.05 ms)."""
    data = sorted(values)
    return max(
        abs(read(p) - exact(data, p)) / max(1e-3 * abs(exact(data, p)), 5e-5) for p in PERCENTILES
    )


def timed(setup: Callable[[], Any], run: Callable[[Any], None], n: int, repeat: int) -> float:
    """Best of ``repeat`` runs, in microseconds per sample; setup is not timed."""
    best = math.inf
    for _ in range(repeat):
        state = setup()
        start = time.perf_counter()
        run(state)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def add_each(dist: Any, batch: list[float]) -> None:
    add = dist.add
    for v in batch:
        add(v)


def extend_each(dist: Any, batch: list[float]) -> None:
    for start in range(0, len(batch), 256):  # one request's gaps at a time
        dist.extend(batch[start : start + 256])


def costs(
    label: str,
    factory: Callable[[], Any],
    fill: Callable[[Any, list[float]], None],
    *,
    limit: int,
    batch: list[float],
    repeat: int,
) -> dict[str, tuple[float, float | None]]:
    """One way of recording: while exact (fresh distributions, each filled to its limit)
    and past the limit (one distribution already over it, taking every sample)."""
    first, copies = batch[:limit], max(1, len(batch) // limit)

    def fresh() -> list[Any]:
        return [factory() for _ in range(copies)]

    def fill_fresh(dists: list[Any]) -> None:
        for dist in dists:
            fill(dist, first)

    def past_limit() -> Any:
        dist = factory()
        dist.extend([1.0] * (limit + 1))
        return dist

    def fill_all(dist: Any) -> None:
        fill(dist, batch)

    whole = factory()
    fill(whole, batch)
    return {
        f"{label}, while exact": (timed(fresh, fill_fresh, copies * len(first), repeat), 0.0),
        f"{label}, past the limit": (
            timed(past_limit, fill_all, len(batch), repeat),
            worst_error(lambda p: whole.percentile(p) or 0.0, batch),
        ),
    }


def measure(samples: int, repeat: int) -> dict[str, Any]:
    """Cost (us/sample) and worst error of each row, for the package on sys.path."""
    import sagellm_users  # noqa: PLC0415 - the package --against points at, not ours
    from sagellm_users._metrics import distribution  # noqa: PLC0415

    make = distribution.Distribution
    # Checkouts before per-chunk gaps had their own limit used the one default for both.
    make_gaps = getattr(make, "for_gaps", make)
    limits = {"values": distribution.EXACT_LIMIT}
    limits["gaps"] = getattr(distribution, "GAP_EXACT_LIMIT", limits["values"])
    rng = random.Random(42)
    data = {
        "values": [rng.lognormvariate(0.0, 0.5) for _ in range(samples)],
        "gaps": [rng.lognormvariate(math.log(0.01), 0.8) for _ in range(samples)],
    }

    def append_all(sink: list[float]) -> None:
        for v in data["values"]:
            sink.append(v)

    rows: dict[str, tuple[float, float | None]] = {
        "list.append (floor)": (timed(list, append_all, samples, repeat), None)
    }
    for label, factory, fill, kind in (
        ("add", make, add_each, "values"),
        ("extend 256", make_gaps, extend_each, "gaps"),
    ):
        rows |= costs(label, factory, fill, limit=limits[kind], batch=data[kind], repeat=repeat)
    if HdrHistogram is not None:
        gaps = data["gaps"]
        hist = HdrHistogram(1, 3_600_000_000, 3)

        def record(h: Any) -> None:
            for v in gaps:
                h.record_value(int(v * 1e6))

        cost = timed(lambda: HdrHistogram(1, 3_600_000_000, 3), record, samples, repeat)
        record(hist)
        error = worst_error(lambda p: hist.get_value_at_percentile(p) / 1e6, gaps)
        rows["HdrHistogram (3 digits)"] = (cost, error)
    return {"package": sagellm_users.__file__, "limits": limits, "rows": rows}


def run_side(root: Path, samples: int, repeat: int) -> dict[str, Any]:
    """``measure`` in a child process importing sagellm_users from ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    args = [sys.executable, str(Path(__file__).resolve()), "--json"]
    args += ["--samples", str(samples), "--repeat", str(repeat)]
    out = subprocess.run(args, env=env, cwd=root, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    expected = (root / "sagellm_users" / "__init__.py").resolve()
    if Path(result["package"]).resolve() != expected:
        raise SystemExit(f"measured {result['package']}, not {expected}")
    return result


def print_one(result: dict[str, Any], samples: int) -> None:
    rows = result["rows"]
    floor = rows["list.append (floor)"][0]
    limits = result["limits"]
    print(f"{samples} samples a row (exact limits: values {limits['values']}, ", end="")
    print(f"gaps {limits['gaps']}); best of runs")
    print(f"{'':<30}{'us/sample':>10}{'x list':>8}{'err/tol':>9}")
    for name, (cost, error) in rows.items():
        error_text = "-" if error is None else f"{error:.3f}"
        print(f"{name:<30}{cost:>10.3f}{cost / floor:>8.1f}{error_text:>9}")


def print_pair(here: list[dict[str, Any]], there: list[dict[str, Any]], against: Path) -> None:
    print(f"this checkout (exact limits {here[0]['limits']}) against {against} ", end="")
    print(f"({there[0]['limits']}); medians of {len(here)} rounds")
    print(f"{'':<30}{'us here':>9}{'us there':>10}{'ratio':>7}{'err/tol':>9}{'there':>8}")
    for name in here[0]["rows"]:
        if name not in there[0]["rows"]:
            continue
        mine = statistics.median(r["rows"][name][0] for r in here)
        theirs = statistics.median(r["rows"][name][0] for r in there)
        errors = [r[0]["rows"][name][1] for r in (here, there)]
        text = ["-" if e is None else f"{e:.3f}" for e in errors]
        print(f"{name:<30}{mine:>9.3f}{theirs:>10.3f}{mine / theirs:>7.2f}{text[0]:>9}{text[1]:>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best counts")
    parser.add_argument("--against", type=Path, help="another checkout to measure beside this")
    parser.add_argument("--rounds", type=int, default=5, help="alternations with --against")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.samples, args.repeat)))
        return 0
    if args.against is None:
        print_one(run_side(ROOT, args.samples, args.repeat), args.samples)
        return 0
    here: list[dict[str, Any]] = []
    there: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        here.append(run_side(ROOT, args.samples, args.repeat))
        there.append(run_side(args.against.resolve(), args.samples, args.repeat))
    print_pair(here, there, args.against)
    return 0


if __name__ == "__main__":
    sys.exit(main())
