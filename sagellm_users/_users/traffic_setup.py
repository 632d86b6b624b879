"""Where the workload and the open-loop schedule are built, and how workers get their rate.

Both are built at each test start on every process that generates load (the host is known
there by then, also on a worker, which learns it from the master's spawn message), so a
``server`` token counter can ask the server under test, before any user sends: each
process asks for itself, once (not per user), and the master's report adds up the calls.
The open-loop rate is the test's total: the master splits it over the workers it has
(again when one joins, or a sweep changes the rate) and tells each its rank; a local
runner takes all of it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

from sagellm_users._errors import ConfigError
from sagellm_users._users.runtime import LLMRuntime
from sagellm_users._users.service import Service
from sagellm_users._workloads.arrivals import ArrivalPlan, ArrivalSchedule
from sagellm_users._workloads.build import build_workload, make_counter, output_counter
from sagellm_users._workloads.tokens import TokenCounter
from sagellm_users._workloads.trace import TracePrompts, TraceSchedule

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.rpc import Message
    from locust.runners import Runner

__all__ = ["PLAN_MESSAGE", "RatePlan", "TrafficBuilder", "set_request_rate"]

log = logging.getLogger("sagellm_users")

PLAN_MESSAGE = "sagellm_arrivals"
TRACE_LEAD_S = 0.5
"""A replay spread over workers starts this long after the master's start: time for each
worker to get its plan and start its users, so the first lines are not late by design."""


class TrafficBuilder(Service):
    """Where load is sent: builds the workload and the open-loop schedule at each start."""

    def __init__(self, environment: Environment, runtime: LLMRuntime, runner: Runner | None):
        self._environment = environment
        self._runtime = runtime
        self._runner = runner
        self._plan: ArrivalPlan | None = None
        """A worker's latest share of the rate (it may come before the spawn message)."""

    def start(self) -> None:
        _prepare(self._environment, self._runtime, self._runner, self._plan)

    def take_plan(self, environment: Environment, msg: Message, **_kw: Any) -> None:
        """On a worker, the handler of :data:`PLAN_MESSAGE`: its share of the rate."""
        assert isinstance(self._runner, WorkerRunner)
        self._plan = _plan_for(self._runner, msg.data)
        if self._runtime.arrivals is not None:
            self._runtime.arrivals.set_plan(self._plan)


class RatePlan(Service):
    """On the master: splits the open-loop rate over the workers it has, at each start and
    again whenever a worker joins."""

    def __init__(self, runtime: LLMRuntime, master: MasterRunner) -> None:
        self._runtime = runtime
        self._master = master

    def start(self) -> None:
        _broadcast(self._runtime, self._master)

    def broadcast(self) -> None:
        """Again, when a worker joins; a trace replay's lines were dealt out at the start
        (dealing them again would send some twice), so a worker joining it sends nothing."""
        if self._runtime.options.trace_requests is None:
            _broadcast(self._runtime, self._master)


def set_request_rate(runtime: LLMRuntime, rate: float) -> None:
    """Change the open-loop rate mid-test (a sweep's next stage), on every process.

    The parsed options change too: they are validated again at each test start (and sent
    to workers with each spawn), which would otherwise bring back the first rate."""
    environment = runtime.environment
    runner = environment.runner
    if environment.parsed_options is not None:
        environment.parsed_options.request_rate = rate
    runtime.options = runtime.options.model_copy(update={"request_rate": rate})
    if isinstance(runner, MasterRunner):
        _broadcast(runtime, runner)
    elif runtime.arrivals is not None:
        runtime.arrivals.set_plan(ArrivalPlan(rate))


