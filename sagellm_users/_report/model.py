"""The result of a load test as one versioned pydantic model.

Everything a report writer, a CI gate or a notebook needs, built from merged metrics (so
the same on a local run and on a master), never from Locust's rounded histograms. Times are
milliseconds, like vLLM's ``bench serve`` results; :meth:`LLMReport.vllm_fields` gives
the flat field names that tool writes, so scripts that read vLLM results read ours.
"""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, Field

from sagellm_users._metrics.collector import MetricsCollector
from sagellm_users._metrics.health import ClientHealth, ProcessHealth
from sagellm_users._metrics.server_series import ServerSeries
from sagellm_users._metrics.slo import SLO
from sagellm_users._metrics.timeline import Timeline
from sagellm_users._report.blocks import (
    TIMINGS,
    DistributionSummary,
    EndpointReport,
    FailureClass,
    MetricsBlock,
    TokenProvenance,
)
from sagellm_users._report.engines import EngineReport
from sagellm_users._report.labels import percentile_label
from sagellm_users._report.plots import (
    DistributionPlot,
    TimelineReport,
    distribution_plots,
    per_user,
)
from sagellm_users._report.server import ServerSideReport
from sagellm_users._report.workload import (
    ArrivalReport,
    PrefixGroupReport,
    ServingCurve,
    SweepReport,
    TurnReport,
)

__all__ = [
    "SCHEMA_VERSION",
    "ClientHealthReport",
    "DistributionSummary",
    "EarlyStopInfo",
    "EndpointReport",
    "FailureClass",
    "LLMReport",
    "LoadInfo",
    "LostWorker",
    "MetricsBlock",
    "RunInfo",
    "SLOResult",
    "TokenProvenance",
    "ToolInfo",
    "WindowInfo",
    "build_report",
    "percentile_label",
]

_HEALTH_PERCENTILES = [50.0, 90.0, 99.0]

SCHEMA_VERSION: Literal[3] = 3
"""2: each server-side percentile is an object (estimate, bounds, bucket, display), not a
bare interpolated number. 3: the timeline's ``output_tokens`` / ``output_tok_s`` /
``total_tok_s`` count each output token in the second it arrived, not at its request's
end (kept as ``completed_output_tokens``). ``sagellm-report`` still reads 1 and 2."""


class ToolInfo(BaseModel):
    name: str = "sagellm-locust"
    version: str
    python: str
    locust: str
    platform: str

    @classmethod
    def current(cls) -> ToolInfo:
        return cls(
            version=_version("sagellm-locust"),
            python=sys.version.split()[0],
            locust=_version("locust"),
            platform=platform.platform(),
        )


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


class WindowInfo(BaseModel):
    start: datetime | None
    end: datetime | None
    seconds: float
    warmup: str
    measure_after_spawn: bool
    excluded_requests: int


class SLOResult(BaseModel):
    """One objective's verdict; ``value`` is None when nothing was measured."""

    slo: str
    value: float | None
    passed: bool
    lost_early: str | None = None
    """Why the objective could no longer be met, when ``--slo-early-stop`` stopped on it."""


class EarlyStopInfo(BaseModel):
    """Set when ``--slo-early-stop`` ended the test before its planned end."""

    at: datetime
    objectives: dict[str, str] = Field(description="objective -> why it could not be met")


class ProcessHealthReport(BaseModel):
    """One load-generating process measuring itself (see :mod:`sagellm_users._metrics.health`)."""

    process: str
    loop_lag_ms: DistributionSummary
    start_lag_ms: DistributionSummary
    cpu_mean: float | None = Field(description="CPU time / wall time; 1.0 is one full core")
    cpu_peak: float

    @classmethod
    def of(cls, process: str, health: ProcessHealth) -> ProcessHealthReport:
        return cls(
            process=process,
            loop_lag_ms=DistributionSummary.of(health.loop_lag, _HEALTH_PERCENTILES, 1e3),
            start_lag_ms=DistributionSummary.of(health.start_lag, _HEALTH_PERCENTILES, 1e3),
            cpu_mean=health.cpu_mean,
            cpu_peak=health.cpu_peak,
        )


class ClientHealthReport(BaseModel):
    """Whether the load generator kept up, so its timings can be trusted."""

    trustworthy: bool
    warnings: list[str]
    processes: int
    processes_needed: int
    total: ProcessHealthReport
    """Every process merged; ``cpu_peak`` is the busiest process's."""
    by_process: list[ProcessHealthReport]

    @classmethod
    def of(cls, health: ClientHealth) -> ClientHealthReport:
        verdict = health.verdict()
        return cls(
            trustworthy=verdict.trustworthy,
            warnings=list(verdict.warnings),
            processes=verdict.processes,
            processes_needed=verdict.processes_needed,
            total=ProcessHealthReport.of("all", health.total()),
            by_process=[
                ProcessHealthReport.of(name, h) for name, h in sorted(health.processes.items())
            ],
        )


