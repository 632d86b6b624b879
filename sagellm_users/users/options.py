"""Command-line options, registered on Locust's own parser, and their validation.

Registering on Locust's parser makes every option work on the command line, in
``locust.conf`` files, as ``LOCUST_*``-free environment variables where noted, and (for the
ones marked so) in the web UI's start form. :class:`LLMOptions` validates the parsed values
once, before any load, and turns each problem into one line naming the option and the fix.
"""

from __future__ import annotations

import os
import shlex
import ssl
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from sagellm_users.backends import BACKENDS
from sagellm_users.errors import ConfigError
from sagellm_users.limits import (
    DEFAULT_ERROR_BODY_BYTES,
    DEFAULT_EVENT_BYTES,
    DEFAULT_HEADER_BYTES,
    ReadLimits,
    parse_size,
)
from sagellm_users.metrics.slo import SLO, parse_slos
from sagellm_users.metrics.window import Warmup, parse_warmup
from sagellm_users.report.writers import check_report_path
from sagellm_users.users.shape_options import add_shape_arguments
from sagellm_users.users.workload_options import (
    add_workload_arguments,
    arrival_values,
    workload_from_namespace,
)
from sagellm_users.workloads.spec import WorkloadSpec

__all__ = ["DEFAULT_PROMPT", "LLMOptions", "add_arguments"]

DEFAULT_PROMPT = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle. "
    "Describe the sea, the weather and what the message says."
)


