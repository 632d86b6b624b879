"""The three parts a process plays in a Locust test, and the services each one runs.

A locustfile runs as a local runner (it sends the load and keeps the results), as a worker
(it sends the load; its results go to the master) or as a master (it sends nothing; it
merges its workers' results, runs the web UI and the watches). Each role here lists the
services it runs beside the users (:class:`~sagellm_users._users.service.Service`: started
when a test starts, stopped when it ends), and :meth:`Role.install` is the one place
Locust's listeners are registered: one per event, calling every service in list order.

===========================  =====  ======  ======
service                      local  worker  master
===========================  =====  ======  ======
read the options again       yes    yes     yes
measurement window           yes    yes     yes
workload and arrivals        yes    yes     --
rate split over workers      --     --      yes
end of a trace replay        yes    --      yes
host check                   yes    yes     --
recorder                     yes    yes     --
users' stopping (Shutdown)   yes    yes     --
frozen heap                  yes    yes     --
health probe                 yes    yes     --
records file per worker      --     yes     --
report merger                --     --      yes
worker watch                 --     --      yes
server watch                 yes    --      yes
SLO watch                    yes    --      yes
timeline watch               yes    --      yes
live stats (web UI)          yes    --      yes
===========================  =====  ======  ======

Besides the services, a worker ships a :class:`~sagellm_users._users.worker_wire.WorkerReport`
with each of Locust's reports, and a master merges them; both sides of that wire are
registered here too, as is the shutdown each role runs when the process quits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import gevent
import locust.log
from locust.runners import STATE_CLEANUP, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from sagellm_users._errors import ConfigError
from sagellm_users._users.capacity_guard import guard_spawning
from sagellm_users._users.ending import build_run_report, finish, print_summary
from sagellm_users._users.engines import stop_engines
from sagellm_users._users.frozen_heap import FrozenHeap
from sagellm_users._users.health_probe import HealthProbe
from sagellm_users._users.host_check import HostCheck
from sagellm_users._users.ignored_options import check_shape_options
from sagellm_users._users.live_route import add_live_route
from sagellm_users._users.options import LLMOptions
from sagellm_users._users.parent_watch import stop_with_parent
from sagellm_users._users.refusal import REFUSED_MESSAGE, refusal_relay
from sagellm_users._users.runs import Runs
from sagellm_users._users.server_watch import ServerWatch
from sagellm_users._users.service import Service
from sagellm_users._users.slo_watch import SLOWatch
from sagellm_users._users.start_form import take_start_form
from sagellm_users._users.stopping import Shutdown, quit_workers_first, send_final_report
from sagellm_users._users.strangers import refuse_strangers
from sagellm_users._users.timeline_watch import TimelineWatch
from sagellm_users._users.trace_end import TraceEnd
from sagellm_users._users.traffic_setup import PLAN_MESSAGE, RatePlan, TrafficBuilder
from sagellm_users._users.worker_watch import WorkerWatch
from sagellm_users._users.worker_wire import WIRE_KEY, Merger, collect
from sagellm_users._workloads.build import check_tokenizer

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.runners import Runner
    from locust.web import WebUI

    from sagellm_users._metrics import RecordsWriter
    from sagellm_users._users.open_files import OpenFiles
    from sagellm_users._users.runtime import LLMRuntime
    from sagellm_users.mock_server import MockServerProcess

__all__ = ["LocalRole", "MasterRole", "Role", "Setup", "WorkerRole", "role_for", "role_of"]

log = logging.getLogger("sagellm_users")

_ATTRIBUTE = "sagellm_role"
USERS_KILL_WAIT_S = 10.0
"""How long a shutdown waits for cancelled users to end (killing them takes milliseconds)."""


@dataclass(slots=True)
class Setup:
    """What the plugin prepared for one environment before any load (all checks passed)."""

    environment: Environment
    runtime: LLMRuntime
    runner: Runner | None
    web_ui: WebUI | None = None
    records: RecordsWriter | None = None
    """The records file, where this process writes one (not on a master)."""
    files: OpenFiles | None = None
    """This process's open-files limit, where it sends load."""
    mock: MockServerProcess | None = None
    """The embedded mock server this process started, stopped last."""