class LoadInfo(BaseModel):
    """The load the run applied: what differs first when two runs are compared."""

    run_number: int = 1
    """Which test of its web session (1 for a headless run)."""
    started: datetime | None = None
    stopped: datetime | None = None
    """When the test started and stopped (None while it runs)."""
    users: int | None = None
    """The users asked for (-u, or the start form); a shape sets its own."""
    peak_users: int | None = None
    """The most users that ran at once."""
    spawn_rate: float | None = None
    run_time_s: float | None = None
    """--run-time, in seconds (None: until stopped)."""
    shape: str | None = None
    """The load shape's class, when one drove the users."""
    stages: dict[str, Any] | None = None
    """What the shape was told: its stages, spike or sweep."""
    request_rate: float | None = None
    """Open loop: the target requests per second (None: closed loop)."""
    arrival: str | None = None
    processes: int = 1
    """Load-generating processes (a master's workers)."""
    max_tokens: int | None = None


class RunInfo(BaseModel):
    host: str | None
    user_classes: list[str]
    options: dict[str, Any] = Field(description="sagellm options of the run, secrets removed")
    load: LoadInfo | None = None
    """None in reports written before the load was recorded."""


class LostWorker(BaseModel):
    """A worker the master stopped hearing from during the run (killed, frozen, cut off)."""

    worker: str
    lost_at: datetime
    last_report_at: datetime | None
    """Its last report's arrival: what it measured after that is not in the report."""


class LLMReport(BaseModel):
    """One load test's result. ``schema_version`` changes when a field changes meaning."""

    schema_version: Literal[3] = SCHEMA_VERSION
    created: datetime
    tool: ToolInfo
    run: RunInfo
    window: WindowInfo
    percentiles: list[float]
    total: MetricsBlock
    by_name: list[EndpointReport]
    by_user: list[EndpointReport]
    slos: list[SLOResult] = Field(default_factory=list)
    early_stop: EarlyStopInfo | None = None
    client: ClientHealthReport | None = None
    """The load generator's own lag and CPU; None when it did not measure itself."""
    server: list[ServerSideReport] = Field(default_factory=list)
    """Each server's own /metrics over the test (vLLM's names), when scraped."""
    engines: list[EngineReport] = Field(default_factory=list)
    """In-process engines the users drove (VLLMLocalUser and the like)."""
    workload: dict[str, Any] | None = None
    """What was sent (--workload and friends) and how prompt tokens were counted."""
    arrivals: ArrivalReport | None = None
    """Open loop (--request-rate): target, intended and achieved rates, start lag."""
    turns: list[TurnReport] = Field(default_factory=list)
    prefix_groups: list[PrefixGroupReport] = Field(default_factory=list)
    """Shared-prefix workloads: each group's numbers (its prompt-cache hits above all)."""
    """Multi-turn workloads: the metrics of each turn index."""
    sweep: SweepReport | None = None
    curve: ServingCurve | None = None
    """The serving curve of a stepped load (step or sweep shape): p99 latencies against
    achieved throughput, stage by stage."""
    """An SLO sweep's stages and the capacity it found."""
    timeline: TimelineReport | None = None
    """The run over time: one point per time bucket (throughput, latency, users, errors)."""
    distributions: list[DistributionPlot] = Field(default_factory=list)
    """Histogram and CDF of each timing, overall and per User class when several ran."""
    lost_workers: list[LostWorker] = Field(default_factory=list)
    """Workers lost mid-run; when any, the report is partial (see ``partial``)."""
    partial: bool = False
    """Some of what was measured never reached this report (a worker was lost)."""
    records_lost: int = 0
    """Requests the records file (``--llm-records``, every worker's) could not hold, e.g.
    on a full disk: they are in every number here but missing from the file."""
    records_error: str | None = None
    """Why the first of them could not be written (``No space left on device``)."""

    @property
    def slos_passed(self) -> bool:
        return all(result.passed for result in self.slos)

    def vllm_fields(self) -> dict[str, Any]:
        """The flat fields of ``vllm bench serve --save-result`` for the whole run."""
        t = self.total
        fields: dict[str, Any] = {
            "duration": t.duration_s,
            "completed": t.completed,
            "failed": t.failed,
            "total_input_tokens": t.total_input_tokens,
            "total_output_tokens": t.total_output_tokens,
            "request_throughput": t.request_throughput,
            "request_goodput": t.request_goodput,
            "output_throughput": t.output_throughput,
            "total_token_throughput": t.total_token_throughput,
        }
        for field, (_attr, word) in TIMINGS.items():
            if word is None:
                continue
            summary: DistributionSummary = getattr(t, field)
            fields[f"mean_{word}_ms"] = summary.mean
            fields[f"median_{word}_ms"] = summary.median
            fields[f"std_{word}_ms"] = summary.std
            for label, value in summary.percentiles.items():
                fields[f"{label}_{word}_ms"] = value
        return fields

    def to_json_dict(self) -> dict[str, Any]:
        """vLLM's flat fields first, then the full structured report."""
        return {**self.vllm_fields(), **self.model_dump(mode="json")}


