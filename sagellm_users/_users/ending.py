"""How a run ends where its results are kept (a local runner or the master): the final
report, the exit code it decides, and the LLM summary printed after Locust's tables."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from locust.runners import MasterRunner

from sagellm_users._metrics import render_summary
from sagellm_users._report import (
    EarlyStopInfo,
    LLMReport,
    build_report,
    load_text,
    records_lost_text,
    render_client_health,
    render_slo_table,
    write_report,
)
from sagellm_users._report.engines import render_engines
from sagellm_users._report.model import LoadInfo
from sagellm_users._report.server import render_server_side
from sagellm_users._report.workload import ServingCurve, curve_thresholds, render_workload_parts

if TYPE_CHECKING:
    from sagellm_users._users.options import LLMOptions
    from sagellm_users._users.runtime import LLMRuntime

__all__ = [
    "NOTHING_FINISHED_EXIT",
    "RECORDS_LOST_EXIT",
    "SLO_FAILED_EXIT",
    "build_run_report",
    "finish",
    "print_summary",
]

log = logging.getLogger("sagellm_users")

SLO_FAILED_EXIT = 3
"""Process exit code when an --slo objective is not met."""
RECORDS_LOST_EXIT = 1
"""A run whose records file could not hold every record (a full disk): its raw data is
incomplete, so it does not exit 0 even when every request and objective was fine."""
NOTHING_FINISHED_EXIT = 4
"""Process exit code when requests were sent and none finished: nothing was measured."""


def finish(runtime: LLMRuntime) -> None:
    """Build the final report once; with --slo, its verdict decides the exit code."""
    report = runtime.final_report = build_run_report(runtime)
    if runtime.options_error is not None:  # the last test start was refused: nothing ran
        runtime.environment.process_exit_code = 1
    elif report.sweep is not None:  # a sweep breaks an objective by design: its answer counts
        passed = report.sweep.capacity is not None
        runtime.environment.process_exit_code = 0 if passed else SLO_FAILED_EXIT
    elif _nothing_finished(runtime):  # no objective can be judged on nothing either
        runtime.environment.process_exit_code = NOTHING_FINISHED_EXIT
    elif report.slos:  # an early stop always has its objectives here
        runtime.environment.process_exit_code = 0 if report.slos_passed else SLO_FAILED_EXIT
    if report.records_lost and not runtime.environment.process_exit_code:
        runtime.environment.process_exit_code = RECORDS_LOST_EXIT


def _nothing_finished(runtime: LLMRuntime) -> bool:
    """Requests went out and not one ended, ok or failed (a server whose streams never end,
    a stop before the first answer): Locust sees no failure and would exit 0 on nothing.
    A web UI where no test ever ran sent nothing and is left alone."""
    collector = runtime.collector
    total = collector.total()
    if total.succeeded or total.failed or collector.excluded or not total.cancelled:
        return False
    log.warning(
        "sagellm: no request finished (%d sent, all cancelled when the test stopped): "
        "nothing was measured; exit code %d",
        total.cancelled,
        NOTHING_FINISHED_EXIT,
    )
    return True


def _report_parts(report: LLMReport) -> str:
    """The summary's lines that come from the report: the load, what was lost, the
    workload, objectives, engines, the server's and the client's side."""
    text = ""
    if report.run.load is not None:
        text += f"\nLoad: {load_text(report.run.load)}"
    if report.records_lost:
        text += f"\nLOST: {records_lost_text(report)}"
    text += render_workload_parts(report)
    if report.slos and report.sweep is None:  # a sweep judged each stage on its own
        text += "\n" + render_slo_table(report)
    if report.engines:
        text += "\n" + render_engines(report.engines)
    if report.server:
        text += "\n" + render_server_side(report.server)
    if report.client is not None:
        text += "\n" + render_client_health(report.client)
    for lost in report.lost_workers:
        last = "never" if lost.last_report_at is None else f"{lost.last_report_at:%H:%M:%S} UTC"
        text += (
            f"\nPARTIAL: worker {lost.worker} was lost at {lost.lost_at:%H:%M:%S} UTC (last "
            f"report {last}); what it measured after its last report is not in this report"
        )
    return text


def print_summary(runtime: LLMRuntime) -> None:
    collector = runtime.collector
    window = runtime.window
    if window.active:
        parts = ["all users spawned"] if window.after_spawn else []
        if window.warmup.seconds or window.warmup.requests:
            parts.append(f"warm-up {window.warmup}")
        note = (
            f"from the end of warm-up ({', then '.join(parts)}) to the last completion; "
            f"{collector.excluded} warm-up requests excluded"
        )
    else:
        note = "first send to last completion"
    total = collector.total()
    text = render_summary(
        collector.by_name,
        total,
        runtime.options.percentiles,
        window=collector.window(total),
        window_note=note,
    )
    if runtime.records is not None:
        text += f"\nRecords: {runtime.records.written} lines in {runtime.records.path}"
    elif runtime.options.llm_records is not None:
        text += f"\nRecords: written by each worker, next to {runtime.options.llm_records}"
    report = runtime.final_report or build_run_report(runtime)
    text += _report_parts(report)
    for path in runtime.options.reports:
        write_report(report, path)
        text += f"\nReport: {path}"
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def load_info(runtime: LLMRuntime) -> LoadInfo:
    """The load this run applied, as Locust and the options set it."""
    environment = runtime.environment
    parsed = environment.parsed_options
    runner = environment.runner
    options = runtime.options
    shape = environment.shape_class
    describe = getattr(shape, "describe", None)
    runs = runtime.runs
    run_time = getattr(parsed, "run_time", None)
    users = getattr(parsed, "num_users", None)
    spawn_rate = getattr(parsed, "spawn_rate", None)
    workers = runner.worker_count if isinstance(runner, MasterRunner) else None

    def when(seconds: float | None) -> datetime | None:
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC)

    return LoadInfo(
        run_number=runs.number if runs is not None and runs.number else 1,
        started=when(runs.started) if runs is not None else None,
        stopped=when(runs.stopped) if runs is not None else None,
        users=None if users is None else int(users),
        peak_users=runtime.timeline.peak_users(),
        spawn_rate=None if spawn_rate is None else float(spawn_rate),
        run_time_s=float(run_time) if run_time else None,
        shape=None if shape is None else type(shape).__name__,
        stages=describe() if callable(describe) else None,
        request_rate=options.request_rate or None,
        arrival=options.arrival if options.request_rate else None,
        processes=workers if workers is not None else 1,
        max_tokens=options.max_tokens,
    )


def serving_curve(runtime: LLMRuntime) -> ServingCurve | None:
    """A sweep's stages, or a step shape's, as the serving curve (None otherwise)."""
    slos = runtime.options.slos
    if runtime.sweep is not None:
        return runtime.sweep.curve(slos)
    points = getattr(runtime.environment.shape_class, "curve_points", None)
    if not points:
        return None
    capacity = None
    if slos:  # the last stage before the first that broke an objective (loads rise)
        for point in points:
            if not point.passed:
                break
            capacity = point.load
    return ServingCurve(
        unit="users", points=list(points), thresholds=curve_thresholds(slos), capacity=capacity
    )


def build_run_report(runtime: LLMRuntime, timeline: bool = True) -> LLMReport:
    """The report as of now; ``timeline=False`` for the live JSON, which polls it apart."""
    options = runtime.options
    stop = runtime.early_stop
    report = build_report(
        runtime.collector,
        percentiles=list(options.percentiles),
        host=runtime.environment.host,
        user_classes=[cls.__name__ for cls in runtime.environment.user_classes],
        options=options.for_report(),
        warmup=str(options.warmup),
        measure_after_spawn=options.measure_after_spawn,
        slos=options.slos,
        early_stop=None
        if stop is None
        else EarlyStopInfo(at=datetime.fromtimestamp(stop.at, UTC), objectives=dict(stop.reasons)),
        health=runtime.health,
        server=None if runtime.server_watch is None else runtime.server_watch.series(),
        engines=list(runtime.engine_entries().values()),
        workload=runtime.workload_info,
        arrivals=_arrivals(options),
        sweep=runtime.sweep,
        timeline=runtime.timeline if timeline else None,
        load=load_info(runtime),
        curve=serving_curve(runtime),
    )
    watch = runtime.worker_watch
    if watch is not None and watch.lost:
        report.lost_workers = list(watch.lost.values())
        report.partial = True
    report.records_lost, report.records_error = runtime.lost_records()
    return report


def _arrivals(options: LLMOptions) -> tuple[str, float, float] | None:
    """The open loop's kind, rate and burstiness for the report (None: closed loop); a
    replay's rate is its trace's, at its speed."""
    trace = options.trace_requests
    if trace is not None:
        return "trace", trace.rate(options.trace_speed), 1.0
    if options.request_rate > 0:
        return options.arrival, options.request_rate, options.burstiness
    return None
