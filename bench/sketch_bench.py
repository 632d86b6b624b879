"""What recording a sample costs, and how accurate each distribution is, side by side.

    .venv/bin/python bench/sketch_bench.py            # 200k lognormal latency samples

Compares, per sample added: a plain list append (the floor), the ``Distribution`` the
metrics engine uses (exact up to 1,024 samples, then DDSketch stores), ``ddsketch.DDSketch``
itself, and HdrHistogram when the ``hdrhistogram`` package is installed. Prints the cost
in microseconds and as a ratio to the list, and the worst relative error over percentiles
p1..p99.99 against exact linear interpolation.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from ddsketch import DDSketch

from sagellm_users.metrics.distribution import RELATIVE_ACCURACY, Distribution

try:  # optional: only for comparison
    from hdrh.histogram import HdrHistogram
except ImportError:
    HdrHistogram = None

PERCENTILES = (1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99)


def exact(values: list[float], p: float) -> float:
    data = sorted(values)
    rank = (len(data) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def timed(add_all: Callable[[], None], n: int, repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        add_all()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    args = parser.parse_args()
    rng = random.Random(42)
    values = [rng.lognormvariate(math.log(0.01), 0.8) for _ in range(args.samples)]
    n = len(values)
    rows: list[tuple[str, float, float | None]] = []

    def run_list() -> None:
        sink: list[float] = []
        for v in values:
            sink.append(v)

    rows.append(("list.append (floor)", timed(run_list, n), 0.0))

    holder: dict[str, object] = {}

    def run_distribution() -> None:
        dist = Distribution()
        for v in values:
            dist.add(v)
        holder["dist"] = dist

    cost = timed(run_distribution, n)
    dist = holder["dist"]
    assert isinstance(dist, Distribution)
    err = max(
        abs((dist.percentile(p) or 0) - exact(values, p)) / exact(values, p) for p in PERCENTILES
    )
    rows.append(("Distribution.add (engine)", cost, err))

    def run_extend() -> None:
        batched = Distribution()
        for start in range(0, n, 256):  # one request's ITL gaps at a time
            batched.extend(values[start : start + 256])

    rows.append(("Distribution.extend, 256/batch", timed(run_extend, n), err))

    def run_ddsketch() -> None:
        sketch = DDSketch(RELATIVE_ACCURACY)
        for v in values:
            sketch.add(v)
        holder["sketch"] = sketch

    cost = timed(run_ddsketch, n)
    sketch = holder["sketch"]
    assert isinstance(sketch, DDSketch)
    err = max(
        abs((sketch.get_quantile_value(p / 100) or 0.0) - exact(values, p)) / exact(values, p)
        for p in PERCENTILES
    )
    rows.append(("ddsketch.DDSketch", cost, err))

    if HdrHistogram is None:
        rows.append(("HdrHistogram (not installed)", math.nan, None))
    else:

        def run_hdr() -> None:
            hist = HdrHistogram(1, 3_600_000_000, 2)
            for v in values:
                hist.record_value(int(v * 1e6))
            holder["hdr"] = hist

        cost = timed(run_hdr, n)
        hist: Any = holder["hdr"]
        err = max(
            abs(hist.get_value_at_percentile(p) / 1e6 - exact(values, p)) / exact(values, p)
            for p in PERCENTILES
        )
        rows.append(("HdrHistogram (2 digits)", cost, err))

    floor = rows[0][1]
    print(f"{n} lognormal samples (median 10 ms); cost per add, best of 3")
    print(f"{'':<30}{'us/add':>8}{'x list':>9}{'worst err':>12}")
    for name, cost, error in rows:
        error_text = "-" if error is None else f"{error:.3%}"
        print(f"{name:<30}{cost:>8.3f}{cost / floor:>9.1f}{error_text:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