class Role:
    """One process's part in the test: its services and the listeners that drive them."""

    name: ClassVar[str]
    """How logs name this process's part: ``local``, ``worker`` or ``master``."""
    runs: Runs | None = None
    """The web session's runs, where results are kept (see _users.runs)."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.environment = setup.environment
        self.runtime = setup.runtime
        runtime = setup.runtime
        self.shutdown = Shutdown(setup.runner, lambda: runtime.in_flight, runtime.ended)
        self.services: list[Service] = self._services()

    def _services(self) -> list[Service]:
        raise NotImplementedError

    def _install_role(self) -> None:
        """Listeners and message handlers of this role alone (the wire, worker events)."""

    def install(self) -> None:
        """Register every listener of this process, then begin the services."""
        setattr(self.environment, _ATTRIBUTE, self)
        events = self.environment.events
        events.test_start.add_listener(lambda **_kw: self._each("start"))
        events.spawning_complete.add_listener(lambda **_kw: self._each("all_spawned"))
        events.test_stopping.add_listener(lambda **_kw: self._each("stopping"))
        events.test_stop.add_listener(lambda **_kw: self._each("stop"))
        events.reset_stats.add_listener(lambda **_kw: self._each("reset"))
        events.quitting.add_listener(lambda **_kw: self._quitting())
        self._install_role()
        self._install_web()
        self._each("begin")

    def _each(self, moment: str) -> None:
        """Tell every service, in order; one that fails is logged as Locust logs a failing
        listener (and the exit code says so) and the others still hear it."""
        for service in self.services:
            try:
                getattr(service, moment)()
            except Exception:
                name = type(service).__name__
                log.exception("sagellm: %s: %s.%s failed", self.name, name, moment)
                locust.log.unhandled_greenlet_exception = True

    def _quitting(self) -> None:
        """Everything at shutdown, in the one order that loses nothing.

        On Ctrl-C or SIGTERM Locust fires ``quitting`` *before* it stops the users, so a
        load-generating process stops them first: each in-flight request is recorded as
        cancelled (--stop-timeout lets it finish first) and every queued one is recorded
        (test_stop) before the records file closes and the report is built; a worker then
        sends its final report, and a master first waits for every worker's (see
        _users.stopping). The embedded mock goes last, so no request fails only because the
        test was ending. A second Ctrl-C or SIGTERM meanwhile cancels what is waited for."""
        self._each("quitting")
        shutdown = self.shutdown
        if shutdown.begun:  # a second SIGTERM, or Locust's own second run once the runner quit
            shutdown.again(signalled=False)
            shutdown.wait_for_exit()  # the first one writes the files and exits
            return
        runtime = self.runtime
        with shutdown.running():
            self._stop_load()
            try:
                runtime.close()
            except Exception:  # the report, the exit code and the mock's stop still follow
                log.exception("sagellm: closing the records file failed")
            stop_engines(runtime.engines)
            self._keep_results()
            if self.setup.mock is not None:
                self.setup.mock.stop()

    def _stop_load(self) -> None:
        """Stop the users, or the workers, so that what they measured is recorded."""

    def _keep_results(self) -> None:
        """Where results are kept: the final report and the exit code it decides."""

    def _install_web(self) -> None:
        web_ui = self.setup.web_ui
        if web_ui is None:
            return
        runtime = self.runtime
        runtime.live = True
        add_live_route(web_ui, runtime, build_run_report, self.runs)
        take_start_form(web_ui, self.environment, self._check_form)

    def _check_form(self, options: LLMOptions) -> None:
        """What the start form may change and only a check against files or the locustfiles
        can refuse: a workload's dataset and tokenizer, a shape's options."""
        if options.workload is not None:
            self.runtime.datasets.get(options.workload)
        check_tokenizer(options.tokenizer_choice)
        check_shape_options(options, self.environment.shape_class)


class _LoadRole(Role):
    """A process that sends the load: a local runner or a worker."""

    def _load_services(self, probe_name: str) -> list[Service]:
        setup, runtime = self.setup, self.runtime
        runner = setup.runner
        self.traffic = TrafficBuilder(self.environment, runtime, runner)
        services: list[Service] = [ReadOptions(self.environment, runtime), RunWindow(runtime)]
        services.append(self.traffic)
        if runner is not None and setup.files is not None:
            services.append(HostCheck(self.environment, runtime, runner))
        # The recorder is the first to stop: what finished is recorded before anything
        # reads the results.
        services += [runtime.recorder, self.shutdown, FrozenHeap(), self._probe(probe_name)]
        return services

    def _probe(self, name: str) -> HealthProbe:
        runtime = self.runtime
        timeline = runtime.timeline
        return HealthProbe(
            lambda: runtime.own_health,
            name=name,
            measuring=lambda: runtime.window.measuring(time.time()),
            lag_sink=lambda lag: timeline.add_lag(time.time(), lag),
        )

    def _install_role(self) -> None:
        runner, files = self.setup.runner, self.setup.files
        if runner is not None and files is not None:
            guard_spawning(runner, self.runtime, files)

    def _stop_load(self) -> None:
        runner = self.setup.runner
        if runner is None:
            return
        if runner.state in (STATE_SPAWNING, STATE_RUNNING):
            runner.stop()
            if isinstance(runner, WorkerRunner):
                send_final_report(runner)
        elif runner.state == STATE_CLEANUP:
            # SIGTERM while the users stop (--stop-timeout after --run-time): stop now.
            self.shutdown.again()
            runner.user_greenlets.join(timeout=USERS_KILL_WAIT_S)


class _ResultRole(Role):
    """What a process that keeps the results runs: the watches, the summary at the end."""

    def _runs_service(self) -> Runs:
        """The first service: a new test closes the previous run before anything restarts."""
        self.runs = self.runtime.runs = Runs(self.runtime, build_run_report)
        return self.runs

    def _result_services(self) -> list[Service]:
        runtime = self.runtime
        server = runtime.server_watch = ServerWatch(runtime)
        services: list[Service] = []
        if self.setup.web_ui is not None:
            services.append(LiveStats(runtime))
        services += [
            server,
            SLOWatch(self.environment, runtime, keep_ui=self.setup.web_ui is not None),
            TimelineWatch(runtime),
            TraceEnd(self.environment, runtime),
        ]
        return services

    def _install_summary(self) -> None:
        self.environment.events.quit.add_listener(lambda **_kw: print_summary(self.runtime))

    def _keep_results(self) -> None:
        # quitting comes before Locust picks the exit code; quit, after its own tables.
        runtime = self.runtime
        if runtime.server_watch is not None:
            runtime.server_watch.stop()
        finish(runtime)


class LocalRole(_LoadRole, _ResultRole):
    """Locust's local runner: sends the load and keeps the results."""

    name = "local"

    def _services(self) -> list[Service]:
        self.runtime.measure_here()
        return [
            self._runs_service(),
            *self._load_services(self.name),
            *self._result_services(),
        ]

    def _install_role(self) -> None:
        super()._install_role()
        self._install_summary()