def add_arguments(parser: Any) -> None:
    """Add sagellm-locust's options to Locust's argument parser."""
    add = parser.add_argument
    add(
        "--backend",
        default="openai",
        help="Client for users that do not pin one: openai, vllm, lmdeploy or sagellm "
        "(default openai; locustfiles/vllm.py and the like pin theirs)",
    )
    add(
        "--model",
        default="",
        help="Model name to request (default: the first model the server lists)",
    )
    add(
        "--max-tokens",
        type=int,
        default=128,
        help="Output tokens to ask for per request (default 128)",
    )
    add("--prompt", default=DEFAULT_PROMPT, help="Prompt text sent by every request")
    add(
        "--prompt-file",
        default="",
        help="Text file with one prompt per line (blank lines skipped); overrides --prompt",
    )
    add(
        "--api-key",
        default="",
        is_secret=True,
        help="Bearer API key (default: $OPENAI_API_KEY); never printed or written",
    )
    add("--no-stream", action="store_true", default=False, help="Send non-streaming requests")
    add(
        "--min-tokens",
        type=int,
        default=None,
        help="Minimum output tokens per request (vLLM min_tokens, LMDeploy min_new_tokens)",
    )
    add("--temperature", type=float, default=None, help="Sampling temperature (default: server's)")
    add(
        "--ignore-eos",
        action="store_true",
        default=False,
        help="Ask the server to ignore EOS so every request yields --max-tokens (vLLM, LMDeploy)",
    )
    add(
        "--extra-body",
        default="",
        help="JSON object merged into every request body, e.g. '{\"top_k\": 20}'",
    )
    add(
        "--header",
        action="append",
        default=[],
        include_in_web_ui=False,
        help="Extra request header 'Name: value' (repeatable)",
    )
    add(
        "--connect-timeout",
        type=float,
        default=10.0,
        help="Seconds to open a connection (default 10)",
    )
    add(
        "--read-timeout",
        type=float,
        default=300.0,
        help="Seconds of silence before a read fails (default 300)",
    )
    add(
        "--request-timeout",
        type=float,
        default=0.0,
        help="Seconds a whole request may take; 0 means no limit (default 0)",
    )
    add(
        "--max-header-size",
        default="64KiB",
        help="Largest response head (status line and headers) read before the request fails "
        "(ResponseTooLargeError); bytes or a unit: 65536, 64KiB, 1MiB (default 64KiB)",
    )
    add(
        "--max-error-body",
        default="64KiB",
        help="How much of an error response's body is read for its excerpt; the rest is not "
        "read and the connection is closed; 0 reads none (default 64KiB)",
    )
    add(
        "--max-event-size",
        default="16MiB",
        help="Largest SSE event (or non-streamed answer) before the request fails "
        "(ResponseTooLargeError); bytes or a unit (default 16MiB)",
    )
    add(
        "--ca-bundle",
        default="",
        include_in_web_ui=False,
        help="Verify https servers against the CA certificates in this PEM file instead of "
        "the system's (a private CA)",
    )
    add(
        "--insecure",
        action="store_true",
        default=False,
        include_in_web_ui=False,
        help="Do not verify https certificates (a warning says so); only for test servers",
    )
    add(
        "--skip-host-check",
        action="store_true",
        default=False,
        include_in_web_ui=False,
        help="Start users even when --host refuses a connection at start (by default the "
        "run stops with exit code 1 before any load)",
    )
    add(
        "--retries",
        type=int,
        default=0,
        help="Send a request again up to N times when it failed before any output: "
        "connection errors, 408, 429 (after its Retry-After), 5xx. Each retry is counted "
        "and shown apart (RETRY rows); default 0",
    )
    add(
        "--retry-max-wait",
        type=float,
        default=30.0,
        help="Longest wait before one retry, in seconds: a longer Retry-After is cut to "
        "it (default 30)",
    )
    add(
        "--warmup",
        default="",
        help="Leave the start out of the report: a time (30s, 2m) or requests (200req)",
    )
    add(
        "--measure-after-spawn",
        action="store_true",
        default=False,
        help="Start measuring when all users are spawned (after --warmup, if given)",
    )
    add(
        "--llm-records",
        default="",
        include_in_web_ui=False,
        help="Write one JSON line per request to this file (flushed as it goes)",
    )
    add(
        "--llm-report",
        action="append",
        default=[],
        include_in_web_ui=False,
        help="Write the LLM report to PATH at the end: .json (with vLLM bench serve's field "
        "names), .csv, .md or .html; repeatable",
    )
    add(
        "--llm-html",
        default="",
        include_in_web_ui=False,
        help="Write a self-contained HTML report (charts, distributions, SLOs) to PATH.html "
        "at the end; opens offline",
    )
    add(
        "--slo",
        default="",
        help="Objectives checked at the end, e.g. 'ttft_p99<=500ms,error_rate<=1%%'; "
        "exit code 3 when one fails (grammar in README)",
    )
    add(
        "--slo-early-stop",
        action="store_true",
        default=False,
        help="Stop the test as soon as an --slo objective can no longer be met, even by a "
        "perfect rest of the run (bounded by --run-time; see README)",
    )
    add(
        "--llm-percentiles",
        default="50,90,95,99",
        help="Percentiles in the summary and reports, comma-separated (default 50,90,95,99)",
    )
    add(
        "--server-metrics-interval",
        type=float,
        default=5.0,
        help="Seconds between scrapes of each host's /metrics (vLLM's names) for the "
        "server-side view; 0 turns scraping off (default 5)",
    )
    add(
        "--vllm-model",
        default="",
        include_in_web_ui=False,
        help="Model directory for in-process vLLM users (VLLMLocalUser): the engine runs in a "
        "child process of each load-generating process, no HTTP",
    )
    add(
        "--lmdeploy-model",
        default="",
        include_in_web_ui=False,
        help="Model directory for in-process LMDeploy users (LMDeployLocalUser)",
    )
    add(
        "--sagellm-model",
        default="",
        include_in_web_ui=False,
        help="Model directory for in-process sageLLM users (SageLLMLocalUser; needs isagellm)",
    )
    add(
        "--engine-arg",
        action="append",
        default=[],
        include_in_web_ui=False,
        help="KEY=VALUE for the in-process engine's configuration (vLLM AsyncEngineArgs, "
        "LMDeploy engine config; VALUE as JSON when it parses), e.g. max_model_len=2048; "
        "repeatable",
    )
    add(
        "--engine-python",
        default="",
        include_in_web_ui=False,
        help="Python interpreter that runs the in-process engine (a venv that has vLLM or "
        "LMDeploy); default: the one running Locust",
    )
    add(
        "--engine-log",
        default="",
        include_in_web_ui=False,
        help="File for the in-process engine's own output (default: a file in the temp "
        "directory, named in the log)",
    )
    add(
        "--engine-start-timeout",
        type=float,
        default=600.0,
        include_in_web_ui=False,
        help="Seconds the in-process engine may take to load its model (default 600)",
    )
    add(
        "--mock-args",
        default="",
        include_in_web_ui=False,
        help="Arguments for the embedded mock server started when no --host is given, "
        "e.g. '--ttft-ms 80 --tbt-ms 15'",
    )
    add_workload_arguments(parser)
    add_shape_arguments(parser)


