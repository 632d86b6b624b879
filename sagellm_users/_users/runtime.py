"""Per-environment state of a load test: options, metrics, records file, events.

One :class:`LLMRuntime` is attached to each Locust ``Environment`` by the plugin (never a
module global), so several environments in one process (tests, library use) stay apart.
Users hand it each finished :class:`RequestRecord`; it feeds the collector and the records
file and fires Locust's request events.
"""

from __future__ import annotations

import itertools
from functools import cached_property
from typing import TYPE_CHECKING, Any

from gevent.lock import Semaphore

from sagellm_users._backends import BackendClient, Timeouts, create_client
from sagellm_users._backends.engine_process import EngineProcess
from sagellm_users._backends.local import LocalEngineClient
from sagellm_users._errors import ConfigError
from sagellm_users._metrics import MetricsCollector, RecordsWriter, RequestRecord
from sagellm_users._metrics.batch import ReportBatch
from sagellm_users._metrics.health import ClientHealth, ProcessHealth
from sagellm_users._metrics.live import RecentMetrics
from sagellm_users._metrics.slo import good_request_rule
from sagellm_users._metrics.timeline import Timeline
from sagellm_users._metrics.window import MeasurementWindow
from sagellm_users._redact import register_header_secrets, register_secret
from sagellm_users._users.error_rows import ErrorRows
from sagellm_users._users.options import LLMOptions
from sagellm_users._users.recorder import DeferredRecorder
from sagellm_users._users.retry import RetryPolicy
from sagellm_users._workloads.arrivals import ArrivalSchedule
from sagellm_users._workloads.build import DatasetCache
from sagellm_users._workloads.trace import TracePrompts, TraceSchedule
from sagellm_users._workloads.traffic import RequestDefaults, Workload

if TYPE_CHECKING:
    from locust.env import Environment

    from sagellm_users._report import LLMReport
    from sagellm_users._report.workload import SweepReport
    from sagellm_users._users.runs import Runs
    from sagellm_users._users.server_watch import ServerWatch
    from sagellm_users._users.slo_watch import EarlyStop
    from sagellm_users._users.worker_watch import WorkerWatch
    from sagellm_users._workloads.tokens import TokenizerCounter

__all__ = ["METRIC_ROW_TYPES", "RETRY_ROW", "LLMRuntime", "runtime_of"]

_ATTRIBUTE = "sagellm_runtime"

E2E_ROW = "E2E"
TTFT_ROW = "TTFT"
TBT_ROW = "TBT"
RETRY_ROW = "RETRY"
"""A failed attempt that ``--retries`` sent again (the request's own row comes later)."""
METRIC_ROW_TYPES = frozenset({TTFT_ROW, TBT_ROW, RETRY_ROW})
"""Request types of the per-token rows, kept out of Locust's "Aggregated" row."""


def runtime_of(environment: Environment) -> LLMRuntime:
    """The runtime the plugin attached, or a clear error telling how to attach it."""
    runtime = getattr(environment, _ATTRIBUTE, None)
    if runtime is None:
        raise ConfigError(
            "sagellm-locust is not installed in this locustfile: add "
            "'from locust import events; from sagellm_users import install; install(events)'"
        )
    assert isinstance(runtime, LLMRuntime)
    return runtime


