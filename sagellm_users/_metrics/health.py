"""The load generator's own health: is it keeping up, or are its timestamps late?

Every timestamp a worker takes waits for its one event loop. When the loop is busy (CPU
short, or a blocking call in a task) a chunk that arrived on time is stamped when the loop
gets to it, and a request meant to start now starts later: TTFT and ITL look worse than the
server made them, and the test quietly measures the client. So each load-generating
process measures itself, and the report says whether its numbers can be trusted:

* **event-loop lag**: a probe greenlet asks to wake every :data:`PROBE_INTERVAL_S` and
  records how late it woke. Reads and sends wait for the same loop, so this is how late
  their timestamps can be.
* **start lag**: per request, how long after its intended start (the end of the user's
  wait) it actually started; the closed-loop face of coordinated omission.
* **CPU**: the process's CPU time over wall time (one core is 100%), mean and peak per
  second. One process runs on one core however many the machine has.

A process is over its limit when its lag p99 exceeds :data:`LAG_LIMIT_S` or its CPU peaks
above :data:`CPU_LIMIT`. The advice sizes the run for :data:`TARGET_CPU` per process, where
the benchmarks in ``bench/`` show event delay p99 staying under a millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sagellm_users._metrics.distribution import Distribution

__all__ = [
    "CPU_LIMIT",
    "LAG_LIMIT_S",
    "PROBE_INTERVAL_S",
    "TARGET_CPU",
    "ClientHealth",
    "HealthVerdict",
    "ProcessHealth",
]

PROBE_INTERVAL_S = 0.02
"""How often the probe asks to wake: 50 samples a second, a few microseconds of CPU."""
LAG_LIMIT_S = 0.005
"""Event-loop lag p99 above this makes TTFT and ITL untrustworthy at the millisecond."""
CPU_LIMIT = 0.9
"""A process above this share of its core is about to fall behind (Locust warns here too)."""
TARGET_CPU = 0.6
"""Share of a core to plan each process for when advising how many to run."""


@dataclass
class ProcessHealth:
    """One process's self-measurements; merges, so a worker can ship deltas."""

    loop_lag: Distribution = field(default_factory=Distribution)
    start_lag: Distribution = field(default_factory=Distribution)
    cpu_s: float = 0.0
    """CPU seconds (user + system) used while measured."""
    wall_s: float = 0.0
    """Wall seconds measured."""
    cpu_peak: float = 0.0
    """Highest one-second CPU share seen."""

    @property
    def cpu_mean(self) -> float | None:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else None

    def add_cpu(self, cpu_s: float, wall_s: float) -> None:
        """One CPU sample: ``cpu_s`` CPU seconds used over ``wall_s`` wall seconds."""
        if wall_s <= 0:
            return
        self.cpu_s += cpu_s
        self.wall_s += wall_s
        self.cpu_peak = max(self.cpu_peak, cpu_s / wall_s)

    def merge(self, other: ProcessHealth) -> None:
        self.loop_lag.merge(other.loop_lag)
        self.start_lag.merge(other.start_lag)
        self.cpu_s += other.cpu_s
        self.wall_s += other.wall_s
        self.cpu_peak = max(self.cpu_peak, other.cpu_peak)

    def over_limit(self) -> list[str]:
        """What is wrong with this process, one phrase each (empty when healthy)."""
        problems = []
        lag = self.loop_lag.percentile(99)
        if lag is not None and lag > LAG_LIMIT_S:
            problems.append(f"event-loop lag p99 {lag * 1e3:.1f} ms")
        if self.cpu_peak > CPU_LIMIT:
            problems.append(f"CPU at {self.cpu_peak:.0%} of a core")
        return problems

    def to_wire(self) -> dict[str, Any]:
        return {
            "loop_lag": self.loop_lag.to_wire(),
            "start_lag": self.start_lag.to_wire(),
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
            "cpu_peak": self.cpu_peak,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ProcessHealth:
        return cls(
            loop_lag=Distribution.from_wire(data["loop_lag"]),
            start_lag=Distribution.from_wire(data["start_lag"]),
            cpu_s=float(data["cpu_s"]),
            wall_s=float(data["wall_s"]),
            cpu_peak=float(data["cpu_peak"]),
        )


@dataclass(frozen=True)
class HealthVerdict:
    """Whether the client's numbers can be trusted, and what to do when not."""

    trustworthy: bool
    processes: int
    processes_needed: int
    warnings: tuple[str, ...]


class ClientHealth:
    """:class:`ProcessHealth` per load-generating process (worker id, or "local")."""

    def __init__(self) -> None:
        self.processes: dict[str, ProcessHealth] = {}

    def process(self, name: str) -> ProcessHealth:
        health = self.processes.get(name)
        if health is None:
            health = self.processes[name] = ProcessHealth()
        return health

    def merge_wire(self, name: str, data: dict[str, Any]) -> None:
        self.process(name).merge(ProcessHealth.from_wire(data))

    def reset(self) -> None:
        self.processes.clear()

    def total(self) -> ProcessHealth:
        """Every process merged (CPU peak is the highest of any one process)."""
        total = ProcessHealth()
        for health in self.processes.values():
            total.merge(health)
        return total

    def verdict(self) -> HealthVerdict:
        n = len(self.processes)
        warnings: list[str] = []
        demand = 0.0  # cores of work, summed over processes
        short_of_cpu = False
        for name, health in sorted(self.processes.items()):
            mean = health.cpu_mean or 0.0
            demand += mean
            problems = health.over_limit()
            if not problems:
                continue
            cpu_bound = health.cpu_peak > CPU_LIMIT or mean > TARGET_CPU
            short_of_cpu |= cpu_bound
            where = "" if name == "local" else f" on worker {name}"
            cause = (
                "it is short of CPU"
                if cpu_bound
                else "CPU is not the cause, so look for blocking calls in the locustfile"
            )
            warnings.append(
                f"the load generator is behind{where} ({', '.join(problems)}): {cause}; "
                "its timings can be late by that much"
            )
        needed = max(n + 1, math.ceil(demand / TARGET_CPU)) if short_of_cpu else n
        if needed > n:
            warnings.append(
                f"run {needed} load-generating processes instead of {n} (--processes "
                f"{needed} on this machine, or workers on more machines), so each stays "
                f"under {TARGET_CPU:.0%} of a core"
            )
        return HealthVerdict(
            trustworthy=not warnings,
            processes=n,
            processes_needed=needed,
            warnings=tuple(warnings),
        )
