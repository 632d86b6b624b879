"""``run_load_test``: a whole load test from Python, returning the result model.

For notebooks and scripts that want numbers rather than a UI. It uses Locust's own library
API (an ``Environment`` with a local runner), the same plugin as the locustfiles, and the
same options as the command line, so a script and a CLI run are the same test.
"""

from __future__ import annotations

from collections.abc import Sequence

from locust import User
from locust.argument_parser import LocustArgumentParser, setup_parser_arguments
from locust.env import Environment
from locust.event import Events

from sagellm_users._errors import ConfigError
from sagellm_users._report import LLMReport
from sagellm_users._users.options import LLMOptions, add_arguments
from sagellm_users._users.plugin import install
from sagellm_users._users.runtime import runtime_of

__all__ = ["run_load_test"]


def run_load_test(
    user_classes: Sequence[type[User]],
    *,
    host: str | None = None,
    users: int = 1,
    spawn_rate: float | None = None,
    run_time: float = 10.0,
    options: LLMOptions | Sequence[str] = (),
) -> LLMReport:
    """Run ``users`` users of ``user_classes`` for ``run_time`` seconds; return the report.

    ``host`` is the server's base URL; without it the embedded mock server is started for
    the run and stopped after. ``options`` is an :class:`LLMOptions`, e.g.
    ``LLMOptions(max_tokens=256, ignore_eos=True, slo="ttft_p99<=500ms")``, or the same as
    command-line options, ``["--max-tokens", "256", "--ignore-eos"]``; a bad one raises
    :class:`ConfigError` before any load.

    >>> from sagellm_users import OpenAIChatUser, run_load_test
    >>> report = run_load_test([OpenAIChatUser], users=8, run_time=30)   # doctest: +SKIP
    >>> report.total.ttft_ms.percentiles["p99"]                          # doctest: +SKIP
    """
    if users < 1 or run_time <= 0:
        raise ConfigError("run_load_test: users must be >= 1 and run_time > 0 seconds")
    parser = LocustArgumentParser()
    setup_parser_arguments(parser)
    add_arguments(parser)
    argv = [] if isinstance(options, LLMOptions) else list(options)
    try:
        parsed = parser.parse_args([*(["--host", host] if host else []), *argv])
    except SystemExit:
        raise ConfigError(f"run_load_test: invalid options {argv!r}") from None
    if isinstance(options, LLMOptions):
        options.to_namespace(parsed)
    environment = Environment(
        user_classes=list(user_classes), events=Events(), parsed_options=parsed, host=host
    )
    install(environment.events)
    runner = environment.create_local_runner()
    try:
        environment.events.init.fire(environment=environment, runner=runner, web_ui=None)
    except SystemExit:
        raise ConfigError("run_load_test: invalid options (see the line above)") from None
    parsed.run_time = run_time  # the horizon --slo-early-stop judges against
    try:
        runner.start(users, spawn_rate=spawn_rate or users)
        # Runs for run_time unless --slo-early-stop quits the runner first.
        runner.greenlet.join(timeout=run_time)
        runner.quit()
    finally:
        environment.events.quitting.fire(environment=environment)
    report = runtime_of(environment).final_report
    assert report is not None
    return report
