"""Load shapes for LLM tests: a step ramp, a spike, and a sweep that finds capacity.

Locust runs a shape on the master (or the local runner) and calls its ``tick()`` every
second. Put one in a locustfile, or add ``locustfiles/shapes/<name>.py`` beside any user
locustfile (``-f locustfiles/chat.py,locustfiles/shapes/sweep.py``). Each shape reads its
options (``--step-users``, ``--spike-users``, ``--sweep`` with ``--stage-time``) and is
checked before any load, like every other option.

:class:`SLOSweepShape` answers "how many users (or requests per second) can this deployment
take?": it raises the load stage by stage, judges each stage's own requests against
``--slo``, stops at the first stage that breaks an objective, and reports the highest load
that met them all.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from locust import LoadTestShape

from sagellm_users._errors import ConfigError
from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.slo import good_request_rule
from sagellm_users._report.model import MetricsBlock, judge_slos
from sagellm_users._report.workload import CurvePoint, SweepReport, SweepStage
from sagellm_users._users.runtime import runtime_of
from sagellm_users._users.traffic_setup import set_request_rate

if TYPE_CHECKING:
    from locust.env import Environment

__all__ = [
    "LLMLoadShape",
    "SLOSweepShape",
    "SpikeLoadShape",
    "StepLoadShape",
    "parse_seconds",
]

log = logging.getLogger("sagellm_users")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_seconds(text: str, option: str) -> float:
    """``30s``, ``2m``, ``500ms`` or a bare number of seconds."""
    match = _DURATION.match(str(text))
    if match is None:
        raise ConfigError(f"{option}: cannot read {text!r} as a duration; give e.g. 30s, 2m")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _parse_range(text: str, option: str) -> tuple[float, float, float]:
    """``START:STEP:MAX`` with START, STEP > 0 and MAX >= START."""
    parts = str(text).split(":")
    try:
        start, step, top = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"{option}: cannot read {text!r}; give START:STEP:MAX, e.g. 4:4:64"
        ) from None
    if start <= 0 or step <= 0 or top < start:
        raise ConfigError(f"{option}: {text!r} needs START > 0, STEP > 0 and MAX >= START")
    return start, step, top


def _start_measuring(runtime: Any) -> float:
    """A stage's measured part begins: its finished requests land in ``runtime.stage``."""
    stage = MetricsCollector()
    stage.good_request = good_request_rule(runtime.options.slos)
    runtime.stage = stage
    return time.time()


def _stop_measuring(runtime: Any, since: float | None) -> tuple[MetricsCollector, MetricsBlock]:
    """What the stage measured since ``since`` (None: it never began measuring), with the
    p99s the serving curve plots whatever --percentiles asked for."""
    collected = runtime.stage or MetricsCollector()
    runtime.stage = None
    measured = max(time.time() - since, 1e-9) if since is not None else 0.0
    percentiles = sorted({*runtime.options.percentiles, 99.0})
    block = MetricsBlock.of(
        collected.total(), measured, percentiles, collected.good_request is not None
    )
    return collected, block


def _curve_point(load: float, block: MetricsBlock, passed: bool | None) -> CurvePoint:
    return CurvePoint(
        load=load,
        requests=block.requests,
        request_throughput=block.request_throughput,
        output_throughput=block.output_throughput,
        ttft_p99_ms=block.ttft_ms.percentiles.get("p99"),
        itl_p99_ms=block.itl_ms.percentiles.get("p99"),
        e2el_p99_ms=block.e2el_ms.percentiles.get("p99"),
        error_rate=block.error_rate,
        passed=passed,
    )


@dataclass
class _Stage:
    users: int
    until: float
    """Run time (seconds) this stage ends at."""


class LLMLoadShape(LoadTestShape):
    """A shape configured from sagellm's options; subclasses build their stages.

    The plugin calls :meth:`configure_from_options` at ``init``, so bad options stop the
    run before any load."""

    abstract = True
    stage_time = 30.0

    def configure_from_options(self, environment: Environment) -> None:
        ns = environment.parsed_options
        self.stage_time = parse_seconds(getattr(ns, "stage_time", "30s") or "30s", "--stage-time")
        if self.stage_time <= 0:
            raise ConfigError("--stage-time: must be > 0, e.g. 30s")

    @staticmethod
    def _spawn(users: int) -> float:
        return float(max(users, 1))  # a stage's users start within about a second

    def describe(self) -> dict[str, Any]:
        """What this shape was told, for the report's load (stages, spike or sweep)."""
        return {"stage_time_s": self.stage_time}


