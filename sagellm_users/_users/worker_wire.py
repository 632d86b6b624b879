"""The worker -> master wire: one versioned report, built in one place, merged in one.

Locust calls ``report_to_master`` on each worker every 3 s (and once more as it stops) and
hands the dict to the master's ``worker_report`` listeners. Everything sagellm-locust
measured on the worker since its last report travels in that dict under one key, as a
:class:`WorkerReport`: what finished (the collector's drained statistics), the process's
own health, the token timeline, the workload's info, lost records and in-process engines.
A new metric is one field here, one line in :func:`collect` and one in :func:`merge`.

A report carries its wire version; a worker of another sagellm-locust version is named
once and its reports are left out, rather than merged into numbers that mean something
else.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from sagellm_users._users.service import Service
from sagellm_users._workloads.traffic import merge_info

if TYPE_CHECKING:
    from sagellm_users._users.runtime import LLMRuntime

__all__ = [
    "WIRE_KEY",
    "WIRE_VERSION",
    "Merger",
    "WireError",
    "WorkerReport",
    "collect",
]

log = logging.getLogger("sagellm_users")

WIRE_KEY = "sagellm"
"""The key of Locust's worker-report dict under which the :class:`WorkerReport` travels."""
WIRE_VERSION = 3
"""2: every endpoint's numbers carry TTST and the empty-answer, tokenizer-counted and
stopped-at-limit counters; 3: and the HTTP phases' distributions."""


class WireError(ValueError):
    """A worker report this master cannot read (another version, or damaged)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerReport:
    """What one worker measured since its previous report (msgpack-friendly parts)."""

    metrics: dict[str, Any]
    """:meth:`MetricsCollector.drain`: per-endpoint counts and exact distributions."""
    health: dict[str, Any]
    """:meth:`ProcessHealth.to_wire`: the worker's loop lag and CPU."""
    timeline: dict[str, Any] | None = None
    """:meth:`Timeline.drain`: tokens and requests per second, as they arrived."""
    workload: dict[str, Any] | None = None
    """The worker's workload info (whole-test totals: the latest replaces the previous)."""
    records_lost: int = 0
    records_error: str | None = None
    engines: dict[str, dict[str, Any]] | None = None
    """The worker's in-process engines, keyed ``worker N/engine``."""
    version: int = WIRE_VERSION

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, data: Any) -> WorkerReport:
        if not isinstance(data, dict):
            raise WireError(f"a worker report is a map, got {type(data).__name__}")
        version = data.get("version")
        if version != WIRE_VERSION:
            raise WireError(
                f"wire version {version!r}, this master reads {WIRE_VERSION}: run the same "
                "sagellm-locust version on the master and every worker"
            )
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown or not isinstance(data.get("metrics"), dict):
            raise WireError(f"a damaged worker report (fields {sorted(data)})")
        return cls(**data)


def collect(runtime: LLMRuntime) -> WorkerReport:
    """This worker's report: everything measured since the previous one (then forgotten)."""
    runtime.recorder.flush()
    lost = runtime.drain_lost_records()
    engines = None
    if runtime.engines:
        runner = runtime.environment.runner
        engines = runtime.engine_entries(f"worker {getattr(runner, 'worker_index', '?')}")
    return WorkerReport(
        metrics=runtime.collector.drain(),
        health=runtime.drain_health(),
        timeline=runtime.timeline.drain(runtime.in_flight),
        workload=runtime.workload_info,
        records_lost=0 if lost is None else int(lost["lost"]),
        records_error=None if lost is None else lost.get("error"),
        engines=engines,
    )


class Merger(Service):
    """The master's side: folds each worker's reports into the run's numbers (the role
    decides whose reports it takes, see :class:`~sagellm_users._users.worker_watch.WorkerWatch`)."""

    def __init__(self, runtime: LLMRuntime) -> None:
        self.runtime = runtime
        self._workloads: dict[str, dict[str, Any]] = {}
        self._refused: set[str] = set()

    def start(self) -> None:
        self._workloads.clear()  # each test builds its workload anew

    def take(self, client_id: str, data: dict[str, Any]) -> None:
        """A ``worker_report`` listener: Locust's dict, ours under :data:`WIRE_KEY`."""
        raw = data.get(WIRE_KEY)
        if raw is None:
            return
        try:
            report = WorkerReport.from_wire(raw)
        except (WireError, TypeError) as exc:
            if client_id not in self._refused:
                self._refused.add(client_id)
                log.error("sagellm: worker %s: its reports are left out: %s", client_id, exc)
            return
        self.merge(client_id, report)

    def merge(self, client_id: str, report: WorkerReport) -> None:
        runtime = self.runtime
        runtime.gather(report.metrics)
        runtime.health.merge_wire(client_id, report.health)
        if report.timeline is not None:
            runtime.timeline.merge_wire(client_id, report.timeline)
        if report.workload is not None:
            # Each worker built its own prompts (its own /tokenize calls): the run's are
            # all workers' together.
            self._workloads[client_id] = report.workload
            runtime.workload_info = merge_info(
                [self._workloads[w] for w in sorted(self._workloads)]
            )
        if report.records_lost:
            runtime.lost_records_reported(report.records_lost, report.records_error)
        if report.engines:
            runtime.remote_engines.update(report.engines)