_FLAGS = {
    "max_tokens": "--max-tokens",
    "min_tokens": "--min-tokens",
    "temperature": "--temperature",
    "connect_timeout": "--connect-timeout",
    "read_timeout": "--read-timeout",
    "request_timeout": "--request-timeout",
    "max_header_size": "--max-header-size",
    "max_error_body": "--max-error-body",
    "max_event_size": "--max-event-size",
    "retries": "--retries",
    "retry_max_wait": "--retry-max-wait",
    "prompt": "--prompt",
    "model": "--model",
}


class LLMOptions(BaseModel):
    """The validated options one Locust environment runs with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str = "openai"
    model: str = ""
    max_tokens: int = Field(128, ge=1)
    min_tokens: int | None = Field(None, ge=0)
    prompts: tuple[str, ...] = Field(min_length=1)
    api_key: SecretStr | None = None
    stream: bool = True
    temperature: float | None = Field(None, ge=0)
    ignore_eos: bool = False
    extra_body: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(300.0, gt=0)
    request_timeout: float | None = Field(None, gt=0)
    max_header_size: int = Field(DEFAULT_HEADER_BYTES, ge=1)
    max_error_body: int = Field(DEFAULT_ERROR_BODY_BYTES, ge=0)
    max_event_size: int = Field(DEFAULT_EVENT_BYTES, ge=1)
    ca_bundle: str = ""
    insecure: bool = False
    skip_host_check: bool = False
    retries: int = Field(0, ge=0, le=100)
    retry_max_wait: float = Field(30.0, gt=0)
    llm_records: Path | None = None
    mock_args: tuple[str, ...] = ()
    reports: tuple[Path, ...] = ()
    slo: str = ""
    slo_early_stop: bool = False
    percentiles: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
    warmup_seconds: float = Field(0.0, ge=0)
    warmup_requests: int = Field(0, ge=0)
    measure_after_spawn: bool = False
    server_metrics_interval: float = Field(5.0, ge=0)
    vllm_model: str = ""
    lmdeploy_model: str = ""
    sagellm_model: str = ""
    engine_args: dict[str, Any] = Field(default_factory=dict)
    engine_python: str = ""
    engine_log: str = ""
    engine_start_timeout: float = Field(600.0, gt=0)
    workload: WorkloadSpec | None = None
    """What the traffic looks like; None sends --prompt (or --prompt-file) as before."""
    request_rate: float = Field(0.0, ge=0)
    """Open loop when > 0: requests per second across the test."""
    arrival: str = "poisson"
    burstiness: float = Field(1.0, gt=0)

    @property
    def verify(self) -> bool | str:
        """What TLS verification uses: the CA bundle, off (``--insecure``), or the system's."""
        if self.insecure:
            return False
        return self.ca_bundle or True

    @property
    def read_limits(self) -> ReadLimits:
        """How much of a response the client holds (the --max-* sizes)."""
        return ReadLimits(self.max_header_size, self.max_error_body, self.max_event_size)

    @property
    def slos(self) -> tuple[SLO, ...]:
        return parse_slos(self.slo)

    @property
    def warmup(self) -> Warmup:
        return Warmup(self.warmup_seconds, self.warmup_requests)

    def for_report(self) -> dict[str, Any]:
        """The options as a report shows them: no secrets, no prompt texts."""
        data = self.model_dump(mode="json", exclude={"api_key", "prompts", "headers"})
        data["api_key_set"] = self.api_key is not None
        data["header_names"] = sorted(self.headers)
        data["prompt_count"] = len(self.prompts)
        return data

    @classmethod
    def from_namespace(cls, ns: Any) -> LLMOptions:
        """Validate Locust's parsed options; raise :class:`ConfigError` with one clear line."""
        get = getattr
        prompt_file = str(get(ns, "prompt_file", "") or "")
        prompts = _read_prompts(prompt_file) if prompt_file else (str(get(ns, "prompt", "")),)
        if not prompts[0].strip():
            raise ConfigError(
                "--prompt: empty; give the text every request sends, or leave --prompt out "
                "for the default"
            )
        temperature = get(ns, "temperature", None)
        request_timeout = float(get(ns, "request_timeout", 0) or 0)
        records = str(get(ns, "llm_records", "") or "")
        mock_text = str(get(ns, "mock_args", "") or "")
        try:
            mock_args = tuple(shlex.split(mock_text))
        except ValueError as exc:
            raise ConfigError(
                f"--mock-args: cannot split {mock_text!r} as a shell would ({exc}); balance "
                "its quotes"
            ) from None
        warmup = parse_warmup(str(get(ns, "warmup", "") or ""))
        values: dict[str, Any] = {
            "backend": _checked_backend(str(get(ns, "backend", "") or "openai")),
            "model": str(get(ns, "model", "") or ""),
            "max_tokens": get(ns, "max_tokens", 128),
            "min_tokens": get(ns, "min_tokens", None),
            "prompts": prompts,
            "api_key": str(get(ns, "api_key", "") or "") or None,
            "stream": not get(ns, "no_stream", False),
            "temperature": None if temperature in (None, "") else temperature,
            "ignore_eos": bool(get(ns, "ignore_eos", False)),
            "extra_body": _parse_extra_body(str(get(ns, "extra_body", "") or "")),
            "headers": _parse_headers(get(ns, "header", None) or []),
            "connect_timeout": get(ns, "connect_timeout", 10.0),
            "read_timeout": get(ns, "read_timeout", 300.0),
            "request_timeout": request_timeout if request_timeout else None,
            **_read_limit_values(ns),
            "ca_bundle": _checked_ca_bundle(str(get(ns, "ca_bundle", "") or "")),
            "insecure": bool(get(ns, "insecure", False)),
            "skip_host_check": bool(get(ns, "skip_host_check", False)),
            "retries": get(ns, "retries", 0),
            "retry_max_wait": get(ns, "retry_max_wait", 30.0),
            "llm_records": Path(records) if records else None,
            "mock_args": mock_args,
            "slo": _checked_slo(str(get(ns, "slo", "") or "")),
            "slo_early_stop": bool(get(ns, "slo_early_stop", False)),
            "reports": _report_paths(get(ns, "llm_report", None), get(ns, "llm_html", "")),
            "percentiles": _parse_percentiles(str(get(ns, "llm_percentiles", "") or "")),
            "warmup_seconds": warmup.seconds,
            "warmup_requests": warmup.requests,
            "measure_after_spawn": bool(get(ns, "measure_after_spawn", False)),
            "server_metrics_interval": get(ns, "server_metrics_interval", 5.0),
            "vllm_model": _checked_model("--vllm-model", str(get(ns, "vllm_model", "") or "")),
            "lmdeploy_model": _checked_model(
                "--lmdeploy-model", str(get(ns, "lmdeploy_model", "") or "")
            ),
            "sagellm_model": _checked_model(
                "--sagellm-model", str(get(ns, "sagellm_model", "") or "")
            ),
            "engine_args": _parse_engine_args(get(ns, "engine_arg", None) or []),
            "engine_python": _checked_python(str(get(ns, "engine_python", "") or "")),
            "engine_log": str(get(ns, "engine_log", "") or ""),
            "engine_start_timeout": get(ns, "engine_start_timeout", 600.0),
            "workload": workload_from_namespace(ns),
            **arrival_values(ns),
        }
        min_tokens = values["min_tokens"]
        if min_tokens is not None and min_tokens > values["max_tokens"]:
            raise ConfigError(
                f"--min-tokens {min_tokens} is more than --max-tokens {values['max_tokens']}; "
                "lower it or raise --max-tokens"
            )
        workload = values["workload"]
        if values["request_rate"] > 0 and workload is not None and workload.session is not None:
            raise ConfigError(
                "--request-rate: a multi-turn workload paces itself (think time between "
                "turns); drop --request-rate, or drop [session] from the workload"
            )
        if values["insecure"] and values["ca_bundle"]:
            raise ConfigError(
                "--insecure and --ca-bundle contradict each other: --ca-bundle verifies "
                "against your CA, --insecure verifies nothing; keep one"
            )
        if values["slo_early_stop"] and not values["slo"].strip():
            raise ConfigError(
                "--slo-early-stop: there is no objective to watch; add --slo, "
                "e.g. --slo 'ttft_p99<=500ms'"
            )
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_first_problem(exc)) from None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "options"
    flag = _FLAGS.get(field, f"--{field.replace('_', '-')}")
    if field == "prompts":
        return "--prompt-file: the file holds no prompt (every line is blank); add prompts"
    value = error.get("input")
    return f"{flag}: {error['msg'].lower()}, got {value!r}"