class WorkerRole(_LoadRole):
    """A worker: sends its share of the load and reports to the master every 3 s."""

    name = "worker"

    def __init__(self, setup: Setup) -> None:
        assert isinstance(setup.runner, WorkerRunner)
        self.worker: WorkerRunner = setup.runner
        super().__init__(setup)

    def _services(self) -> list[Service]:
        services = self._load_services(str(self.worker.client_id))
        if self.setup.records is not None:
            services.append(WorkerRecords(self.setup.records, self.worker))
        return services

    def _install_role(self) -> None:
        super()._install_role()
        worker, runtime = self.worker, self.runtime
        worker.register_message(PLAN_MESSAGE, self.traffic.take_plan)
        self.environment.events.report_to_master.add_listener(
            lambda client_id, data: data.__setitem__(WIRE_KEY, collect(runtime).to_wire())
        )
        if getattr(self.environment.parsed_options, "processes", None):
            stop_with_parent(worker)  # forked by --processes: it ends with its master


class MasterRole(_ResultRole):
    """The master: merges its workers' reports, watches them, keeps the results."""

    name = "master"

    def __init__(self, setup: Setup) -> None:
        assert isinstance(setup.runner, MasterRunner)
        self.master: MasterRunner = setup.runner
        self.rate_plan = RatePlan(setup.runtime, self.master)
        self.merger = Merger(setup.runtime)
        self.watch = setup.runtime.worker_watch = WorkerWatch(self.master)
        super().__init__(setup)

    def _services(self) -> list[Service]:
        runtime = self.runtime
        return [
            self._runs_service(),
            ReadOptions(self.environment, runtime),
            RunWindow(runtime),
            self.rate_plan,
            self.merger,
            self.watch,
            *self._result_services(),
        ]

    def _install_role(self) -> None:
        master, watch, runtime = self.master, self.watch, self.runtime
        events = self.environment.events
        # A worker's refusal of a start ends the run with exit code 1.
        master.register_message(REFUSED_MESSAGE, refusal_relay(runtime, master))
        events.worker_connect.add_listener(lambda client_id, **_kw: self._joined(str(client_id)))
        events.worker_report.add_listener(self._merge)
        refuse_strangers(master, watch)  # nor into Locust's own tables
        # Its quit waits for each worker's last report.
        events.worker_report.add_listener(quit_workers_first(master, self.shutdown))
        self._install_summary()

    def _joined(self, client_id: str) -> None:
        self.rate_plan.broadcast()
        self.watch.joined(client_id)

    def _merge(self, client_id: str, data: dict[str, Any]) -> None:
        """A worker's report, merged when the worker belongs to this master's test."""
        client = str(client_id)
        if not self.watch.accepts(client):
            return
        self.watch.reported(client)
        self.merger.take(client, data)

    def _stop_load(self) -> None:
        self.master.quit()  # waits for the workers' final reports; Locust's quit comes later


