"""Are merged percentiles numpy's, at scale? Seven workers, shipped through msgpack and JSON.

    .venv/bin/python bench/percentile_bench.py                   # 1,000,000 gaps, 100,000 requests
    .venv/bin/python bench/percentile_bench.py --gaps 200000     # quicker

Draws per-chunk gaps (lognormal around 10 ms, and bimodal 8 ms / 90 ms, which straddles
the switch from 10 us bins to relative ones at 50 ms) and per-request values (E2E of
the measured defect, 2.6 s with a few ms of spread; TTFT; TBT; output token counts), deals
them round-robin to ``--workers`` simulated workers, ships each worker's
``Distribution.to_wire()`` through msgpack and, separately, through JSON, merges on a
"master" with ``Distribution.from_wire`` and ``merge``, and compares p1, p5, p10, p25, p50,
p75, p90, p95, p99, p99.9 and p100 against numpy's linear percentile of all samples
(``numpy.percentile`` when numpy is installed, else the same formula written out).

Prints per distribution: samples, whether the merge is exact or binned, its bins, the
msgpack size of the merged wire form, the worst error as a share of the tolerance
max(0.1% of the value, 0.05 ms; values in seconds, token counts in tokens) and whether the
merge through each codec reads the same as one distribution fed every sample. Exit code 1
when any percentile misses the tolerance.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import random
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import msgpack

from sagellm_users._metrics.distribution import Distribution

numpy: ModuleType | None
try:  # the reference when installed (no dependency); the fallback is its "linear" method
    numpy = importlib.import_module("numpy")
except ImportError:
    numpy = None

PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)


def linear_percentiles(values: list[float], ps: tuple[float, ...]) -> list[float]:
    if numpy is not None:
        return [float(x) for x in numpy.percentile(values, ps)]
    data = sorted(values)
    out = []
    for p in ps:
        rank = (len(data) - 1) * p / 100
        low = math.floor(rank)
        high = min(low + 1, len(data) - 1)
        out.append(data[low] + (data[high] - data[low]) * (rank - low))
    return out


SOURCES: dict[str, tuple[str, Callable[[random.Random], float]]] = {
    "itl lognormal": ("gaps", lambda r: r.lognormvariate(math.log(0.01), 0.6)),
    "itl bimodal": ("gaps", lambda r: r.choice((0.008, 0.09)) * r.lognormvariate(0, 0.1)),
    "e2e": ("requests", lambda r: 2.5994 + r.gammavariate(1.5, 0.0019)),
    "ttft": ("requests", lambda r: r.lognormvariate(math.log(0.2), 0.7)),
    "tbt": ("requests", lambda r: 0.01 + r.gammavariate(2.0, 0.00002)),
    "output tokens": ("requests", lambda r: float(r.randint(16, 2048))),
}


def ship(dist: Distribution, codec: str) -> Distribution:
    wire = dist.to_wire()
    if codec == "msgpack":
        return Distribution.from_wire(msgpack.unpackb(msgpack.packb(wire)))
    return Distribution.from_wire(json.loads(json.dumps(wire)))


def check(
    name: str, make: Callable[[], Distribution], values: list[float], workers: int
) -> tuple[float, list[str]]:
    """The worst error over tolerance of the merged percentiles, and a printed row."""
    single = make()
    single.extend(values)
    parts = [make() for _ in range(workers)]
    for i, part in enumerate(parts):
        part.extend(values[i::workers])
    merged: dict[str, Distribution] = {}
    for codec in ("msgpack", "json"):
        master = make()
        for part in parts:
            master.merge(ship(part, codec))
        merged[codec] = master
    want = linear_percentiles(values, PERCENTILES)
    worst = 0.0
    for dist in merged.values():
        assert dist.count == len(values) and dist.min == min(values) and dist.max == max(values)
        for p, exact in zip(PERCENTILES, want, strict=True):
            got = dist.percentile(p)
            assert got is not None
            worst = max(worst, abs(got - exact) / max(1e-3 * abs(exact), 5e-5))
    same = all(
        dist.percentile(p) == single.percentile(p) for dist in merged.values() for p in PERCENTILES
    )
    wire: dict[str, Any] = merged["msgpack"].to_wire()
    bins = len(wire["bins"]["counts"]) if "bins" in wire else 0
    mode = "exact" if "exact" in wire else "binned"
    size = len(msgpack.packb(wire)) / 1024
    row = [name, f"{len(values):,}", mode, f"{bins:,}", f"{size:,.0f}", f"{worst:.3f}"]
    return worst, [*row, "yes" if same else "NO"]


def print_row(cells: list[str]) -> None:
    widths = (15, 11, 8, 8, 6, 9, 9)
    print(
        cells[0].ljust(widths[0])
        + "".join(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gaps", type=int, default=1_000_000, help="per gap distribution")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(22)
    reference = "numpy.percentile" if numpy is not None else "numpy's linear formula by hand"
    print(f"{args.workers} workers, merged through msgpack and JSON; reference: {reference}")
    header = ["distribution", "samples", "merge", "bins", "KiB", "err/tol", "= single"]
    print_row(header)
    worst = 0.0
    started = time.perf_counter()
    for name, (kind, draw) in SOURCES.items():
        n, make = (
            (args.gaps, Distribution.for_gaps) if kind == "gaps" else (args.requests, Distribution)
        )
        error, row = check(name, make, [draw(rng) for _ in range(n)], args.workers)
        worst = max(worst, error)
        print_row(row)
    seconds = time.perf_counter() - started
    verdict = "within" if worst <= 1 else "OUTSIDE"
    print(f"worst error {worst:.3f} of the tolerance: {verdict} it ({seconds:.0f} s)")
    return 0 if worst <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
