"""Every sagellm option is checked before any load: a bad value, or one this run would
ignore, stops it with one line naming the option and the fix.

The table below is the audit: each option of ``add_arguments`` is either here with a bad
value, or in ``ANY_VALUE`` with the reason it has no wrong value. A new option fails
``test_every_option_is_audited`` until it is added to one or the other, and to docs/checks.md's
table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from locust import LoadTestShape, User
from locust.argument_parser import get_empty_argument_parser
from locust.env import Environment
from locust.event import Events
from locust.runners import STATE_STOPPED

from sagellm_users import OpenAIChatUser, SageLLMUser, VLLMLocalUser
from sagellm_users._users import install
from sagellm_users._users.options import add_arguments
from sagellm_users.shapes import StepLoadShape
from tests.locust_harness import LocalRun, parse_args, wait_until

ROOT = Path(__file__).resolve().parents[2]
HOST = ["--host", "http://127.0.0.1:9"]  # never contacted: every case stops at init

ANY_VALUE = {
    "--model": "any name; the default asks the server (GET /v1/models)",
    "--api-key": "any secret; the server judges it",
    "--no-stream": "a switch",
    "--ignore-eos": "a switch",
    "--insecure": "a switch (refused with --ca-bundle, in the table)",
    "--skip-host-check": "a switch",
    "--measure-after-spawn": "a switch",
    "--llm-help": "prints the options and exits (tests/unit/test_option_declarations.py)",
}


def _files(tmp: Path) -> dict[str, str]:
    (tmp / "not-a-pem").write_text("hello\n")
    (tmp / "bad.toml").write_text("input_tokens = 64\n[session]\nturns = 2\nthink_time = '-1'\n")
    (tmp / "bad.jsonl").write_text('{"prompt": "hi"}\n{oops\n')
    (tmp / "blank.txt").write_text("\n \n")
    (tmp / "trace.jsonl").write_text('{"timestamp": 0, "prompt": "hi"}\n')
    (tmp / "model").mkdir()
    (tmp / "dir.json").mkdir()
    names = ("not-a-pem", "bad.toml", "bad.jsonl", "blank.txt", "model", "dir.json", "trace.jsonl")
    return {name: str(tmp / name) for name in names}


def _with_files(text: str, files: dict[str, str]) -> str:
    for name, path in files.items():
        text = text.replace("{" + name + "}", path)
    return text


# (args, exit code, what the one error line says)
CASES: list[tuple[list[str], int, str]] = [
    (["--host", "localhost:8000"], 1, "--host: host 'localhost:8000' is not an http(s) URL"),
    (["--backend", "tgi"], 1, "--backend: unknown backend 'tgi'; choose one of"),
    (["--max-tokens", "0"], 1, "--max-tokens: input should be greater than or equal to 1"),
    (["--max-tokens", "many"], 1, "--max-tokens: input should be a valid integer, unable to parse"),
    (["--min-tokens", "200"], 1, "--min-tokens 200 is more than --max-tokens 128"),
    (["--prompt", " "], 1, "--prompt: empty; give the text every request sends"),
    (["--prompt-file", "/nonexistent/p.txt"], 1, "--prompt-file: no such file"),
    (["--prompt-file", "{blank.txt}"], 1, "--prompt-file"),
    (["--temperature", "-0.5"], 1, "--temperature: input should be greater than or equal to 0"),
    (["--extra-body", "[1, 2]"], 1, "--extra-body: must be a JSON object, got list"),
    (["--header", "X-Team"], 1, "--header: expected 'Name: value', got 'X-Team'"),
    (["--connect-timeout", "0"], 1, "--connect-timeout: input should be greater than 0"),
    (["--read-timeout", "-1"], 1, "--read-timeout: input should be greater than 0"),
    (["--request-timeout", "-1"], 1, "--request-timeout: input should be greater than 0"),
    (["--max-header-size", "big"], 1, "--max-header-size: cannot read 'big' as a size"),
    (["--max-error-body", "-1"], 1, "--max-error-body: cannot read '-1' as a size"),
    (["--max-event-size", "0"], 1, "--max-event-size: input should be greater than or equal"),
    (["--ca-bundle", "{not-a-pem}"], 1, "--ca-bundle: '{not-a-pem}' holds no CA certificate"),
    (["--insecure", "--ca-bundle", "/etc/hostname"], 1, "--ca-bundle"),
    (["--retries", "-1"], 1, "--retries: input should be greater than or equal to 0"),
    (["--retry-max-wait", "0"], 1, "--retry-max-wait: input should be greater than 0"),
    (["--warmup", "soon"], 1, "--warmup: cannot read 'soon'; give a time (30s, 2m)"),
    (["--llm-records", "/nonexistent/r.jsonl"], 1, "--llm-records '/nonexistent/r.jsonl'"),
    (["--llm-records", "{model}"], 1, "--llm-records '{model}': is a directory"),
    (["--llm-report", "r.txt"], 1, "--llm-report 'r.txt': unknown format"),
    (["--llm-report", "{dir.json}"], 1, "--llm-report '{dir.json}': is a directory"),
    (["--llm-report", "/nonexistent/r.json"], 1, "directory '/nonexistent' does not exist"),
    (["--llm-html", "r.json"], 1, "--llm-html 'r.json': end the name in .html"),
    (["--slo", "ttft_p99<=soon"], 1, "--slo: cannot read 'ttft_p99<=soon'"),
    (["--slo", "speed>=1"], 1, "--slo: unknown metric 'speed'"),
    (["--slo-early-stop"], 1, "--slo-early-stop: there is no objective to watch"),
    (["--llm-percentiles", "50,150"], 1, "--llm-percentiles: 150 is outside 0 < p <= 100"),
    (["--server-metrics-interval", "-1"], 1, "--server-metrics-interval: input should be"),
    (["--mock-args", "--ttft-ms -5"], 1, "--mock-args: invalid mock server config: ttft_ms"),
    (["--mock-args", "--speed 5"], 1, "--mock-args: unrecognized arguments: --speed 5"),
    (["--mock-args", "'open"], 1, "--mock-args: cannot split"),
    (["--vllm-model", "/nonexistent/m"], 1, "--vllm-model: no such directory"),
    (["--vllm-model", "{model}"], 1, "--vllm-model: no user class in the locustfiles runs vllm"),
    (["--lmdeploy-model", "{model}"], 1, "--lmdeploy-model: no user class in the locustfiles"),
    (["--sagellm-model", "{model}"], 1, "--sagellm-model: no user class in the locustfiles"),
    (["--engine-arg", "dtype"], 1, "--engine-arg: expected KEY=VALUE, got 'dtype'"),
    (["--engine-arg", "dtype=half"], 1, "--engine-arg: no user class in the locustfiles runs"),
    (["--engine-python", "/nonexistent/python"], 1, "--engine-python: '/nonexistent/python'"),
    (["--engine-log", "e.log"], 1, "--engine-log: no user class in the locustfiles runs"),
    (["--engine-start-timeout", "0"], 1, "--engine-start-timeout: input should be greater"),
    (["--engine-start-timeout", "60"], 1, "--engine-start-timeout: no user class"),
    (["--workload", "/nonexistent/w.toml"], 1, "--workload: no such file"),
    (["--workload", "{bad.toml}"], 1, "--workload {bad.toml}: session.think_time: '-1'"),
    (["--input-tokens", "lots"], 1, "input_tokens: cannot read 'lots' as a length"),
    (["--output-tokens", "64"], 1, "--output-tokens: needs a prompt source"),
    (["--input-tokens", "8", "--output-tokens", "normal:5"], 1, "output_tokens: cannot read"),
    (["--dataset", "/nonexistent/d.json"], 1, "/nonexistent/d.json: no such dataset file"),
    (["--dataset", "{bad.jsonl}"], 1, "{bad.jsonl} line 2: invalid JSON"),
    (["--tokenizer", "/nonexistent"], 1, "tokenizer path '/nonexistent' does not exist"),
    (["--input-tokens", "8", "--tokenizer", "/nonexistent"], 1, "tokenizer path '/nonexistent'"),
    (["--request-rate", "-1"], 1, "--request-rate: must be >= 0 (0 = closed loop), got -1"),
    (["--seed", "lucky"], 1, "--seed: input should be a valid integer, unable to parse"),
    (["--arrival", "uniform"], 2, "argument --arrival: invalid choice: 'uniform'"),
    (["--arrival", "gamma"], 1, "--arrival gamma: arrivals exist only in an open-loop run"),
    (["--burstiness", "0"], 1, "--burstiness: must be > 0 (1 = Poisson), got 0"),
    (["--request-rate", "5", "--burstiness", "0.5"], 1, "--burstiness 0.5: only gamma"),
    (["--step-users", "4:4:16"], 1, "--step-users: no load shape runs, so it would be ignored"),
    (["--spike-users", "4:32"], 1, "--spike-users: no load shape runs"),
    (["--spike-at", "30s"], 1, "--spike-at: no load shape runs"),
    (["--spike-hold", "5s"], 1, "--spike-hold: no load shape runs"),
    (["--sweep", "2:2:8"], 1, "--sweep: no load shape runs"),
    (["--stage-time", "10s"], 1, "--stage-time: no load shape runs"),
    (["--sweep-settle", "2s"], 1, "--sweep-settle: no load shape runs"),
    (["--trace", "/nonexistent/t.jsonl"], 1, "--trace /nonexistent/t.jsonl: cannot read it"),
    (["--trace", "{bad.jsonl}"], 1, "line 1: 'timestamp' must be a number of milliseconds"),
    (["--trace", "{trace.jsonl}", "--request-rate", "5"], 1, "--trace replays a trace: drop"),
    (["--trace-speed", "2"], 1, "--trace-speed 2: there is no trace to replay; add --trace"),
    (["--trace", "{trace.jsonl}", "--trace-speed", "-1"], 1, "--trace-speed: must be a number"),
]


def _init(args: list[str], user: type[User], shape: LoadTestShape | None) -> None:
    options = parse_args(args)
    env = Environment(
        user_classes=[user],
        shape_class=shape,
        events=Events(),
        parsed_options=options,
        host=options.host,
    )
    install(env.events)
    runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)


def _refusal(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    *,
    user: type[User] = OpenAIChatUser,
    shape: LoadTestShape | None = None,
) -> tuple[int | str | None, list[str]]:
    with pytest.raises(SystemExit) as stopped:
        _init(args, user, shape)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return stopped.value.code, lines


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_bad_option_stops_the_run_with_one_line(
    args: list[str], code: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _files(tmp_path)
    args = [_with_files(arg, files) for arg in args]
    message = _with_files(message, files)
    exit_code, lines = _refusal(([] if "--host" in args else HOST) + args, capsys)
    assert exit_code == code
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("sagellm: "), lines
    else:  # Locust's parser: its usage, then one line naming the argument
        assert lines and "error: " in lines[-1], lines
    assert message in lines[-1], lines


def test_a_shape_option_of_another_shape_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*HOST, "--step-users", "4:4:8", "--sweep", "2:2:8"]
    code, lines = _refusal(args, capsys, shape=StepLoadShape())
    assert code == 1
    assert lines == [
        "sagellm: --sweep: the load shape is StepLoadShape, so it would be ignored; it is an "
        "option of SLOSweepShape: add it to -f (e.g. -f "
        "locustfiles/chat.py,locustfiles/shapes/sweep.py), or drop --sweep"
    ]


def test_engine_options_are_taken_with_an_in_process_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a VLLMLocalUser the engine options are used: the next check (the model's own
    option) is what stops this run, not an 'ignored' refusal."""
    args = ["--engine-arg", "dtype=half", "--engine-log", str(tmp_path / "e.log")]
    code, lines = _refusal(args, capsys, user=VLLMLocalUser)
    assert code == 1
    assert lines == [
        "sagellm: VLLMLocalUser run vllm in-process: pass --vllm-model with the model's directory"
    ]


