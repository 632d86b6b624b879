"""Brings sagellm-locust into Locust; ``install(events)`` is called once per locustfile.

It adds the command-line options and, for each environment Locust creates, checks
everything before any load (the options, the user classes, the files they name, the host,
the open-files limit: one clear line and exit code 1 on a problem), starts the in-process
engines and the embedded mock server when no ``--host`` is given, keeps the per-token rows
out of Locust's "Aggregated" row, and then installs the process's role
(:mod:`sagellm_users._users.roles`), which runs everything else.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from locust.runners import (
    MasterRunner,
    WorkerRunner,
)

from sagellm_users._backends import BACKENDS
from sagellm_users._backends.api_fields import NOT_ACCEPTED
from sagellm_users._backends.http import parse_base_url
from sagellm_users._errors import ConfigError, EngineStartError
from sagellm_users._metrics import RecordsWriter
from sagellm_users._report import (
    check_report_path,
)
from sagellm_users._users.base import LLMUser
from sagellm_users._users.engines import (
    engine_specs,
    engines_needed,
    start_engines,
)
from sagellm_users._users.host_check import host_problem
from sagellm_users._users.ignored_options import check_engine_options, check_shape_options
from sagellm_users._users.local import LocalEngineUser
from sagellm_users._users.open_files import OpenFiles, raise_limit
from sagellm_users._users.options import LLMOptions, add_arguments
from sagellm_users._users.roles import Setup, role_for
from sagellm_users._users.runtime import METRIC_ROW_TYPES, LLMRuntime
from sagellm_users._users.stopping import (
    interrupt_main_greenlet,
)
from sagellm_users._users.web_secrets import (
    hide_secrets,
)
from sagellm_users._workloads.build import DatasetCache, check_tokenizer
from sagellm_users.mock_server import MockServerProcess, MockServerStartError, check_mock_args

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.event import Events
    from locust.runners import Runner
    from locust.stats import RequestStats
    from locust.web import WebUI

__all__ = ["install"]

log = logging.getLogger("sagellm_users")

_INSTALLED = "_sagellm_installed"
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
        check_tokenizer(options.tokenizer_choice)
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
    engines = {}
    if engine_plan and not isinstance(runner, MasterRunner):
        try:
            engines = start_engines(engine_plan, options.engine_start_timeout)
        except EngineStartError as exc:
            _fail(str(exc))
    runtime = LLMRuntime(environment, options, records=records, datasets=datasets, engines=engines)
    _keep_token_rows_out_of_aggregated(environment.stats)
    mock = None
    if not environment.host and not is_worker and _needs_host(environment):
        mock = _start_embedded_mock(environment, options)
    setup = Setup(environment, runtime, runner, web_ui, records, files, mock)
    role_for(setup).install()


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
    empty field: _users.start_form) and say loudly when TLS is not verified."""
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
        refused = getattr(BACKENDS[backend], "STREAM_REFUSED", {}).get(cls.api)
        if refused is not None and options.stream:
            _fail(
                f"{cls.__name__}: streamed {cls.api!r} requests would all fail: {refused}; "
                "stream the chat API instead, or send --no-stream"
            )
        if cls.api == "generate" and options.min_tokens is not None:
            _fail(
                f"--min-tokens: {cls.__name__} sends LMDeploy's native /generate, which has no "
                "minimum-length field; drop --min-tokens or use LMDeployUser (its chat route "
                "takes min_new_tokens)"
            )
        _check_api_fields(cls, options)


_FLAGS = {"min_tokens": "--min-tokens", "ignore_eos": "--ignore-eos"}


def _check_api_fields(cls: type[LLMUser], options: LLMOptions) -> None:
    """An API that would drop an option's field (vLLM's Responses and Messages routes have
    no ``min_tokens``, Messages no ``ignore_eos``) would measure answers of other lengths
    than asked: refuse it, naming the API that has it."""
    given = {"min_tokens": options.min_tokens is not None, "ignore_eos": options.ignore_eos}
    for field, reason in NOT_ACCEPTED.get(cls.api, {}).items():
        if given[field]:
            _fail(
                f"{_FLAGS[field]}: {cls.__name__} sends the {cls.api!r} API, and {reason}; "
                f"drop {_FLAGS[field]}, or use a user of the chat API (VLLMUser) for it"
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