class LLMRuntime:
    """What every user of one environment shares."""

    worker_watch: WorkerWatch | None = None
    """On a master: which workers were lost mid-run."""
    runs: Runs | None = None
    """Where results are kept: this web session's runs (see _users.runs)."""
    output_counter: TokenizerCounter | None = None
    """Counts a reply's tokens in its text when the server sends no usage (a local
    tokenizer only; set at test start with the workload, see _users.traffic_setup)."""
    _lost_remote = 0
    _lost_error: str | None = None
    """On a master: records the workers' files could not hold, and the first reason."""
    _lost_sent = 0
    """On a worker: how many of its lost records the master was told of."""
    _finished = 0
    _cancelled = 0
    """Requests this process's users handed over, by how they ended (see :meth:`ended`)."""

    trace_prompts: TracePrompts | None = None
    """--trace: the requests of the trace's lines (built at test start, as the workload)."""

    def __init__(
        self,
        environment: Environment,
        options: LLMOptions,
        *,
        records: RecordsWriter | None = None,
        datasets: DatasetCache | None = None,
        engines: dict[str, EngineProcess] | None = None,
    ) -> None:
        self.environment = environment
        self.options = options
        self._collector = MetricsCollector()
        self._recent = RecentMetrics()
        self._stage: MetricsCollector | None = None
        self._batch = ReportBatch()
        self.timeline = Timeline()
        """The run over time, by each request's end and each output token's arrival (see
        _metrics.timeline): this process's buckets, or on a master every worker's merged.
        Users have it watch each request they send."""
        self.in_flight = 0
        self.retry = RetryPolicy(options.retries, options.retry_max_wait)
        """Requests this process has sent and not yet finished."""
        self.collector.good_request = good_request_rule(options.slos)
        self.window = MeasurementWindow(options.warmup, options.measure_after_spawn)
        self.health = ClientHealth()
        """The load generators' own lag and CPU: this process's, or every worker's."""
        self.own_health = ProcessHealth()
        """Where this process's probe and start lags land: on a local runner the entry
        in ``health`` (see :meth:`measure_here`), on a worker a delta for the master."""
        self._health_name: str | None = None
        self.records = records  # the records file this process writes (not on a master)
        self.recorder = DeferredRecorder(self.record_now)
        """Where users hand finished requests: recorded inline, or while a test runs on a
        load-generating process, when the event loop is idle (see _users.recorder)."""
        self._ids = itertools.count(1)
        self._prompts = itertools.cycle(options.prompts)
        self._model: str | None = options.model or None
        self._model_lock = Semaphore()
        self.live = False
        """Whether this process serves the live view (it has a web UI)."""
        self.final_report: LLMReport | None = None
        """Built once when Locust quits (master or local runner)."""
        self.early_stop: EarlyStop | None = None
        """Set when --slo-early-stop ended the test (see _users.slo_watch)."""
        self.server_watch: ServerWatch | None = None
        """Scrapes the servers' /metrics where the report is built (see _users.server_watch)."""
        self.options_error: str | None = None
        """Set when options changed in the web UI are invalid: users then send nothing."""
        self.engines: dict[str, EngineProcess] = engines or {}
        """In-process engines this process started for its users (see _users.engines)."""
        self.remote_engines: dict[str, dict[str, Any]] = {}
        """On a master: what each worker's engines reported, by ``worker/engine``."""
        self.workload: Workload | None = None
        """The traffic users send when a workload is set (built at test start, where the
        load is generated; see _users.traffic_setup)."""
        self.datasets = datasets or DatasetCache()  # read once, before any load
        self.arrivals: ArrivalSchedule | TraceSchedule | None = None
        """Open loop (--request-rate, --trace): when each request of this process is meant
        to start."""
        self.sweep: SweepReport | None = None
        """What a sweep found, stage by stage."""
        self.workload_info: dict[str, Any] | None = None
        """The workload as the report shows it (on a master: every worker's, merged)."""
        setattr(environment, _ATTRIBUTE, self)

    @property
    def options(self) -> LLMOptions:
        return self._options

    @options.setter
    def options(self, options: LLMOptions) -> None:
        """Options set here (at start, or from the web UI's form) have their key and header
        values scrubbed from every error from now on, here too where no client is built (a
        master shows what its workers sent)."""
        _register_secrets(options)
        self._options = options

    # -- the measured numbers: what a local runner or worker records, or a master merges ----
    @property
    def collector(self) -> MetricsCollector:
        """The run's numbers: every measured request, per endpoint."""
        if self._batch.pending:
            self.settle()
        return self._collector

    @property
    def recent(self) -> RecentMetrics:
        """The last minute in one-second slices, for the live /llm/stats view."""
        if self._batch.pending:
            self.settle()
        return self._recent

    @property
    def stage(self) -> MetricsCollector | None:
        """A sweep's current stage, measuring (see shapes.SLOSweepShape): it gets every
        finished request (local runner) or every worker delta (master) too."""
        if self._batch.pending:
            self.settle()
        return self._stage

    @stage.setter
    def stage(self, stage: MetricsCollector | None) -> None:
        if self._batch.pending:
            self.settle()  # what arrived so far belongs to the stage that ends
        self._stage = stage

    def gather(self, metrics: dict[str, Any]) -> None:
        """On a master: a worker's finished requests (:meth:`MetricsCollector.drain`). They
        join a batch folded into the run's, live and stage numbers once a second (each
        report's bins are then added once, not once per target) and whenever those are
        read (see _metrics.batch)."""
        batch = self._batch
        if batch.due:
            self.settle()
        batch.add(metrics)

    def settle(self) -> None:
        """Fold the gathered worker reports into every target now."""
        data = self._batch.take()
        if data is None:
            return
        self._collector.merge_wire(data)
        if self.live:
            self._recent.merge_wire(data)
        if self._stage is not None:
            self._stage.merge_wire(data)

    @cached_property
    def error_rows(self) -> ErrorRows:
        """What each failure shows in Locust's error table: bounded (see _users.error_rows)."""
        return ErrorRows()

    # -- configuration ----------------------------------------------------------------------
    def update_options(self, options: LLMOptions) -> None:
        """New options from the web UI's start form take effect for the next users."""
        self.options = options
        self.options_error = None
        self.collector.good_request = good_request_rule(options.slos)
        self.window = MeasurementWindow(options.warmup, options.measure_after_spawn)
        self._prompts = itertools.cycle(options.prompts)
        self._model = options.model or None

    def create_client(self, backend: str, host: str) -> BackendClient:
        o = self.options
        return create_client(
            backend,
            host,
            api_key=o.api_key.get_secret_value() if o.api_key else None,
            headers=o.headers,
            timeouts=Timeouts(o.connect_timeout, o.read_timeout, o.request_timeout),
            verify=o.verify,
            limits=o.read_limits,
        )

    def local_client(self, engine: str) -> LocalEngineClient:
        """A client of this process's in-process ``engine``, started before the test."""
        process = self.engines.get(engine)
        if process is None:
            raise ConfigError(
                f"no in-process {engine} engine runs here: pass --{engine}-model PATH"
            )
        o = self.options
        return LocalEngineClient(
            process, Timeouts(o.connect_timeout, o.read_timeout, o.request_timeout)
        )

    def engine_entries(self, where: str = "local") -> dict[str, dict[str, Any]]:
        """The in-process engines for the report, keyed ``where/engine``."""
        entries = dict(self.remote_engines)
        for name, process in self.engines.items():
            info = process.info
            if info is not None:
                entries[f"{where}/{name}"] = {
                    "engine": info.engine,
                    "version": info.version,
                    "model": info.model,
                    "load_s": round(info.start_s, 3),
                    "process": where,
                }
        return entries

    def drain_health(self) -> dict[str, Any]:
        """A worker's self-measurements since its last report, as wire data."""
        data = self.own_health.to_wire()
        self.own_health = ProcessHealth()
        return data

    def measure_here(self, name: str = "local") -> None:
        """This process generates the load and reports it itself (a local runner)."""
        self._health_name = name
        self.own_health = self.health.process(name)

    def reset_stats(self) -> None:
        """Locust's "reset stats": what finished until now is counted, then forgotten."""
        self.recorder.flush()
        self.collector.reset()
        self.timeline.reset()
        self.health.reset()
        name = self._health_name
        self.own_health = ProcessHealth() if name is None else self.health.process(name)

    def new_run(self) -> None:
        """A new test in the same web session: what it measures starts from nothing, as
        Locust's own statistics do (the previous run's report was kept, see _users.runs)."""
        self.recorder.flush()
        self.collector.reset()  # settles a master's batch first: it belonged to that run
        self._recent.reset()
        self._stage = None
        self.timeline.reset()
        self.health.reset()
        name = self._health_name
        self.own_health = ProcessHealth() if name is None else self.health.process(name)
        self.early_stop = None
        self.sweep = None
        self.final_report = None

    def requests_in_flight(self) -> int:
        """Requests sent and not finished: this process's, or on a master every worker's."""
        return self.in_flight + self.timeline.reported_in_flight()

    def request_defaults(self) -> RequestDefaults:
        """The per-request fields the options set, for the workload's requests."""
        o = self.options
        return RequestDefaults(
            model=o.model,
            max_tokens=o.max_tokens,
            min_tokens=o.min_tokens,
            temperature=o.temperature,
            ignore_eos=o.ignore_eos,
            stream=o.stream,
            extra_body=o.extra_body,
        )

    def next_prompt(self) -> str:
        return next(self._prompts)

    def next_request_id(self) -> int:
        return next(self._ids)

    def resolve_model(self, client: BackendClient) -> str:
        """``--model``, else the first model the server lists (asked once per environment)."""
        if self._model:
            return self._model
        with self._model_lock:
            if not self._model:
                models = client.list_models()
                if not models:
                    raise ConfigError("the server lists no model: pass --model NAME")
                self._model = models[0]
        return self._model

    # -- results ----------------------------------------------------------------------------
    def submit(self, record: RequestRecord, exception: BaseException | None = None) -> None:
        """Hand over a finished request: recorded now, or soon (see :attr:`recorder`)."""
        if record.status == "cancelled":
            self._cancelled += 1
        else:
            self._finished += 1
        self.recorder.submit(record, exception)

    def ended(self) -> tuple[int, int]:
        """Requests this process's users handed over so far: (finished, cancelled)."""
        return self._finished, self._cancelled

    def record_now(self, record: RequestRecord, exception: BaseException | None = None) -> None:
        """Record a finished request everywhere it belongs, then show it in Locust's stats."""
        collector = self._collector  # where requests are recorded nothing is gathered
        window = self.window
        self.timeline.add(record)  # warm-up too: the charts show the whole run
        if self.live:
            self._recent.add(record)
        if self._stage is not None:
            self._stage.add(record)
        measured = not window.active or window.admits(
            record.wall_send, record.wall_done, record.status == "cancelled"
        )
        if measured:
            if record.start_lag_s is not None:
                self.own_health.start_lag.add(record.start_lag_s)
            collector.add(record)
        else:
            record.warmup = True
            collector.excluded += 1
        collector.window_start = window.start
        if self.records is not None:
            self.records.write(record)
        if record.status == "cancelled":
            return
        fire = self.environment.events.request.fire
        if record.status == "error":
            fire(
                request_type=E2E_ROW,
                name=record.name,
                response_time=record.elapsed * 1e3,
                response_length=0,
                exception=None if exception is None else self.error_rows.label(exception),
                context={},
            )
            return
        e2e = record.e2e
        rows = (
            (E2E_ROW, e2e if e2e is not None else record.elapsed, record.output_tokens),
            (TTFT_ROW, record.ttft, 0),
            (TBT_ROW, record.tbt, 0),
        )
        for row, seconds, length in rows:
            if seconds is not None:
                fire(
                    request_type=row,
                    name=record.name,
                    response_time=seconds * 1e3,
                    response_length=length,
                    exception=None,
                    context={},
                )

    def lost_records(self) -> tuple[int, str | None]:
        """Records the records files could not hold (this process's and, on a master, every
        worker's) and why the first could not be written."""
        records = self.records
        if records is None:
            return self._lost_remote, self._lost_error
        return records.lost + self._lost_remote, records.error or self._lost_error

    def drain_lost_records(self) -> dict[str, Any] | None:
        """A worker's lost records since its last report, as wire data (None: none)."""
        records = self.records
        if records is None or records.lost == self._lost_sent:
            return None
        lost, self._lost_sent = records.lost - self._lost_sent, records.lost
        return {"lost": lost, "error": records.error}

    def lost_records_reported(self, lost: int, error: str | None) -> None:
        """On a master: a worker's report said ``lost`` more records were lost."""
        self._lost_remote += lost
        if self._lost_error is None:
            self._lost_error = error

    def close(self) -> None:
        self.recorder.stop()
        if self.records is not None:
            self.records.close()


def _register_secrets(options: LLMOptions) -> None:
    if options.api_key is not None:
        register_secret(options.api_key.get_secret_value())
    register_header_secrets(options.headers)