def role_for(setup: Setup) -> Role:
    """The role of the process Locust started (no runner: an API run's local process)."""
    if isinstance(setup.runner, MasterRunner):
        return MasterRole(setup)
    if isinstance(setup.runner, WorkerRunner):
        return WorkerRole(setup)
    return LocalRole(setup)


def role_of(environment: Environment) -> Role:
    """The role installed on ``environment`` (sagellm_users.install must have run)."""
    role = getattr(environment, _ATTRIBUTE, None)
    if not isinstance(role, Role):
        raise LookupError("sagellm-locust is not installed on this environment")
    return role


class ReadOptions(Service):
    """The web UI's start form may have changed the options: validate them again at each
    start (first, so every later service sees them)."""

    def __init__(self, environment: Environment, runtime: LLMRuntime) -> None:
        self._environment = environment
        self._runtime = runtime

    def start(self) -> None:
        try:
            self._runtime.update_options(
                LLMOptions.from_namespace(self._environment.parsed_options)
            )
        except ConfigError as exc:
            self._runtime.options_error = str(exc)
            log.error("sagellm: %s; the test was stopped, fix the option and start again", exc)
            runner = self._environment.runner
            if runner is not None:
                gevent.spawn(runner.stop)


class RunWindow(Service):
    """The measurement window's marks (test start, all users spawned) and the run's own
    statistics, reset with Locust's."""

    def __init__(self, runtime: LLMRuntime) -> None:
        self._runtime = runtime

    def start(self) -> None:
        self._runtime.window.test_started(time.time())

    def all_spawned(self) -> None:
        self._runtime.window.spawning_complete(time.time())

    def reset(self) -> None:
        self._runtime.reset_stats()


class LiveStats(Service):
    """The live page's recent-window statistics restart with Locust's reset."""

    def __init__(self, runtime: LLMRuntime) -> None:
        self._runtime = runtime

    def reset(self) -> None:
        self._runtime.recent.reset()


class WorkerRecords(Service):
    """Each worker writes its own records file, named after the index the master gave it
    when it connected (before any load)."""

    def __init__(self, records: RecordsWriter, worker: WorkerRunner) -> None:
        self._records = records
        self._worker = worker

    def start(self) -> None:
        self._records.use_suffix(f"worker{self._worker.worker_index}")
