"""Wires sagellm-locust into Locust through its event hooks; called once per locustfile.

``install(events)`` adds the command-line options and, for each environment Locust creates:
validates the options before any load (one clear line and exit code 1 on a bad value),
starts the embedded mock server when no ``--host`` is given (on the master or local
runner), keeps the per-token rows out of Locust's "Aggregated" row, forwards request
records from workers to the master, writes the records file, and prints the LLM summary
when Locust quits.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import gevent
from locust.runners import (
    STATE_CLEANUP,
    STATE_RUNNING,
    STATE_SPAWNING,
    MasterRunner,
    WorkerRunner,
)

from sagellm_users.backends import BACKENDS
from sagellm_users.backends.http import parse_base_url
from sagellm_users.errors import ConfigError, EngineStartError
from sagellm_users.metrics import RecordsWriter, render_summary
from sagellm_users.mock_server import MockServerProcess, MockServerStartError, check_mock_args
from sagellm_users.report import (
    EarlyStopInfo,
    LLMReport,
    build_report,
    check_report_path,
    records_lost_text,
    render_client_health,
    render_slo_table,
    write_report,
)
from sagellm_users.report.engines import render_engines
from sagellm_users.report.server import render_server_side
from sagellm_users.report.workload import render_workload_parts
from sagellm_users.users.base import LLMUser
from sagellm_users.users.capacity_guard import guard_spawning
from sagellm_users.users.engines import (
    engine_specs,
    engines_needed,
    start_engines,
    stop_engines,
)
from sagellm_users.users.health_probe import HealthProbe
from sagellm_users.users.host_check import host_problem, install_host_check
from sagellm_users.users.ignored_options import check_engine_options, check_shape_options
from sagellm_users.users.live_route import add_live_route
from sagellm_users.users.local import LocalEngineUser
from sagellm_users.users.open_files import OpenFiles, raise_limit
from sagellm_users.users.options import LLMOptions, add_arguments
from sagellm_users.users.parent_watch import stop_with_parent
from sagellm_users.users.refusal import relay_refusals
from sagellm_users.users.runtime import METRIC_ROW_TYPES, LLMRuntime, runtime_of
from sagellm_users.users.server_watch import ServerWatch
from sagellm_users.users.slo_watch import SLOWatch
from sagellm_users.users.start_form import take_start_form
from sagellm_users.users.stopping import (
    Shutdown,
    interrupt_main_greenlet,
    quit_workers_first,
    send_final_report,
)
from sagellm_users.users.strangers import refuse_strangers
from sagellm_users.users.timeline_watch import TimelineWatch
from sagellm_users.users.traffic_setup import install_traffic
from sagellm_users.users.web_secrets import (
    hide_secrets,
)
from sagellm_users.users.worker_watch import WorkerWatch
from sagellm_users.users.worker_wire import merge_reports, send_reports
from sagellm_users.workloads.build import DatasetCache, check_tokenizer

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.event import Events
    from locust.runners import Runner
    from locust.stats import RequestStats
    from locust.web import WebUI

__all__ = ["install"]

log = logging.getLogger("sagellm_users")

_INSTALLED = "_sagellm_installed"
SLO_FAILED_EXIT = 3
RECORDS_LOST_EXIT = 1
"""A run whose records file could not hold every record (a full disk): its raw data is
incomplete, so it does not exit 0 even when every request and objective was fine."""
"""Process exit code when an --slo objective is not met."""
NOTHING_FINISHED_EXIT = 4
"""Process exit code when requests were sent and none finished: nothing was measured."""
USERS_KILL_WAIT_S = 10.0
"""How long a shutdown waits for cancelled users to end (killing them takes milliseconds)."""


def install(events: Events) -> None:
    """Register sagellm-locust on ``events`` (``locust.events`` in a locustfile). Idempotent."""
    if getattr(events, _INSTALLED, False):
        return
    setattr(events, _INSTALLED, True)
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(_on_init)


def _fail(message: str) -> NoReturn:
    """Stop before any load with one clear line (SystemExit passes Locust's event hooks)."""
    sys.stderr.write(f"sagellm: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)


def _on_init(
    environment: Environment,
    runner: Runner | None = None,
    web_ui: WebUI | None = None,
    **_: Any,
) -> None:
    try:
        options = LLMOptions.from_namespace(environment.parsed_options)
    except ConfigError as exc:
        _fail(str(exc))
    is_worker = isinstance(runner, WorkerRunner)
    if environment.host:
        _check_host(environment.host)
    _check_user_classes(environment, options)
    try:
        needed = engines_needed(environment.user_classes)
        check_engine_options(needed, options)
        engine_plan = engine_specs(needed, options)
        for path in options.reports:
            check_report_path(path)
        datasets = DatasetCache()
        if options.workload is not None:
            datasets.get(options.workload)  # read and checked once, before any load
            check_tokenizer(options.workload.tokenizer)
        check_mock_args(options.mock_args)
        check_shape_options(options, environment.shape_class)
        _check_shape(environment)
    except ConfigError as exc:
        _fail(str(exc))
    records: RecordsWriter | None = None
    if options.llm_records is not None:
        try:
            records = RecordsWriter(options.llm_records)
            if isinstance(runner, MasterRunner):
                records = None  # only the workers send requests, each to its own file
            elif not is_worker:
                records.open()
        except ConfigError as exc:
            _fail(str(exc))
    files = _check_before_load(environment, options, runner)
    # Everything is valid: only now start anything.
    interrupt_main_greenlet()  # Ctrl-C must not kill whichever greenlet happens to run
    _guard_secrets(environment, options, web_ui)
    runtime = LLMRuntime(environment, options)
    runtime.records = records
    runtime.datasets = datasets
    _keep_token_rows_out_of_aggregated(environment.stats)
    if engine_plan and not isinstance(runner, MasterRunner):
        try:
            runtime.engines = start_engines(engine_plan, options.engine_start_timeout)
        except EngineStartError as exc:
            _fail(str(exc))
    mock = None
    if not environment.host and not is_worker and _needs_host(environment):
        mock = _start_embedded_mock(environment, options)
    shutdown = Shutdown(runner, lambda: runtime.in_flight, runtime.ended)
    _register_listeners(
        environment, runtime, runner, web_ui, records, shutdown=shutdown, files=files
    )
    environment.events.quitting.add_listener(
        lambda **_kw: _on_quitting(runtime, runner, mock, shutdown)
    )


def _register_listeners(
    environment: Environment,
    runtime: LLMRuntime,
    runner: Runner | None,
    web_ui: WebUI | None,
    records: RecordsWriter | None,
    *,
    shutdown: Shutdown,
    files: OpenFiles | None = None,
) -> None:
    is_worker = isinstance(runner, WorkerRunner)
    events = environment.events
    events.test_start.add_listener(lambda **_kw: _reload_options(environment))
    events.test_start.add_listener(
        lambda **_kw: runtime_of(environment).window.test_started(time.time())
    )
    events.spawning_complete.add_listener(
        lambda **_kw: runtime_of(environment).window.spawning_complete(time.time())
    )
    events.reset_stats.add_listener(runtime.reset_stats)
    install_traffic(environment, runtime, runner)
    _guard_load(environment, runtime, runner, files)
    if not isinstance(runner, MasterRunner):  # this process generates the load
        # First at test stop: what finished is recorded before anything reads the results.
        recorder = runtime.recorder
        events.test_start.add_listener(lambda **_kw: recorder.start())
        events.test_stop.add_listener(lambda **_kw: recorder.stop())
        events.test_stopping.add_listener(lambda **_kw: shutdown.users_stopping())
        events.test_stop.add_listener(lambda **_kw: shutdown.users_stopped())
        heap = _FrozenHeap()
        events.spawning_complete.add_listener(lambda **_kw: heap.freeze())
        events.test_stop.add_listener(lambda **_kw: heap.thaw())
        _start_health_probe(environment, runtime, runner)
    if isinstance(runner, WorkerRunner):
        worker = runner
        if getattr(environment.parsed_options, "processes", None):
            stop_with_parent(runner)  # forked by --processes: it ends with its master
        if records is not None:
            # The master numbers the workers when they connect, before any load.
            events.test_start.add_listener(
                lambda **_kw: records.use_suffix(f"worker{worker.worker_index}")
            )
        send_reports(environment, runtime)
    if isinstance(runner, MasterRunner):
        _watch_workers(environment, runtime, runner, shutdown)
    if web_ui is not None:
        runtime.live = True
        events.reset_stats.add_listener(runtime.recent.reset)
        add_live_route(web_ui, runtime, _report)
        take_start_form(
            web_ui, environment, lambda new: _check_form_options(environment, runtime, new)
        )
    if not is_worker:
        server = runtime.server_watch = ServerWatch(runtime)
        events.test_start.add_listener(lambda **_kw: server.start())
        events.test_stop.add_listener(lambda **_kw: server.stop())
        events.reset_stats.add_listener(server.reset)
        watch = SLOWatch(environment, runtime, keep_ui=web_ui is not None)
        events.test_start.add_listener(lambda **_kw: watch.start())
        events.test_stop.add_listener(lambda **_kw: watch.stop())
        events.quitting.add_listener(lambda **_kw: watch.stop())
        events.quit.add_listener(lambda **_kw: _print_summary(runtime))
        ticker = TimelineWatch(runtime)
        events.test_start.add_listener(lambda **_kw: ticker.start())
        events.test_stop.add_listener(lambda **_kw: ticker.stop())


def _watch_workers(
    environment: Environment, runtime: LLMRuntime, runner: MasterRunner, shutdown: Shutdown
) -> None:
    """Merge each worker's report, notice a worker that stops sending them, and wait for
    every worker's last one when quitting."""
    watch = runtime.worker_watch = WorkerWatch(runner)
    events = environment.events

    merger = merge_reports(environment, runtime)

    def merge(client_id: str, data: dict[str, Any]) -> None:
        if not watch.accepts(str(client_id)):
            return
        watch.reported(str(client_id))
        merger.take(str(client_id), data)

    events.worker_connect.add_listener(lambda client_id, **_kw: watch.joined(str(client_id)))
    events.worker_report.add_listener(merge)
    refuse_strangers(runner, watch)  # nor into Locust's own tables
    quit_workers_first(runner, shutdown)  # its quit waits for each worker's last report
    watch.start()
    events.quitting.add_listener(lambda **_kw: watch.stop())  # before the report is built


def _check_before_load(
    environment: Environment, options: LLMOptions, runner: Runner | None
) -> OpenFiles | None:
    """The host answers, and this process can hold ``--users``: its open-files limit is
    raised first (returned, for the checks at each later start, where load is sent)."""
    is_worker = isinstance(runner, WorkerRunner)
    host = environment.host
    # --host replaces every class's own host at start, so any user that is not in-process
    # sends there (a class's host attribute says nothing: Locust sets it at each start).
    sends = any(not issubclass(cls, LocalEngineUser) for cls in environment.user_classes)
    if host and sends and not is_worker and not options.skip_host_check:
        problem = host_problem(host, options)
        if problem is not None:
            _fail(problem)
    if isinstance(runner, MasterRunner):
        return None
    files = raise_limit()
    users = getattr(environment.parsed_options, "num_users", None)
    if isinstance(users, int) and not is_worker:
        refusal = files.refusal(users, "(--users)")
        if refusal is not None:
            _fail(refusal)
    return files


def _guard_load(
    environment: Environment, runtime: LLMRuntime, runner: Runner | None, files: OpenFiles | None
) -> None:
    """Where load is sent, each test start checks again what the start can change: the
    users asked for (web UI, load shape, a worker's share) and the host."""
    if isinstance(runner, MasterRunner):
        relay_refusals(runtime, runner)  # a worker's, so the run ends with exit code 1
    if runner is None or files is None:  # no runner, or the master
        return
    guard_spawning(runner, runtime, files)
    install_host_check(environment, runtime, runner)  # after the options are re-read


def _check_shape(environment: Environment) -> None:
    """sagellm's shapes (sagellm_users.shapes) read their options now, to fail before load."""
    configure = getattr(environment.shape_class, "configure_from_options", None)
    if configure is not None:
        configure(environment)


def _check_host(host: str) -> None:
    try:
        parse_base_url(host)
    except ConfigError as exc:
        _fail(f"--host: {exc}")


def _guard_secrets(environment: Environment, options: LLMOptions, web_ui: WebUI | None) -> None:
    """Keep the API key off the web UI's page (the start form keeps the launch key for an
    empty field: users.start_form) and say loudly when TLS is not verified."""
    if web_ui is not None:
        hide_secrets(web_ui)
    if options.insecure:
        log.warning(
            "sagellm: --insecure: https certificates are not verified, so anyone on the path "
            "can read or change the traffic (API key included); use --ca-bundle for a private CA"
        )


def _needs_host(environment: Environment) -> bool:
    """Whether any user class talks to a server and names none itself (in-process users
    need none; a class with its own ``host`` attribute keeps it)."""
    return any(
        not issubclass(cls, LocalEngineUser) and not getattr(cls, "host", None)
        for cls in environment.user_classes
    )


def _check_user_classes(environment: Environment, options: LLMOptions) -> None:
    """Each LLM user's backend must offer its API (``generate`` is LMDeploy's alone)."""
    for cls in environment.user_classes:
        if not issubclass(cls, LLMUser) or issubclass(cls, LocalEngineUser):
            continue
        backend = cls.backend or options.backend
        if backend not in BACKENDS:
            known = ", ".join(sorted(BACKENDS))
            _fail(f"{cls.__name__}.backend: unknown backend {backend!r}; choose one of {known}")
        paths = getattr(BACKENDS[backend], "PATHS", None)
        if paths is not None and cls.api not in paths:
            apis = ", ".join(sorted(paths))
            _fail(
                f"{cls.__name__}: the {backend} backend has no {cls.api!r} API; choose one of "
                f"{apis}, or a backend that has it (--backend)"
            )
        if cls.api == "generate" and options.min_tokens is not None:
            _fail(
                f"--min-tokens: {cls.__name__} sends LMDeploy's native /generate, which has no "
                "minimum-length field; drop --min-tokens or use LMDeployUser (its chat route "
                "takes min_new_tokens)"
            )


def _start_embedded_mock(environment: Environment, options: LLMOptions) -> MockServerProcess:
    mock = MockServerProcess(options.mock_args)
    try:
        url = mock.start()
    except MockServerStartError as exc:
        _fail(f"the embedded mock server did not start ({exc}); check --mock-args")
    log.info("No --host given: started the embedded mock LLM server at %s", url)
    environment.host = url
    if environment.parsed_options is not None:
        environment.parsed_options.host = url
    return mock


def _on_quitting(
    runtime: LLMRuntime,
    runner: Runner | None,
    mock: MockServerProcess | None,
    shutdown: Shutdown,
) -> None:
    """Everything at shutdown, in the one order that loses nothing.

    On Ctrl-C or SIGTERM Locust fires ``quitting`` *before* it stops the users, so a
    load-generating process stops them first: each in-flight request is recorded as
    cancelled (--stop-timeout lets it finish first) and every queued one is recorded
    (test_stop) before the records file closes and the report is built;
    a worker then sends its final report, and a master first waits for every worker's
    (see users.stopping). The embedded mock goes last, so no request fails only because
    the test was ending. A second Ctrl-C or SIGTERM meanwhile cancels what is waited for."""
    if shutdown.begun:  # a second SIGTERM, or Locust's own second run once the runner quit
        shutdown.again(signalled=False)
        shutdown.wait_for_exit()  # the first one writes the files and exits
        return
    with shutdown.running():
        if isinstance(runner, MasterRunner):
            runner.quit()  # waits for the workers' final reports; Locust's quit comes later
        elif runner is not None and runner.state in (STATE_SPAWNING, STATE_RUNNING):
            runner.stop()
            if isinstance(runner, WorkerRunner):
                send_final_report(runner)
        elif runner is not None and runner.state == STATE_CLEANUP:
            # SIGTERM while the users stop (--stop-timeout after --run-time): stop now.
            shutdown.again()
            runner.user_greenlets.join(timeout=USERS_KILL_WAIT_S)
        try:
            runtime.close()
        except Exception:  # the report, the exit code and the mock's stop still follow
            log.exception("sagellm: closing the records file failed")
        stop_engines(runtime.engines)
        if not isinstance(runner, WorkerRunner):
            if runtime.server_watch is not None:
                runtime.server_watch.stop()
            # quitting comes before Locust picks the exit code; quit, after its own tables.
            _finish(runtime)
        if mock is not None:
            mock.stop()


def _keep_token_rows_out_of_aggregated(stats: RequestStats) -> None:
    """TTFT and TBT rows are per-token views of the same requests; counting them in
    "Aggregated" would triple the request count and mix three different latencies.

    A RETRY row's failures (attempts ``--retries`` sent again) stay in that row alone: in
    "Aggregated" or in Locust's error table (whose entries alone make Locust exit with
    ``--exit-code-on-error``) they would make a run whose every request ended ok look
    failed. What they were is in the records (``retry_errors``) and the report."""
    original_request = stats.log_request
    original_error = stats.log_error

    def log_request(method: str, name: str, response_time: int, content_length: int) -> None:
        if method in METRIC_ROW_TYPES:
            stats.entries[(name, method)].log(response_time, content_length)
        else:
            original_request(method, name, response_time, content_length)

    def log_error(method: str, name: str, error: Exception | str | None) -> None:
        if method in METRIC_ROW_TYPES:
            stats.entries[(name, method)].log_error(error)
        else:
            original_error(method, name, error)

    stats.log_request = log_request  # type: ignore[method-assign]
    stats.log_error = log_error  # type: ignore[method-assign]


def _check_form_options(environment: Environment, runtime: LLMRuntime, options: LLMOptions) -> None:
    """What the start form may change and only a check against files or the locustfiles
    can refuse: a workload's dataset and tokenizer, a shape's options."""
    if options.workload is not None:
        runtime.datasets.get(options.workload)
        check_tokenizer(options.workload.tokenizer)
    check_shape_options(options, environment.shape_class)


def _reload_options(environment: Environment) -> None:
    """The web UI's start form may have changed options: validate them again."""
    runtime = runtime_of(environment)
    try:
        runtime.update_options(LLMOptions.from_namespace(environment.parsed_options))
    except ConfigError as exc:
        runtime.options_error = str(exc)
        log.error("sagellm: %s; the test was stopped, fix the option and start again", exc)
        runner = environment.runner
        if runner is not None:
            gevent.spawn(runner.stop)


GEN1_THRESHOLD = 0
"""What survives one young collection moves to the old generation (see _FrozenHeap)."""
GEN2_THRESHOLD = 1000
"""Full collections 100x rarer than Python's default (10) while users run."""


class _FrozenHeap:
    """Keeps the cyclic GC from pausing the event loop once every user is running.

    Thousands of users mean millions of long-lived objects (greenlets, clients, options)
    and thousands of in-flight requests whose objects live for seconds; each collection
    walks the objects of the generations it collects, stamping every chunk read meanwhile
    that late. Measured at 5,000 streams (bench/load_bench.py --suite, scenario "scale"):

    * ``gc.freeze()`` moves what exists once spawning completes into a generation the
      collector skips, and a higher third threshold makes full collections rare: full
      collections of 100-300 ms every few seconds are gone (event delay p99 282 -> 8-11 ms);
    * a middle threshold of 0 sends what survives one young collection straight to the
      old generation. With Python's 10, the middle generation gathered every in-flight
      request's objects (~40,000) and each of its collections paused 16-18 ms; now a young
      collection walks what was allocated since the previous one (p99 6.8 -> 2.5 ms, and
      1.5 -> 0.7 ms once reads stopped allocating per wait).

    Nothing is leaked: requests' objects are freed by reference counting as before, cycles
    by the (rarer) full collections. All of it is undone when the test stops, back to the
    thresholds in force when the heap was frozen."""

    def __init__(self) -> None:
        self._saved: tuple[int, int, int] | None = None

    def freeze(self) -> None:
        if self._saved is None:
            self._saved = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(self._saved[0], GEN1_THRESHOLD, GEN2_THRESHOLD)

    def thaw(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None
        gc.unfreeze()


def _start_health_probe(
    environment: Environment, runtime: LLMRuntime, runner: Runner | None
) -> None:
    """Self-measurement where the load is generated: local runner or worker, during tests."""

    def measuring() -> bool:
        return runtime.window.measuring(time.time())

    if isinstance(runner, WorkerRunner):
        name = str(runner.client_id)
    else:
        runtime.measure_here()
        name = "local"
    timeline = runtime.timeline
    probe = HealthProbe(
        lambda: runtime.own_health,
        name=name,
        measuring=measuring,
        lag_sink=lambda lag: timeline.add_lag(time.time(), lag),
    )
    events = environment.events
    events.test_start.add_listener(lambda **_kw: probe.start())
    # Stopping thousands of users blocks the loop for a while; that is not the test's lag.
    # (Runner.stop fires test_stopping before every test_stop.)
    events.test_stopping.add_listener(lambda **_kw: probe.stop())
    events.quitting.add_listener(lambda **_kw: probe.stop())


def _finish(runtime: LLMRuntime) -> None:
    """Build the final report once; with --slo, its verdict decides the exit code."""
    report = runtime.final_report = _report(runtime)
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


def _print_summary(runtime: LLMRuntime) -> None:
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
    report = runtime.final_report or _report(runtime)
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
    for path in runtime.options.reports:
        write_report(report, path)
        text += f"\nReport: {path}"
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _report(runtime: LLMRuntime, timeline: bool = True) -> LLMReport:
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
        arrivals=(options.arrival, options.request_rate, options.burstiness)
        if options.request_rate > 0
        else None,
        sweep=runtime.sweep,
        timeline=runtime.timeline if timeline else None,
    )
    watch = runtime.worker_watch
    if watch is not None and watch.lost:
        report.lost_workers = list(watch.lost.values())
        report.partial = True
    report.records_lost, report.records_error = runtime.lost_records()
    return report