_SIZE_OPTIONS = {
    "max_header_size": DEFAULT_HEADER_BYTES,
    "max_error_body": DEFAULT_ERROR_BODY_BYTES,
    "max_event_size": DEFAULT_EVENT_BYTES,
}


def _read_limit_values(ns: Any) -> dict[str, int]:
    """The --max-* sizes in bytes (``64KiB`` and the like), each checked by its flag."""
    values: dict[str, int] = {}
    for field, default in _SIZE_OPTIONS.items():
        raw = getattr(ns, field, None)
        text = str(raw).strip() if raw not in (None, "") else ""
        values[field] = parse_size(text, _FLAGS[field]) if text else default
    return values


def _read_prompts(path: str) -> tuple[str, ...]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--prompt-file: no such file {path!r}; give the path of a text file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--prompt-file: cannot read {path!r} as UTF-8 text: {exc}") from None
    prompts = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not prompts:
        raise ConfigError(f"--prompt-file: {path!r} holds no prompt (every line is blank)")
    return prompts


def _parse_extra_body(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(
            f"--extra-body: not valid JSON ({exc}); give an object, e.g. '{{\"top_k\": 20}}'"
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"--extra-body: must be a JSON object, got {type(value).__name__}")
    return value


def _checked_model(flag: str, value: str) -> str:
    """A local model directory, or a hub id (``org/name``) the engine resolves itself."""
    if not value or Path(value).is_dir():
        return value
    if Path(value).exists():
        raise ConfigError(f"{flag}: {value!r} is a file; give the model's directory")
    parts = value.split("/")
    if len(parts) == 2 and all(parts) and not value.startswith((".", "~")):
        return value  # e.g. Qwen/Qwen2.5-0.5B-Instruct: the engine downloads or finds it
    raise ConfigError(
        f"{flag}: no such directory {value!r}; give the model's directory (config.json, "
        "weights, tokenizer) or a hub id such as org/name"
    )


def _checked_ca_bundle(path: str) -> str:
    """A PEM file Python's TLS can load CA certificates from (checked now, not at the first
    https request)."""
    if not path:
        return path
    if not Path(path).is_file():
        raise ConfigError(f"--ca-bundle: no such file {path!r}; give a PEM file of CA certificates")
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise ConfigError(
            f"--ca-bundle: {path!r} holds no CA certificate Python can load ({exc}); give a "
            "PEM file (-----BEGIN CERTIFICATE-----)"
        ) from None
    return path


def _checked_python(value: str) -> str:
    if not value:
        return value
    path = Path(value)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ConfigError(
            f"--engine-python: {value!r} is not an executable file; give the python of a "
            "venv that has the engine, e.g. /opt/vllm/bin/python"
        )
    return value


def _parse_engine_args(items: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ConfigError(
                f"--engine-arg: expected KEY=VALUE, got {item!r}; "
                "e.g. --engine-arg max_model_len=2048"
            )
        try:
            value: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw  # a plain string: dtype=bfloat16
        args[key] = value
    return args


def _checked_backend(name: str) -> str:
    if name not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"--backend: unknown backend {name!r}; choose one of {known}")
    return name


def _checked_slo(text: str) -> str:
    parse_slos(text)  # raises ConfigError naming the bad clause
    return text


def _report_paths(reports: list[str] | None, html: str | None) -> tuple[Path, ...]:
    """--llm-report paths, then --llm-html's (which must name an .html file)."""
    paths = [Path(str(p)) for p in reports or ()]
    if html:
        path = Path(str(html))
        if path.suffix.lower() != ".html":
            raise ConfigError(f"--llm-html {str(html)!r}: end the name in .html")
        check_report_path(path, "--llm-html")
        paths.append(path)
    return tuple(paths)


def _parse_percentiles(text: str) -> tuple[float, ...]:
    if not text.strip():
        return (50.0, 90.0, 95.0, 99.0)
    values: set[float] = set()
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(
                f"--llm-percentiles: {part.strip()!r} is not a number; give e.g. 50,90,99,99.9"
            ) from None
        if not 0 < value <= 100:
            raise ConfigError(f"--llm-percentiles: {value:g} is outside 0 < p <= 100")
        values.add(value)
    return tuple(sorted(values))


def _parse_headers(items: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = str(item).partition(":")
        name = name.strip()
        if (
            not sep
            or not name
            or any(c in name for c in " \t\r\n")
            or any(c in value for c in "\r\n")
        ):
            raise ConfigError(f"--header: expected 'Name: value', got {item!r}")
        headers[name] = value.strip()
    return headers
