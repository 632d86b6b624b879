"""Open-loop arrivals: when each request is meant to start, whatever the server does.

A closed-loop user sends its next request only after the last one finished, so a slow server
slows its own load down and hides its latency (coordinated omission). Open-loop traffic
follows a clock instead: requests arrive at a target rate, and a request that cannot start
on time (every in-flight slot is busy, or the load generator lags) starts late, with its
lag recorded. The intended times are what the rate promised; the lag shows how far the
run fell short of it.

Gaps between arrivals follow vLLM's benchmark: ``constant`` (exactly 1/rate), ``poisson``
(exponential gaps), or ``gamma`` with a shape (``burstiness``) below 1 for bursts and above
1 for smoother traffic; a gamma of shape 1 is the Poisson process.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Literal, get_args

from gevent.event import Event

from sagellm_users._errors import ConfigError

__all__ = ["ARRIVAL_KINDS", "ArrivalKind", "ArrivalPlan", "ArrivalSchedule", "gap_sampler"]

ArrivalKind = Literal["constant", "poisson", "gamma"]
ARRIVAL_KINDS: tuple[str, ...] = get_args(ArrivalKind)


def gap_sampler(
    kind: ArrivalKind, rate: float, burstiness: float, rng: random.Random
) -> Callable[[], float]:
    """Seconds between consecutive arrivals at ``rate`` per second, drawn with ``rng``."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    mean = 1.0 / rate
    if kind == "constant":
        return lambda: mean
    if kind == "poisson":
        return lambda: rng.expovariate(rate)
    if kind == "gamma":
        if burstiness <= 0:
            raise ValueError(f"burstiness must be > 0, got {burstiness}")
        scale = mean / burstiness
        return lambda: rng.gammavariate(burstiness, scale)
    raise ConfigError(f"--arrival: unknown kind {kind!r}; choose one of {', '.join(ARRIVAL_KINDS)}")


@dataclass(frozen=True, slots=True)
class ArrivalPlan:
    """One process's part of the test's open-loop rate.

    The master splits the rate evenly over the workers it has when the test starts (and
    again when one joins or a sweep changes the rate); each worker is told its ``rank``
    among ``workers``. Constant arrivals sit on one grid that starts at ``start_wall`` (the
    master's clock), each worker offset by ``rank / workers`` of its gap, so the workers'
    sends interleave into one evenly spaced stream whenever the plan reached each of them.
    """

    rate: float
    """Requests per second across the whole test."""
    workers: int = 1
    rank: int = 0
    start_wall: float | None = None
    """Wall-clock origin of the constant grid; None starts it when the plan arrives."""

    @property
    def share(self) -> float:
        """This process's requests per second."""
        return self.rate / self.workers


class ArrivalSchedule:
    """The intended start times of this process's open-loop requests.

    Every open-loop user in the process :meth:`claim`\\ s the next time, waits until it and
    sends; so the users are the process's in-flight slots. When all of them are busy, the
    next claim comes late and the request starts late: the lag is recorded, never hidden,
    and the schedule keeps its pace (it does not slide to "now"), as a real arrival stream
    would not wait for the server either.
    """

    def __init__(
        self,
        kind: ArrivalKind,
        burstiness: float,
        seed: str,
        clock: Callable[[], float] = perf_counter,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.kind: ArrivalKind = kind
        self.burstiness = burstiness
        self._rng = random.Random(seed)
        self._clock = clock
        self._wall = wall
        self._next: float | None = None
        self._gap: Callable[[], float] | None = None
        self._plan: ArrivalPlan | None = None
        self._ready = Event()

    @property
    def plan(self) -> ArrivalPlan | None:
        return self._plan

    def set_plan(self, plan: ArrivalPlan) -> None:
        """Take a new rate from now on (a new test, a new worker count, a sweep stage).

        The schedule restarts at the current time: a stage of a sweep is judged on its own
        rate, not on a backlog the previous stage left."""
        self._plan = plan
        if plan.share <= 0:
            self._gap = None
            self._next = None
            self._ready.clear()
            return
        self._gap = gap_sampler(self.kind, plan.share, self.burstiness, self._rng)
        now = self._clock()
        self._next = now
        if self.kind == "constant":
            gap = 1.0 / plan.share
            wall_now = self._wall()
            origin = (wall_now if plan.start_wall is None else plan.start_wall) + (
                plan.rank / plan.workers * gap
            )
            steps = max(0, math.ceil((wall_now - origin) / gap - 1e-9))
            self._next = now + (origin + steps * gap - wall_now)
        self._ready.set()

    def claim(self) -> float:
        """The ``perf_counter()`` time the next request is meant to start (may be past).

        Blocks (cooperatively) until this process has a rate: on a worker, until the
        master's plan arrives."""
        self._ready.wait()
        gap, start = self._gap, self._next
        assert gap is not None and start is not None
        self._next = start + gap()
        return start