def _when(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def build_report(
    collector: MetricsCollector,
    *,
    percentiles: list[float],
    host: str | None,
    user_classes: list[str],
    options: dict[str, Any],
    warmup: str,
    measure_after_spawn: bool,
    slos: tuple[SLO, ...] = (),
    early_stop: EarlyStopInfo | None = None,
    health: ClientHealth | None = None,
    server: list[ServerSeries] | None = None,
    engines: list[dict[str, Any]] | None = None,
    workload: dict[str, Any] | None = None,
    arrivals: tuple[str, float, float] | None = None,
    sweep: SweepReport | None = None,
    timeline: Timeline | None = None,
    load: LoadInfo | None = None,
    curve: ServingCurve | None = None,
) -> LLMReport:
    """Summarise ``collector`` (local, or merged on a master) into an :class:`LLMReport`.

    An objective ``early_stop`` names fails whatever its value at the end: it was stopped
    on before the run could show how badly it failed. ``arrivals`` is the open-loop
    (kind, rate, burstiness) when the run had one."""
    lost = early_stop.objectives if early_stop is not None else {}
    percentiles = sorted({*percentiles, *_slo_percentiles(slos)})
    goodput = collector.good_request is not None
    total = collector.total()
    start, end = collector.window_bounds(total)
    duration = collector.window(total)
    by_name = [
        EndpointReport(
            name=name, **MetricsBlock.of(stats, duration, percentiles, goodput).model_dump()
        )
        for name, stats in collector.by_name.items()
    ]
    by_user = [
        EndpointReport(
            name=name,
            user=user,
            **MetricsBlock.of(stats, duration, percentiles, goodput).model_dump(),
        )
        for (user, name), stats in collector.by_key.items()
    ]
    total_block = MetricsBlock.of(total, duration, percentiles, goodput)
    return LLMReport(
        created=datetime.now(UTC),
        tool=ToolInfo.current(),
        run=RunInfo(host=host, user_classes=user_classes, options=options, load=load),
        window=WindowInfo(
            start=_when(start),
            end=_when(end),
            seconds=duration,
            warmup=warmup,
            measure_after_spawn=measure_after_spawn,
            excluded_requests=collector.excluded,
        ),
        percentiles=percentiles,
        total=total_block,
        by_name=by_name,
        by_user=by_user,
        slos=judge_slos(slos, total_block, lost),
        early_stop=early_stop,
        client=ClientHealthReport.of(health) if health is not None and health.processes else None,
        server=[ServerSideReport.of(series, percentiles) for series in server or ()],
        engines=[EngineReport.model_validate(e) for e in engines or ()],
        workload=workload,
        arrivals=None
        if arrivals is None
        else ArrivalReport.of(
            collector.arrivals,
            kind=arrivals[0],
            rate=arrivals[1],
            burstiness=arrivals[2],
            percentiles=percentiles,
        ),
        turns=[
            TurnReport(turn=turn, **MetricsBlock.of(stats, duration, percentiles).model_dump())
            for turn, stats in collector.by_turn.items()
        ],
        prefix_groups=[
            PrefixGroupReport(
                group=group, **MetricsBlock.of(stats, duration, percentiles).model_dump()
            )
            for group, stats in collector.by_prefix_group.items()
        ],
        sweep=sweep,
        curve=curve,
        timeline=None if timeline is None else TimelineReport.of(timeline),
        distributions=distribution_plots(total, per_user(collector.by_key)),
    )


def judge_slos(
    slos: tuple[SLO, ...], block: MetricsBlock, lost: dict[str, str] | None = None
) -> list[SLOResult]:
    """Each objective's verdict on ``block``; one in ``lost`` (stopped on early) fails."""
    lost = lost or {}
    return [
        SLOResult(
            slo=s.text,
            value=(v := _slo_value(s, block)),
            passed=s.holds(v) and s.text not in lost,
            lost_early=lost.get(s.text),
        )
        for s in slos
    ]


def _slo_percentiles(slos: tuple[SLO, ...]) -> list[float]:
    return [float(s.stat[1:]) for s in slos if s.stat is not None and s.stat.startswith("p")]


def _slo_value(slo: SLO, block: MetricsBlock) -> float | None:
    """The measured value an objective is judged on."""
    if slo.stat is None:
        value = getattr(block, "request_goodput" if slo.metric == "goodput" else slo.metric)
        return None if value is None else float(value)
    summary: DistributionSummary = getattr(block, slo.metric)
    if slo.stat.startswith("p"):
        return summary.percentiles.get(slo.stat)
    result: float | None = getattr(summary, slo.stat)
    return result