def _prepare(
    environment: Environment,
    runtime: LLMRuntime,
    runner: Runner | None,
    plan: ArrivalPlan | None,
) -> None:
    options = runtime.options
    process = str(getattr(runner, "worker_index", 0)) if isinstance(runner, WorkerRunner) else "0"
    spec = options.workload
    runtime.workload = None
    runtime.output_counter = None
    model_dirs = (options.vllm_model, options.lmdeploy_model, options.sagellm_model)
    counter = None
    try:
        if spec is not None:
            counter = _counter(environment, runtime, spec.tokenizer)
            conversations = runtime.datasets.get(spec)
            runtime.workload = build_workload(spec, counter, conversations, process)
            runtime.workload_info = runtime.workload.info()
        runtime.output_counter = output_counter(options.tokenizer_choice, model_dirs, counter)
    except ConfigError as exc:
        _stop_for(runtime, runner, "workload", exc)
        return
    if options.trace_requests is not None:
        try:
            _prepare_trace(environment, runtime, runner, plan)
        except ConfigError as exc:
            _stop_for(runtime, runner, "--trace", exc)
        return
    runtime.trace_prompts = None
    if options.request_rate <= 0:
        runtime.arrivals = None
        return
    seed = spec.seed if spec is not None else 0
    runtime.arrivals = ArrivalSchedule(
        options.arrival,  # type: ignore[arg-type]  # checked by the options
        options.burstiness,
        seed=f"{seed}/arrivals/{process}",
    )
    if isinstance(runner, WorkerRunner):
        if plan is not None:  # the master's plan came before the spawn message
            runtime.arrivals.set_plan(plan)
    else:
        runtime.arrivals.set_plan(ArrivalPlan(options.request_rate))


def _counter(environment: Environment, runtime: LLMRuntime, choice: str) -> TokenCounter:
    """The token counter ``choice`` names, asking the host under test when it counts."""
    options = runtime.options
    return make_counter(
        choice,
        host=environment.host,
        model_dirs=(options.vllm_model, options.lmdeploy_model, options.sagellm_model),
        model=options.model,
        api_key=options.api_key.get_secret_value() if options.api_key else None,
        headers=options.headers,
        verify=options.verify,
    )


def _stop_for(runtime: LLMRuntime, runner: Runner | None, what: str, exc: ConfigError) -> None:
    """What the traffic needs could not be made: users send nothing, the test stops."""
    runtime.options_error = str(exc)
    log.error("sagellm: %s: %s; the test was stopped", what, exc)
    if runner is not None:
        gevent.spawn(runner.stop)


def _prepare_trace(
    environment: Environment,
    runtime: LLMRuntime,
    runner: Runner | None,
    plan: ArrivalPlan | None,
) -> None:
    """A replay's prompts (measured with the server's tokenizer first, when it counts them)
    and its schedule: this process's share of the lines, from the master's start."""
    options = runtime.options
    trace = options.trace_requests
    assert trace is not None
    counter = _counter(environment, runtime, options.tokenizer or "auto")
    prompts = TracePrompts(counter, options.seed or 0)
    prompts.prepare()
    runtime.trace_prompts = prompts
    runtime.workload_info = {
        "name": "trace replay",
        **trace.describe(options.trace_speed),
        "token_counter": counter.description,
    }
    runtime.arrivals = schedule = TraceSchedule(trace, options.trace_speed)
    if isinstance(runner, WorkerRunner):
        if plan is not None:  # the master's plan came before the spawn message
            schedule.set_plan(plan)
    else:
        schedule.set_plan(ArrivalPlan(trace.rate(options.trace_speed)))


def _workers(master: MasterRunner) -> list[str]:
    nodes = [*master.clients.ready, *master.clients.spawning, *master.clients.running]
    return sorted(str(node.id) for node in nodes)


def _broadcast(runtime: LLMRuntime, master: MasterRunner) -> None:
    """The plan of each worker: its share of the rate, or of a trace's lines."""
    options = runtime.options
    trace = options.trace_requests
    rate = options.request_rate if trace is None else trace.rate(options.trace_speed)
    if rate > 0:
        start = time.time() + (TRACE_LEAD_S if trace is not None else 0.0)
        data = {"rate": rate, "workers": _workers(master), "start_wall": start}
        master.send_message(PLAN_MESSAGE, data)


def _plan_for(worker: WorkerRunner, data: dict[str, Any]) -> ArrivalPlan:
    workers = [str(w) for w in data["workers"]]
    me = str(worker.client_id)
    if me not in workers:  # joined after the plan was made: the next one counts it
        workers.append(me)
    start = data.get("start_wall")
    return ArrivalPlan(
        float(data["rate"]),
        len(workers),
        workers.index(me),
        None if start is None else float(start),
    )
