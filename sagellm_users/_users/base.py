"""``LLMUser``: the Locust user that streams one generation per task and times it.

The user knows Locust, nothing about wire formats: its backend client turns a
:class:`GenerationRequest` into timed chunks, and the user turns those into one
:class:`RequestRecord` that the runtime records and reports.
"""

from __future__ import annotations

import time
from time import perf_counter
from typing import Any, ClassVar

import gevent
from gevent import GreenletExit
from locust import User, task
from locust.exception import StopUser

from sagellm_users._backends import Api, BackendClient, GenerationRequest, ResponseStream
from sagellm_users._errors import ConfigError, LLMError
from sagellm_users._metrics import RequestRecord
from sagellm_users._metrics.folding import fold_chunks
from sagellm_users._redact import scrub_secrets
from sagellm_users._users.connect_backoff import ConnectBackoff
from sagellm_users._users.retry import attempt_label
from sagellm_users._users.runtime import RETRY_ROW, LLMRuntime, runtime_of
from sagellm_users._workloads.trace import TraceExhausted, TraceRow, TraceSchedule
from sagellm_users._workloads.traffic import NextRequest, UserTraffic

__all__ = ["LLMUser"]


class LLMUser(User):
    """Base class of every LLM user: one client, one request at a time, closed loop.

    Subclasses choose ``backend`` and ``api``; override :meth:`build_request` for custom
    prompts, or write your own ``@task`` that calls :meth:`send`.
    """

    abstract = True
    backend: ClassVar[str | None] = None
    """Name of the backend client (see :data:`sagellm_users._backends.BACKENDS`); None
    takes ``--backend`` (default ``openai``)."""
    api: ClassVar[Api] = "chat"
    """Which API the default task calls: ``"chat"``, ``"completions"``, OpenAI's
    ``"responses"``, Anthropic's ``"messages"``, or LMDeploy's native ``"generate"``."""
    label: ClassVar[str] = ""
    """Put before the endpoint in every row name (``"vllm /v1/chat/completions"``), so
    users of several backends in one test are reported side by side."""

    llm: LLMRuntime
    client: BackendClient
    backend_name: str
    """The backend this user's client speaks: its class's, else ``--backend``."""
    _intended_start: float | None = None
    """When the current wait between tasks ends: the intended start of the next request."""
    traffic: UserTraffic | None = None
    """This user's share of the workload (``--workload`` and friends), if one is set."""
    _planned: NextRequest | None = None
    _arrival: float | None = None
    _trace_row: TraceRow | None = None
    """--trace: the line this user claimed with its arrival, to send next."""
    """Open loop: the arrival time the current wait ends at (claimed in the wait)."""
    _backoff: ConnectBackoff | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that declares its own ``@task`` replaces the default task.

        Locust adds a subclass's tasks to the inherited ones, which would silently keep
        sending default requests beside the custom ones.
        """
        super().__init_subclass__(**kwargs)
        own_tasks = any(hasattr(v, "locust_task_weight") for v in vars(cls).values())
        if own_tasks:
            default = LLMUser.__dict__["generate"]
            cls.tasks = [t for t in cls.tasks if t is not default]

    def on_start(self) -> None:
        self.llm = runtime_of(self.environment)
        if self.llm.options_error is not None:
            raise StopUser()  # the plugin logged the bad option and stops the test
        self.client = self.connect()
        workload = self.llm.workload
        self.traffic = workload.traffic() if workload is not None else None
        if self.llm.arrivals is not None:
            self.wait_time = self._until_arrival  # type: ignore[method-assign]
        elif self.traffic is not None and workload is not None and workload.multi_turn:
            self.wait_time = self.traffic.think_time  # type: ignore[method-assign]
        # Locust's wait between tasks is TaskSet._sleep; timing it tells how late each
        # request starts after its wait ends (the start lag in the client health report).
        taskset = getattr(self, "_taskset_instance", None)
        if taskset is not None:
            taskset._sleep = self._timed_sleep

    def connect(self) -> BackendClient:
        """The client this user sends through (and ``backend_name``): its backend's client
        for the host. In-process users return their engine's client instead."""
        if not self.host:
            raise ConfigError("no host: pass --host URL (or omit it to use the embedded mock)")
        self.backend_name = self.backend or self.llm.options.backend
        return self.llm.create_client(self.backend_name, self.host)

    def _until_arrival(self) -> float:
        """Open loop's wait between tasks: until the next arrival this user claims.

        Waiting in Locust's wait (not inside the task) keeps Locust's stop semantics: a
        stopping test interrupts a waiting user, so nothing is sent after the test ends."""
        self._arrival = self._claim()
        return max(0.0, self._arrival - perf_counter())

    def _claim(self) -> float:
        """The next arrival's intended start (``perf_counter()``); in a trace replay the
        line it starts too, and a user with no line left stops."""
        arrivals = self.llm.arrivals
        assert arrivals is not None
        if not isinstance(arrivals, TraceSchedule):
            return arrivals.claim()
        try:
            start, self._trace_row = arrivals.claim_line()
        except TraceExhausted:
            raise StopUser() from None
        return start

    def _timed_sleep(self, seconds: float) -> None:
        self._intended_start = perf_counter() + max(0.0, seconds)
        gevent.sleep(seconds)

    def on_stop(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()

    @task
    def generate(self) -> None:
        """The default task: one request built by :meth:`build_request`."""
        self.send(self.build_request())

    def build_request(self) -> GenerationRequest:
        """The next request: the trace's line (--trace), the workload's (prompt, lengths,
        conversation turn), else the --prompt from the options."""
        prompts = self.llm.trace_prompts
        if prompts is not None:
            if self._arrival is None:  # the user's first request: no wait came before it
                self._arrival = self._claim()
            row, self._trace_row = self._trace_row, None
            assert row is not None
            messages, tokens = prompts.messages(row)
            defaults = self.llm.request_defaults()
            request = defaults.request(self.api, messages, prompts.max_tokens(row))
            self._planned = NextRequest(request, tokens)
            return request
        if self.traffic is not None:
            planned = self._planned = self.traffic.next(self.api, self.llm.request_defaults())
            return planned.request
        message = {"role": "user", "content": self.llm.next_prompt()}
        return self.llm.request_defaults().request(self.api, [message])

    def _start_record(
        self, request: GenerationRequest, name: str | None, planned: NextRequest | None
    ) -> RequestRecord:
        """The record of a request about to start: at its arrival time in open loop."""
        intended, self._intended_start = self._intended_start, None
        arrivals = self.llm.arrivals
        if arrivals is not None:
            intended, self._arrival = self._arrival, None
            if intended is None:  # the user's first request: no wait came before it
                intended = self._claim()
            delay = intended - perf_counter()
            if delay > 0:  # a replay's first line is claimed as its request is built
                gevent.sleep(delay)
        record = RequestRecord(
            request_id=self.llm.next_request_id(),
            user=type(self).__name__,
            backend=self.backend_name,
            api=request.api,
            name=name or self._row_name(request.api),
            model=request.model,
            stream=request.stream,
            wall_start=time.time(),
            t_start=perf_counter(),
            prompt_chars=len(request.prompt_text()),
            max_tokens=request.max_tokens,
            min_tokens=request.min_tokens,
            ignore_eos=request.ignore_eos,
        )
        if intended is not None:
            record.start_lag_s = max(0.0, record.t_start - intended)
            if arrivals is not None:
                record.intended_wall = record.wall_start - record.start_lag_s
        if planned is not None:
            record.prompt_tokens = planned.prompt_tokens
            record.session, record.turn = planned.session, planned.turn
            record.prefix_group = planned.prefix_group
        return record

    def _row_name(self, api: Api) -> str:
        path = self.client.endpoint_path(api)
        return f"{self.label} {path}" if self.label else path

    def send(self, request: GenerationRequest, name: str | None = None) -> RequestRecord:
        """Send ``request``, time it, record it and report it; never raises for a failed
        request (the failure is in the returned record and in Locust's stats).

        In open loop (``--request-rate``) it first waits for the request's arrival time."""
        planned, self._planned = self._planned, None
        if planned is not None and planned.request is not request:
            planned = None  # a request this user built itself
        record = self._start_record(request, name, planned)
        counter = self.llm.output_counter
        reply: list[str] | None = [] if record.turn is not None or counter else None
        error: BaseException | None = None
        stream = None
        llm = self.llm
        llm.in_flight += 1
        llm.timeline.watch(record)  # its tokens count as they arrive, at no cost per chunk
        attempt = 1
        try:
            while True:
                try:
                    if not request.model:
                        request.model = record.model = self.llm.resolve_model(self.client)
                    stream = self.client.stream(request)
                    fold_chunks(stream, record, reply)
                    break
                except (LLMError, ConfigError) as exc:
                    if not llm.retry.should_retry(exc, attempt, bool(record.t_out)):
                        raise
                    failed, stream = stream, None
                    self._retry_after(exc, attempt, record, failed)
                    attempt += 1
        except (LLMError, ConfigError) as exc:
            error = _failed(record, exc, str(exc))
        except GreenletExit:
            _stopped(record, stream)
            raise
        except Exception as exc:
            error = _failed(record, exc, f"unexpected error in the client: {exc!r}")
            raise
        finally:
            _ended(record, stream)
            llm.in_flight -= 1
            if counter is not None and reply and record.usage_completion_tokens is None:
                record.counted_output_tokens = counter.count_reply(reply)
            self._submit(record, error)
            if planned is not None and self.traffic is not None:
                self.traffic.finished(record.ok, None if reply is None else "".join(reply))
        return self._backed_off(record)

    def _submit(self, record: RequestRecord, error: BaseException | None) -> None:
        """Record the request, with the wait it earned when it ends a streak of
        connection errors (see _users.connect_backoff)."""
        if record.status != "cancelled":
            if self._backoff is None:
                self._backoff = ConnectBackoff()
            record.backoff_s = self._backoff.after(error, self.host or "")
        self.llm.submit(record, error)

    def _backed_off(self, record: RequestRecord) -> RequestRecord:
        """Wait the back-off ``record`` earned (once it is recorded) before the next one."""
        if record.backoff_s:
            gevent.sleep(record.backoff_s)
        return record

    def _retry_after(
        self,
        exc: BaseException,
        attempt: int,
        record: RequestRecord,
        stream: ResponseStream | None,
    ) -> None:
        """A failed attempt that will be retried: shown in Locust's table as a RETRY row,
        counted in the record, then the wait (Retry-After or back-off) before the next."""
        started = record.t_start
        if stream is not None:
            stream.close()
            if stream.t_send is not None:
                started = stream.t_send
        elapsed = perf_counter() - started
        self.environment.events.request.fire(
            request_type=RETRY_ROW,
            name=record.name,
            response_time=elapsed * 1e3,
            response_length=0,
            exception=self.llm.error_rows.label(exc),
            context={},
        )
        wait = self.llm.retry.wait(exc, attempt)
        record.retry_errors.append(attempt_label(exc))
        record.retry_wait_s += wait
        gevent.sleep(wait)


def _ended(record: RequestRecord, stream: ResponseStream | None) -> None:
    """The stream's own times and status into its record, however it ended."""
    if stream is not None:
        stream.close()
        record.t_send = stream.t_send
        record.take_http_times(stream.connect_s, stream.times)
        record.t_done = stream.t_done
        record.http_status = stream.status
    if record.t_done is None:
        record.t_done = perf_counter()


def _stopped(record: RequestRecord, stream: ResponseStream | None) -> None:
    """The user was stopped with the request in flight: it is cancelled, unless the stream
    was already answered in full (``[DONE]`` read) and only its connection's end was awaited;
    then it is recorded as it ended."""
    if stream is not None and getattr(stream, "answered", False):
        return
    record.status = "cancelled"
    record.error_message = "the user was stopped while the request was in flight"


def _failed(record: RequestRecord, exc: BaseException, message: str) -> BaseException:
    record.status = "error"
    record.error_class = type(exc).__name__
    record.error_message = scrub_secrets(message)  # an exception from outside LLMError too
    return exc