class GatewayCompletions(SageLLMUser):
    api = "completions"  # type: ignore[assignment]  # SageLLMUser narrows it to chat


def test_streamed_completions_on_sagellms_gateway_are_refused_before_load(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sagellm serve` answers 400 to every streamed /v1/completions: refused at init, with
    both ways out; not streamed, the same user is accepted."""
    code, lines = _refusal(HOST, capsys, user=GatewayCompletions)
    assert code == 1
    assert lines == [
        "sagellm: GatewayCompletions: streamed 'completions' requests would all fail: "
        "sageLLM's gateway answers 400 to streamed /v1/completions ('Streaming text "
        "completions are not supported'); stream the chat API instead, or send --no-stream"
    ]
    _init([*HOST, "--no-stream", "--skip-host-check"], GatewayCompletions, None)


def _flags() -> set[str]:
    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    before = {flag for action in parser._actions for flag in action.option_strings}
    add_arguments(parser)
    after = {flag for action in parser._actions for flag in action.option_strings}
    return {flag for flag in after - before if flag.startswith("--")}


def test_every_option_is_audited() -> None:
    tried = {arg for args, _code, _message in CASES for arg in args if arg in _flags()}
    missing = _flags() - tried - set(ANY_VALUE)
    assert not missing, f"add a bad value of each to CASES (or to ANY_VALUE): {sorted(missing)}"


def test_docs_list_every_option_in_what_is_checked() -> None:
    section = (ROOT / "docs" / "checks.md").read_text()
    listed = set(re.findall(r"`(--[a-z-]+)", section))
    assert _flags() <= listed, sorted(_flags() - listed)


def test_a_refused_test_start_ends_the_command_with_exit_code_1(mock_url: str) -> None:
    """Options changed for a test start (the web UI's form) are checked again; a refused
    start stops that test, and a command that ends after it exits 1, not 0."""
    run = LocalRun([OpenAIChatUser], ["--host", mock_url, "--max-tokens", "4"])
    assert run.environment.parsed_options is not None
    run.environment.parsed_options.max_tokens = 0
    run.runner.start(1, spawn_rate=1)
    assert wait_until(lambda: run.runner.state == STATE_STOPPED)
    run.finish()
    assert run.runtime.options_error is not None
    assert "--max-tokens" in run.runtime.options_error
    assert run.records == []
    assert run.environment.process_exit_code == 1