class StepLoadShape(LLMLoadShape):
    """Users rise by a step every ``--stage-time``: START, START+STEP, ... MAX, then stop.

    Each stage is measured from a quarter of the way in (the new users' ramp and the
    requests the previous stage left in flight settle first; at least 3 s on a master,
    whose workers report every 3 s) to its end: one point of the serving curve, judged
    against --slo when given."""

    stages: list[_Stage]
    settle = 0.0
    curve_points: list[CurvePoint]
    """The stages measured so far this test (the report's serving curve)."""

    def configure_from_options(self, environment: Environment) -> None:
        super().configure_from_options(environment)
        text = getattr(environment.parsed_options, "step_users", "")
        if not text:
            raise ConfigError("--step-users: StepLoadShape needs START:STEP:MAX, e.g. 4:4:32")
        start, step, top = _parse_range(text, "--step-users")
        self.stages = []
        users, n = start, 0
        while users <= top + 1e-9:
            n += 1
            self.stages.append(_Stage(round(users), n * self.stage_time))
            users += step
        distributed = bool(getattr(environment.parsed_options, "master", False))
        self.settle = max(self.stage_time / 4, 3.0 if distributed else 0.0)
        self.reset_time()

    def reset_time(self) -> None:
        """A new test (Locust calls it at each start): the curve starts again."""
        super().reset_time()  # type: ignore[no-untyped-call]
        self.curve_points = []
        self._index: int | None = -1
        self._stage_start = 0.0
        self._measured_from: float | None = None

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "users": [stage.users for stage in self.stages],
        }

    def tick(self) -> tuple[int, float] | None:
        now = self.get_run_time()  # type: ignore[no-untyped-call]
        index = next((i for i, stage in enumerate(self.stages) if now < stage.until), None)
        runner = getattr(self, "runner", None)
        if runner is not None:
            self._measure(runtime_of(runner.environment), index, now)
        if index is None:
            return None
        users = self.stages[index].users
        return users, self._spawn(users)

    def _measure(self, runtime: Any, index: int | None, now: float) -> None:
        """End the stage that ended (a point of the curve); measure the one running."""
        if index != self._index:
            if self._index is not None and self._index >= 0:
                _collected, block = _stop_measuring(runtime, self._measured_from)
                passed = None
                if runtime.options.slos:
                    passed = all(r.passed for r in judge_slos(runtime.options.slos, block))
                self.curve_points.append(
                    _curve_point(self.stages[self._index].users, block, passed)
                )
            self._index, self._stage_start, self._measured_from = index, now, None
        if (
            index is not None
            and self._measured_from is None
            and now >= self._stage_start + self.settle
        ):
            self._measured_from = _start_measuring(runtime)


class SpikeLoadShape(LLMLoadShape):
    """BASE users, a jump to PEAK at ``--spike-at`` for ``--spike-hold``, then BASE again
    for as long as before the spike: how fast latency recovers after a burst."""

    base = 1
    peak = 1
    at = 30.0
    hold = 10.0

    def configure_from_options(self, environment: Environment) -> None:
        super().configure_from_options(environment)
        ns = environment.parsed_options
        text = str(getattr(ns, "spike_users", "") or "")
        base, sep, peak = text.partition(":")
        if not sep or not base.isdigit() or not peak.isdigit() or int(peak) < int(base):
            raise ConfigError(
                f"--spike-users: cannot read {text!r}; give BASE:PEAK users with PEAK >= BASE, "
                "e.g. 4:32"
            )
        self.base, self.peak = int(base), int(peak)
        at = getattr(ns, "spike_at", "") or ""
        self.at = parse_seconds(at, "--spike-at") if at else self.stage_time
        hold = getattr(ns, "spike_hold", "") or ""
        self.hold = parse_seconds(hold, "--spike-hold") if hold else 10.0

    def describe(self) -> dict[str, Any]:
        return {
            "base_users": self.base,
            "peak_users": self.peak,
            "at_s": self.at,
            "hold_s": self.hold,
        }

    def tick(self) -> tuple[int, float] | None:
        now = self.get_run_time()  # type: ignore[no-untyped-call]
        if now < self.at:
            return self.base, self._spawn(self.base)
        if now < self.at + self.hold:
            return self.peak, self._spawn(self.peak)
        if now < 2 * self.at + self.hold:
            return self.base, self._spawn(self.peak)
        return None


