"""The workload's part of the report: what was sent, how well the open-loop schedule was
kept, metrics by conversation turn, and a sweep's stages with the capacity it found."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from sagellm_users._metrics.arrivals import LATE_SECONDS, ArrivalStats
from sagellm_users._report.blocks import DistributionSummary, MetricsBlock

if TYPE_CHECKING:
    from sagellm_users._metrics.slo import SLO
    from sagellm_users._report.model import LLMReport

__all__ = [
    "ArrivalReport",
    "CurvePoint",
    "ServingCurve",
    "SweepReport",
    "SweepStage",
    "TurnReport",
    "curve_thresholds",
    "render_arrivals",
    "render_prefix_groups",
    "render_sweep",
    "render_turns",
    "render_workload",
    "render_workload_parts",
]


class ArrivalReport(BaseModel):
    """Open loop: the rate asked for, the rate the schedule drew, and the rate achieved."""

    kind: str
    target_rate: float
    """--request-rate (a sweep's last stage, when a sweep drove it)."""
    burstiness: float
    requests: int
    intended_rate: float | None
    """Requests per second over the schedule's intended start times."""
    achieved_rate: float | None
    """Requests per second that actually started."""
    late: int
    """Requests that started more than ``late_after_ms`` after their intended time."""
    late_after_ms: float = LATE_SECONDS * 1e3
    lag_ms: DistributionSummary

    @classmethod
    def of(
        cls,
        stats: ArrivalStats,
        *,
        kind: str,
        rate: float,
        burstiness: float,
        percentiles: list[float],
    ) -> ArrivalReport:
        return cls(
            kind=kind,
            target_rate=rate,
            burstiness=burstiness,
            requests=stats.requests,
            intended_rate=stats.intended_rate,
            achieved_rate=stats.achieved_rate,
            late=stats.late,
            lag_ms=DistributionSummary.of(stats.lag, percentiles, 1e3),
        )


class TurnReport(MetricsBlock):
    """The metrics of every request that was turn ``turn`` of its conversation."""

    turn: int


class PrefixGroupReport(MetricsBlock):
    """The metrics of every request led by shared-prefix group ``group``'s system prompt."""

    group: int


class SweepStage(BaseModel):
    """One stage of a sweep, judged on what completed in its measured part."""

    load: float
    """Users, or requests per second when the sweep drove an open-loop rate."""
    requests: int
    measured_s: float
    values: dict[str, float | None]
    """Each objective's measured value, by its text."""
    passed: bool
    broken: list[str] = Field(default_factory=list)
    """The objectives this stage did not meet (or why it could not be judged)."""
    ttft_p99_ms: float | None = None
    itl_p99_ms: float | None = None
    e2el_p99_ms: float | None = None
    output_throughput: float = 0.0
    request_throughput: float = 0.0
    error_rate: float = 0.0


class CurvePoint(BaseModel):
    """One stage of a stepped load (or one run of several): the load asked for, what the
    server achieved at it, and the p99 latencies there."""

    load: float
    """Users, or requests per second for an open-loop rate sweep."""
    requests: int
    request_throughput: float
    output_throughput: float
    ttft_p99_ms: float | None
    itl_p99_ms: float | None
    e2el_p99_ms: float | None
    error_rate: float
    passed: bool | None = None
    """Whether the stage met every --slo objective (None without objectives)."""


class ServingCurve(BaseModel):
    """The serving curve: p99 latencies against achieved throughput, stage by stage, with
    the objectives' p99 thresholds and the highest load that met them all."""

    unit: Literal["users", "req/s"]
    points: list[CurvePoint] = Field(default_factory=list)
    thresholds: dict[str, float] = Field(default_factory=dict)
    """``ttft_p99_ms`` / ``itl_p99_ms`` / ``e2el_p99_ms`` -> the --slo bound, in ms."""
    capacity: float | None = None
    """The highest load whose stage met every objective (None: none did, or no --slo)."""


def curve_thresholds(slos: Iterable[SLO]) -> dict[str, float]:
    """The p99 upper bounds of --slo on TTFT, ITL and E2E: the curve's threshold lines."""
    thresholds: dict[str, float] = {}
    for slo in slos:
        if slo.stat == "p99" and slo.op in ("<", "<=") and slo.metric in _CURVE_METRICS:
            key = f"{slo.metric.removesuffix('_ms')}_p99_ms"
            thresholds[key] = min(slo.threshold, thresholds.get(key, slo.threshold))
    return thresholds


_CURVE_METRICS = ("ttft_ms", "itl_ms", "e2el_ms")


class SweepReport(BaseModel):
    """The answer to "how much load can this deployment take within its objectives?"."""

    unit: Literal["users", "req/s"]
    objectives: list[str]
    stages: list[SweepStage] = Field(default_factory=list)
    capacity: float | None = None
    """The highest load whose stage met every objective (None: even the first broke)."""
    broke_at: float | None = None
    """The first load that broke an objective (None: every stage up to the maximum met them)."""

    def curve(self, slos: Iterable[SLO]) -> ServingCurve:
        """The sweep's stages as a serving curve."""
        return ServingCurve(
            unit=self.unit,
            points=[
                CurvePoint.model_validate(stage.model_dump(include=set(CurvePoint.model_fields)))
                for stage in self.stages
            ],
            thresholds=curve_thresholds(slos),
            capacity=self.capacity,
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _load(value: float, unit: str) -> str:
    return f"{value:g} {unit}"


_PROMPT_KEYS = ("token_source", "prompt_lengths", "prompt_build", "tokenize_calls", "processes")
"""Workload info shown in the prompts line (or the warning), not as fields of their own."""


def render_workload(info: dict[str, Any]) -> str:
    """One block: the workload's fields, a warning first when prompt lengths are only
    estimated, and how prompts were counted with the ``/tokenize`` calls that took."""
    lines = ["Workload:"]
    if info.get("token_source") == "estimate":
        lines.append(
            "  prompt lengths are ESTIMATED (4 characters per token), not exact: pass "
            "--tokenizer PATH (or a server with /tokenize)"
        )
    elif info.get("prompt_lengths") == "estimated":
        lines.append(
            "  prompt lengths are ESTIMATED, not exact (the server's tokenizer did not allow "
            "exact ones, see prompts): pass --tokenizer PATH (the model's tokenizer.json)"
        )
    for key, value in info.items():
        if key not in _PROMPT_KEYS:
            lines.append(f"  {key.replace('_', ' ')}: {value}")
    calls = int(info.get("tokenize_calls", 0))
    processes = int(info.get("processes", 1))
    by = f" from {processes} processes" if processes > 1 else ""
    if "prompt_build" in info:
        made = f"{calls} /tokenize call{'' if calls == 1 else 's'}{by}"
        lines.append(f"  prompts: {info['prompt_build']}; {made}, all before the load")
    elif calls:  # a dataset's prompts, with a server counter: its check at the start
        lines.append(f"  /tokenize calls before the load: {calls}{by}")
    return "\n".join(lines)


def render_arrivals(report: ArrivalReport) -> str:
    lag = report.lag_ms
    achieved = "-" if report.achieved_rate is None else f"{report.achieved_rate:.2f}"
    intended = "-" if report.intended_rate is None else f"{report.intended_rate:.2f}"
    head = (
        f"Open loop ({report.kind}, target {report.target_rate:g} req/s"
        + (f", burstiness {report.burstiness:g}" if report.kind == "gamma" else "")
        + f"): {report.requests} requests, achieved {achieved} req/s (schedule {intended})"
    )
    p99 = lag.percentiles.get("p99")
    lines = [
        head,
        f"  start lag (ms): mean {_ms(lag.mean)}  p99 {_ms(p99)}  max {_ms(lag.max)};  "
        f"{report.late} started > {report.late_after_ms:g} ms late",
    ]
    if report.requests and report.late > 0.01 * report.requests:
        lines.append(
            "  the load generator fell behind the schedule (every user busy, or its loop "
            "lagging): add users (-u, the in-flight cap) or workers; latencies of late "
            "requests are measured from their actual send"
        )
    return "\n".join(lines)


def _cache_share(block: MetricsBlock) -> str:
    share = block.cache_hit_share
    return "-" if share is None else f"{share:.1%}"


def _slice_table(title: str, key: str, blocks: list[tuple[int, MetricsBlock]]) -> str:
    """A turn's or a group's requests, prompt sizes, prompt-cache hits and latencies."""
    cached = any(block.cache_reported for _, block in blocks)
    lines = [
        title,
        f"  {key:>5} {'requests':>9} {'input tok':>10} "
        + (f"{'cached':>7} " if cached else "")
        + f"{'TTFT p50':>9} {'TTFT p99':>9} {'E2E p50':>9}",
    ]
    for index, t in blocks:
        lines.append(
            f"  {index:>5} {t.requests:>9} {_ms(t.input_tokens.mean):>10} "
            + (f"{_cache_share(t):>7} " if cached else "")
            + f"{_ms(t.ttft_ms.percentiles.get('p50')):>9} "
            f"{_ms(t.ttft_ms.percentiles.get('p99')):>9} "
            f"{_ms(t.e2el_ms.percentiles.get('p50')):>9}"
        )
    return "\n".join(lines)


def render_turns(turns: list[TurnReport]) -> str:
    return _slice_table("By conversation turn:", "turn", [(t.turn, t) for t in turns])


def render_prefix_groups(groups: list[PrefixGroupReport]) -> str:
    rows: list[tuple[int, MetricsBlock]] = [(g.group, g) for g in groups]
    return _slice_table("By shared-prefix group:", "group", rows)


def render_sweep(sweep: SweepReport) -> str:
    lines = [f"Sweep ({', '.join(sweep.objectives)}):"]
    lines.append(
        f"  {'load':>12} {'requests':>9} {'TTFT p99':>9} {'out tok/s':>10} {'errors':>7}  verdict"
    )
    for stage in sweep.stages:
        verdict = "met" if stage.passed else "BROKE " + ", ".join(stage.broken)
        lines.append(
            f"  {_load(stage.load, sweep.unit):>12} {stage.requests:>9} "
            f"{_ms(stage.ttft_p99_ms):>9} {stage.output_throughput:>10.1f} "
            f"{stage.error_rate:>7.2%}  {verdict}"
        )
    if sweep.capacity is None:
        lines.append("  capacity: none; the first stage broke the objectives")
    elif sweep.broke_at is None:
        lines.append(
            f"  capacity: at least {_load(sweep.capacity, sweep.unit)} (the sweep's maximum "
            "met every objective)"
        )
    else:
        lines.append(
            f"  capacity: {_load(sweep.capacity, sweep.unit)} met every objective; "
            f"{_load(sweep.broke_at, sweep.unit)} broke one"
        )
    return "\n".join(lines)


def render_workload_parts(report: LLMReport) -> str:
    """The summary's workload blocks, each on new lines; empty when the run had none."""
    parts = []
    if report.workload is not None:
        parts.append(render_workload(report.workload))
    if report.arrivals is not None:
        parts.append(render_arrivals(report.arrivals))
    if report.turns:
        parts.append(render_turns(report.turns))
    if report.prefix_groups:
        parts.append(render_prefix_groups(report.prefix_groups))
    if report.sweep is not None:
        parts.append(render_sweep(report.sweep))
    return "".join("\n" + part for part in parts)