class SLOSweepShape(LLMLoadShape):
    """Raise users (or the open-loop rate) stage by stage until an ``--slo`` objective
    breaks; report the highest load that met every objective (see the module docstring).

    Each stage is judged on the requests that completed in its measured part: from
    ``--sweep-settle`` after the stage began to its end. On a distributed run the workers'
    numbers reach the master every few seconds (Locust's report interval), so the settle
    time is at least 3 s there."""

    loads: list[float]
    settle = 0.0
    by_rate = False
    users = 1

    def configure_from_options(self, environment: Environment) -> None:
        super().configure_from_options(environment)
        ns = environment.parsed_options
        text = getattr(ns, "sweep", "")
        if not text:
            raise ConfigError("--sweep: SLOSweepShape needs START:STEP:MAX, e.g. 2:2:32")
        if not str(getattr(ns, "slo", "") or "").strip():
            raise ConfigError(
                "--sweep: a sweep needs objectives to judge each stage; add --slo, e.g. "
                "--slo 'ttft_p99<=500ms'"
            )
        if getattr(ns, "slo_early_stop", False):
            raise ConfigError(
                "--slo-early-stop: a sweep stops by itself at the first stage that breaks an "
                "objective; drop --slo-early-stop"
            )
        start, step, top = _parse_range(text, "--sweep")
        count = int((top - start) / step + 1e-9) + 1
        self.loads = [start + i * step for i in range(count)]
        self.by_rate = float(getattr(ns, "request_rate", 0) or 0) > 0
        if self.by_rate:
            self.users = int(getattr(ns, "num_users", 0) or 0)
            if self.users <= 0:
                raise ConfigError(
                    "--sweep with --request-rate sweeps the rate: give -u USERS, the "
                    "requests in flight at most"
                )
        settle = getattr(ns, "sweep_settle", "") or ""
        distributed = bool(getattr(ns, "master", False))
        default = max(self.stage_time / 4, 3.0 if distributed else 0.0)
        self.settle = parse_seconds(settle, "--sweep-settle") if settle else default
        if self.settle >= self.stage_time:
            raise ConfigError(
                f"--sweep-settle: {self.settle:g}s leaves nothing of a {self.stage_time:g}s "
                "stage to judge; make it shorter than --stage-time"
            )
        self._index = -1
        self._stage_start = 0.0
        self._measuring = False
        self._measured_from = 0.0

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "sweeps": "request rate" if self.by_rate else "users",
            "loads": self.loads,
            "settle_s": self.settle,
        }

    def tick(self) -> tuple[int, float] | None:
        now = self.get_run_time()  # type: ignore[no-untyped-call]
        runtime = runtime_of(self.runner.environment)  # type: ignore[union-attr]
        if self._index < 0 or now >= self._stage_start + self.stage_time:
            if self._index >= 0 and not self._finish_stage(now):
                return None
            self._index += 1
            if self._index >= len(self.loads):
                self._conclude(None)
                return None
            self._stage_start = now
            self._measuring = False
            runtime.stage = None
            if self.by_rate:
                set_request_rate(runtime, self.loads[self._index])
        if not self._measuring and now >= self._stage_start + self.settle:
            self._measured_from = _start_measuring(runtime)
            self._measuring = True
        users = self.users if self.by_rate else round(self.loads[self._index])
        return users, self._spawn(users)

    def _finish_stage(self, now: float) -> bool:
        """Judge the stage that just ended; True when the sweep goes on."""
        runtime = runtime_of(self.runner.environment)  # type: ignore[union-attr]
        collected, block = _stop_measuring(
            runtime, self._measured_from if self._measuring else None
        )
        measured = block.duration_s
        total = collected.total()
        results = judge_slos(runtime.options.slos, block)
        broken = [
            f"{r.slo} ({'-' if r.value is None else f'{r.value:.4g}'})"
            for r in results
            if not r.passed
        ]
        if total.succeeded == 0:
            broken = ["no request completed in the stage"]
        load = self.loads[self._index]
        sweep = self._report(runtime)
        sweep.stages.append(
            SweepStage(
                load=load,
                requests=total.requests,
                measured_s=round(measured, 3),
                values={r.slo: r.value for r in results},
                passed=not broken,
                broken=broken,
                ttft_p99_ms=block.ttft_ms.percentiles.get("p99"),
                itl_p99_ms=block.itl_ms.percentiles.get("p99"),
                e2el_p99_ms=block.e2el_ms.percentiles.get("p99"),
                output_throughput=block.output_throughput,
                request_throughput=block.request_throughput,
                error_rate=block.error_rate,
            )
        )
        log.info("sagellm: sweep stage %g: %s", load, broken or "met")
        if broken:
            self._conclude(load)
            return False
        sweep.capacity = load
        return True

    def _report(self, runtime: Any) -> SweepReport:
        if runtime.sweep is None:
            runtime.sweep = SweepReport(
                unit="req/s" if self.by_rate else "users",
                objectives=[s.text for s in runtime.options.slos],
            )
        sweep: SweepReport = runtime.sweep
        return sweep

    def _conclude(self, broke_at: float | None) -> None:
        runtime = runtime_of(self.runner.environment)  # type: ignore[union-attr]
        sweep = self._report(runtime)
        sweep.broke_at = broke_at
