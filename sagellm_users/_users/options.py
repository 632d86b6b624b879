"""sagellm-locust's options: one declaration per option, and their validation.

Each field of :class:`LLMOptions` declares its flag, help, group and web-form visibility
(:class:`~sagellm_users._users.option_spec.Opt`) beside its type, default and checks; the
argparse registration on Locust's parser, reading the parsed namespace, reading the web UI's
start form, ``--llm-help``, docs/options.md and :func:`~sagellm_users.run_load_test` all
derive from it. A field takes its command-line text (``64KiB``, ``'{"top_k": 20}'``,
``Name: value`` lines) or the typed value a Python caller gives, and every problem is one
line naming the option and the fix (:class:`~sagellm_users._errors.ConfigError`).

``python -m sagellm_users._users.list_options`` prints the grouped listing (``--markdown``:
docs/options.md).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import ssl
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sagellm_users._backends import BACKENDS
from sagellm_users._errors import ConfigError
from sagellm_users._limits import (
    DEFAULT_ERROR_BODY_BYTES,
    DEFAULT_EVENT_BYTES,
    DEFAULT_HEADER_BYTES,
    ReadLimits,
    parse_size,
)
from sagellm_users._metrics.slo import SLO, parse_slos
from sagellm_users._metrics.window import Warmup, parse_warmup
from sagellm_users._report.writers import check_report_path
from sagellm_users._users.option_spec import (
    Opt,
    declared,
    form_changes,
    help_listing,
    register,
    values_from_namespace,
)
from sagellm_users._workloads.arrivals import ARRIVAL_KINDS
from sagellm_users._workloads.spec import WorkloadSpec, load_workload, validate_workload
from sagellm_users._workloads.trace import Trace, load_trace

__all__ = ["DEFAULT_PROMPT", "LLM_HELP_FLAG", "LLMOptions", "add_arguments", "flag_of"]

DEFAULT_PROMPT = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle. "
    "Describe the sea, the weather and what the message says."
)
LLM_HELP_FLAG = "--llm-help"

_R, _W, _O = "Requests", "Workload", "Open loop"
_REP, _SH, _C = "Objectives and reports", "Load shapes", "Connection"
_E, _M = "In-process engines", "Embedded mock server"


class LLMOptions(BaseModel):
    """The validated options one Locust environment runs with.

    Build it from the command line (:meth:`from_namespace`), from the web UI's start form
    (:meth:`from_form`) or in Python (``LLMOptions(max_tokens=16, slo="ttft_p99<=500ms")``)
    and hand it to :func:`~sagellm_users.run_load_test`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- Requests -------------------------------------------------------------------------
    model: Annotated[
        str,
        Opt(
            "--model",
            "Model name to request (default: the first model the server lists)",
            _R,
            metavar="NAME",
        ),
    ] = ""
    max_tokens: Annotated[
        int,
        Field(ge=1),
        Opt("--max-tokens", "Output tokens to ask for per request", _R, metavar="N"),
    ] = 128
    prompt: Annotated[
        str,
        Opt(
            "--prompt",
            "Prompt text sent by every request",
            _R,
            metavar="TEXT",
            default_text="a short story prompt",
        ),
    ] = DEFAULT_PROMPT
    prompt_file: Annotated[
        Path | None,
        Opt(
            "--prompt-file",
            "Text file with one prompt per line (blank lines skipped); overrides --prompt",
            _R,
            shown_default="",
            metavar="PATH",
        ),
    ] = None
    min_tokens: Annotated[
        int | None,
        Field(ge=0),
        Opt(
            "--min-tokens",
            "Minimum output tokens per request (vLLM min_tokens, LMDeploy min_new_tokens)",
            _R,
            metavar="N",
        ),
    ] = None
    temperature: Annotated[
        float | None,
        Field(ge=0),
        Opt("--temperature", "Sampling temperature (default: the server's)", _R, metavar="T"),
    ] = None
    ignore_eos: Annotated[
        bool,
        Opt(
            "--ignore-eos",
            "Ask the server to ignore EOS so every request yields --max-tokens (vLLM, LMDeploy)",
            _R,
            kind="switch",
        ),
    ] = False
    stream: Annotated[
        bool,
        Opt(
            "--no-stream",
            "Send non-streaming requests (in the web form: untick Stream)",
            _R,
            kind="inverted_switch",
        ),
    ] = True
    extra_body: Annotated[
        dict[str, Any],
        Opt(
            "--extra-body",
            "JSON object merged into every request body, e.g. '{\"top_k\": 20}'",
            _R,
            shown_default="",
            metavar="JSON",
        ),
    ] = Field(default_factory=dict)
    api_key: Annotated[
        SecretStr | None,
        Opt(
            "--api-key",
            "Bearer API key (default: $OPENAI_API_KEY); never printed or written",
            _R,
            secret=True,
            metavar="KEY",
        ),
    ] = None
    backend: Annotated[
        str,
        Opt(
            "--backend",
            "Client for users that do not pin one: openai, vllm, lmdeploy or sagellm "
            "(locustfiles/vllm.py and the like pin theirs)",
            _R,
            metavar="NAME",
        ),
    ] = "openai"
    headers: Annotated[
        dict[str, str],
        Opt(
            "--header",
            "Extra request header 'Name: value'",
            _R,
            web=False,
            kind="append",
            metavar="'NAME: VALUE'",
        ),
    ] = Field(default_factory=dict)

    # -- Workload -------------------------------------------------------------------------
    workload_file: Annotated[
        Path | None,
        Opt(
            "--workload",
            "Workload file (.toml): prompt source, lengths, sessions, shared prefixes (see "
            "configs/workloads/ and docs/workloads.md); the options below override its fields",
            _W,
            shown_default="",
            metavar="FILE",
        ),
    ] = None
    input_tokens: Annotated[
        str,
        Opt(
            "--input-tokens",
            "Synthetic prompts of this many tokens: N, MIN:MAX, normal:MEAN,STD[,MIN:MAX] or "
            "file:PATH (one length per line)",
            _W,
            metavar="LEN",
        ),
    ] = ""
    output_tokens: Annotated[
        str,
        Opt(
            "--output-tokens",
            "Output tokens asked per request, same forms as --input-tokens (or 'dataset'); "
            "default --max-tokens",
            _W,
            metavar="LEN",
        ),
    ] = ""
    dataset: Annotated[
        str,
        Opt(
            "--dataset",
            "Prompts from a ShareGPT .json or a .jsonl file ({prompt} or {messages}, optional "
            "max_tokens)",
            _W,
            metavar="PATH",
        ),
    ] = ""
    tokenizer: Annotated[
        str,
        Opt(
            "--tokenizer",
            "How tokens are counted: prompts, and replies when the server sends no usage: a "
            "model directory or tokenizer.json, 'server' (its /tokenize; prompts only), "
            "'estimate', or 'auto' (the default)",
            _W,
            metavar="SPEC",
        ),
    ] = ""
    seed: Annotated[
        int | None, Opt("--seed", "Seed for prompts, lengths and arrivals", _W, metavar="N")
    ] = None

    # -- Open loop ------------------------------------------------------------------------
    request_rate: Annotated[
        float,
        Opt(
            "--request-rate",
            "Open loop: requests per second across the whole test, whatever the responses "
            "do; each user is one in-flight slot (-u caps requests in flight). 0: closed loop",
            _O,
            metavar="R",
        ),
    ] = 0.0
    arrival: Annotated[
        str,
        Opt(
            "--arrival",
            "Open-loop arrivals: constant, poisson or gamma (see --burstiness)",
            _O,
            choices=ARRIVAL_KINDS,
        ),
    ] = "poisson"
    burstiness: Annotated[
        float,
        Opt(
            "--burstiness",
            "Gamma arrivals' shape: < 1 burstier, > 1 smoother, 1 = Poisson",
            _O,
            metavar="B",
        ),
    ] = 1.0

    trace: Annotated[
        Path | None,
        Opt(
            "--trace",
            "Replay a trace (JSON Lines: Mooncake's timestamp/input_length/output_length/"
            "hash_ids, or timestamp/prompt/max_tokens): each request starts at its "
            "timestamp (ms), open loop; -u caps requests in flight",
            _O,
            shown_default="",
            metavar="FILE",
        ),
    ] = None
    trace_speed: Annotated[
        float,
        Opt(
            "--trace-speed",
            "Replay the trace this many times as fast (2: twice the rate, half the time)",
            _O,
            metavar="X",
        ),
    ] = 1.0

    # -- Objectives and reports -----------------------------------------------------------
    slo: Annotated[
        str,
        Opt(
            "--slo",
            "Objectives checked at the end, e.g. 'ttft_p99<=500ms,error_rate<=1%%'; exit code "
            "3 when one fails (grammar in docs/ci.md)",
            _REP,
            metavar="OBJECTIVES",
        ),
    ] = ""
    slo_early_stop: Annotated[
        bool,
        Opt(
            "--slo-early-stop",
            "Stop the test as soon as an --slo objective can no longer be met, even by a "
            "perfect rest of the run (bounded by --run-time)",
            _REP,
            kind="switch",
        ),
    ] = False
    percentiles: Annotated[
        tuple[float, ...],
        Opt(
            "--llm-percentiles",
            "Percentiles in the summary and reports, comma-separated",
            _REP,
            shown_default="50,90,95,99",
            metavar="LIST",
        ),
    ] = (50.0, 90.0, 95.0, 99.0)
    warmup: Annotated[
        Warmup,
        Opt(
            "--warmup",
            "Leave the start out of the report: a time (30s, 2m) or requests (200req)",
            _REP,
            shown_default="",
            metavar="SPEC",
        ),
    ] = Warmup()
    measure_after_spawn: Annotated[
        bool,
        Opt(
            "--measure-after-spawn",
            "Start measuring when all users are spawned (after --warmup, if given)",
            _REP,
            kind="switch",
        ),
    ] = False
    server_metrics_interval: Annotated[
        float,
        Field(ge=0),
        Opt(
            "--server-metrics-interval",
            "Seconds between scrapes of each host's /metrics (vLLM's names) for the "
            "server-side view; 0 turns scraping off",
            _REP,
            metavar="S",
        ),
    ] = 5.0
    llm_report: Annotated[
        tuple[Path, ...],
        Opt(
            "--llm-report",
            "Write the LLM report to PATH at the end: .json (with vLLM bench serve's field "
            "names), .csv, .md, .html, or .xml (the SLO verdicts as JUnit XML, for CI)",
            _REP,
            web=False,
            kind="append",
            metavar="PATH",
        ),
    ] = ()
    llm_html: Annotated[
        Path | None,
        Opt(
            "--llm-html",
            "Write a self-contained HTML report (charts, distributions, SLOs) to PATH.html at "
            "the end; opens offline",
            _REP,
            web=False,
            shown_default="",
            metavar="PATH",
        ),
    ] = None
    llm_records: Annotated[
        Path | None,
        Opt(
            "--llm-records",
            "Write one JSON line per request to this file (flushed as it goes)",
            _REP,
            web=False,
            shown_default="",
            metavar="PATH",
        ),
    ] = None

    # -- Load shapes (read by the shapes themselves; checked in ignored_options) ----------
    step_users: Annotated[
        str,
        Opt(
            "--step-users",
            "StepLoadShape: users START:STEP:MAX, one step a stage",
            _SH,
            metavar="START:STEP:MAX",
        ),
    ] = ""
    spike_users: Annotated[
        str, Opt("--spike-users", "SpikeLoadShape: BASE:PEAK users", _SH, metavar="BASE:PEAK")
    ] = ""
    spike_at: Annotated[
        str,
        Opt(
            "--spike-at",
            "SpikeLoadShape: when the spike starts (default a stage)",
            _SH,
            metavar="T",
        ),
    ] = ""
    spike_hold: Annotated[
        str,
        Opt(
            "--spike-hold",
            "SpikeLoadShape: how long the spike lasts (default 10s)",
            _SH,
            metavar="T",
        ),
    ] = ""
    sweep: Annotated[
        str,
        Opt(
            "--sweep",
            "SLOSweepShape: load START:STEP:MAX, users (or req/s with --request-rate), judged "
            "against --slo stage by stage",
            _SH,
            metavar="START:STEP:MAX",
        ),
    ] = ""
    stage_time: Annotated[str, Opt("--stage-time", "Shapes: time per stage", _SH, metavar="T")] = (
        "30s"
    )
    sweep_settle: Annotated[
        str,
        Opt(
            "--sweep-settle",
            "SLOSweepShape: the start of each stage left out of its verdict, while the load "
            "settles (default a quarter of --stage-time, at least 3s when distributed)",
            _SH,
            metavar="T",
        ),
    ] = ""

    # -- Connection -----------------------------------------------------------------------
    connect_timeout: Annotated[
        float,
        Field(gt=0),
        Opt("--connect-timeout", "Seconds to open a connection", _C, metavar="S"),
    ] = 10.0
    read_timeout: Annotated[
        float,
        Field(gt=0),
        Opt("--read-timeout", "Seconds of silence before a read fails", _C, metavar="S"),
    ] = 300.0
    request_timeout: Annotated[
        float | None,
        Field(gt=0),
        Opt(
            "--request-timeout",
            "Seconds a whole request may take; 0 means no limit",
            _C,
            shown_default=0.0,
            metavar="S",
        ),
    ] = None
    retries: Annotated[
        int,
        Field(ge=0, le=100),
        Opt(
            "--retries",
            "Send a request again up to N times when it failed before any output: "
            "connection errors, 408, 429 (after its Retry-After), 5xx. Each retry is counted "
            "and shown apart (RETRY rows)",
            _C,
            metavar="N",
        ),
    ] = 0
    retry_max_wait: Annotated[
        float,
        Field(gt=0),
        Opt(
            "--retry-max-wait",
            "Longest wait before one retry, in seconds: a longer Retry-After is cut to it",
            _C,
            metavar="S",
        ),
    ] = 30.0
    max_header_size: Annotated[
        int,
        Field(ge=1),
        Opt(
            "--max-header-size",
            "Largest response head (status line and headers) read before the request fails "
            "(ResponseTooLargeError); bytes or a unit: 65536, 64KiB, 1MiB",
            _C,
            shown_default="64KiB",
            metavar="SIZE",
        ),
    ] = DEFAULT_HEADER_BYTES
    max_error_body: Annotated[
        int,
        Field(ge=0),
        Opt(
            "--max-error-body",
            "How much of an error response's body is read for its excerpt; the rest is not "
            "read and the connection is closed; 0 reads none",
            _C,
            shown_default="64KiB",
            metavar="SIZE",
        ),
    ] = DEFAULT_ERROR_BODY_BYTES
    max_event_size: Annotated[
        int,
        Field(ge=1),
        Opt(
            "--max-event-size",
            "Largest SSE event (or non-streamed answer) before the request fails "
            "(ResponseTooLargeError); bytes or a unit",
            _C,
            shown_default="16MiB",
            metavar="SIZE",
        ),
    ] = DEFAULT_EVENT_BYTES
    ca_bundle: Annotated[
        str,
        Opt(
            "--ca-bundle",
            "Verify https servers against the CA certificates in this PEM file instead of the "
            "system's (a private CA)",
            _C,
            web=False,
            metavar="PATH",
        ),
    ] = ""
    insecure: Annotated[
        bool,
        Opt(
            "--insecure",
            "Do not verify https certificates (a warning says so); only for test servers",
            _C,
            web=False,
            kind="switch",
        ),
    ] = False
    skip_host_check: Annotated[
        bool,
        Opt(
            "--skip-host-check",
            "Start users even when --host refuses a connection at start (by default the run "
            "stops with exit code 1 before any load)",
            _C,
            web=False,
            kind="switch",
        ),
    ] = False

    # -- In-process engines ---------------------------------------------------------------
    vllm_model: Annotated[
        str,
        Opt(
            "--vllm-model",
            "Model directory for in-process vLLM users (VLLMLocalUser): the engine runs in a "
            "child process of each load-generating process, no HTTP",
            _E,
            web=False,
            metavar="PATH",
        ),
    ] = ""
    lmdeploy_model: Annotated[
        str,
        Opt(
            "--lmdeploy-model",
            "Model directory for in-process LMDeploy users (LMDeployLocalUser)",
            _E,
            web=False,
            metavar="PATH",
        ),
    ] = ""
    sagellm_model: Annotated[
        str,
        Opt(
            "--sagellm-model",
            "Model directory for in-process sageLLM users (SageLLMLocalUser; needs isagellm)",
            _E,
            web=False,
            metavar="PATH",
        ),
    ] = ""
    engine_args: Annotated[
        dict[str, Any],
        Opt(
            "--engine-arg",
            "KEY=VALUE for the in-process engine's configuration (vLLM AsyncEngineArgs, "
            "LMDeploy engine config; VALUE as JSON when it parses), e.g. max_model_len=2048",
            _E,
            web=False,
            kind="append",
            metavar="KEY=VALUE",
        ),
    ] = Field(default_factory=dict)
    engine_python: Annotated[
        str,
        Opt(
            "--engine-python",
            "Python interpreter that runs the in-process engine (a venv that has vLLM or "
            "LMDeploy); default: the one running Locust",
            _E,
            web=False,
            metavar="PATH",
        ),
    ] = ""
    engine_log: Annotated[
        str,
        Opt(
            "--engine-log",
            "File for the in-process engine's own output (default: a file in the temp "
            "directory, named in the log)",
            _E,
            web=False,
            metavar="PATH",
        ),
    ] = ""
    engine_start_timeout: Annotated[
        float,
        Field(gt=0),
        Opt(
            "--engine-start-timeout",
            "Seconds the in-process engine may take to load its model",
            _E,
            web=False,
            metavar="S",
        ),
    ] = 600.0

    # -- Embedded mock server -------------------------------------------------------------
    mock_args: Annotated[
        tuple[str, ...],
        Opt(
            "--mock-args",
            "Arguments for the embedded mock server started when no --host is given, e.g. "
            "'--ttft-ms 80 --tbt-ms 15'",
            _M,
            web=False,
            shown_default="",
            metavar="ARGS",
        ),
    ] = ()

    _prompts: tuple[str, ...] = PrivateAttr(default=())
    _workload: WorkloadSpec | None = PrivateAttr(default=None)
    _trace: Trace | None = PrivateAttr(default=None)

    # -- what the rest of the package reads ----------------------------------------------
    @property
    def prompts(self) -> tuple[str, ...]:
        """--prompt-file's prompts, or --prompt."""
        return self._prompts or (self.prompt,)

    @property
    def workload(self) -> WorkloadSpec | None:
        """What the traffic looks like; None sends --prompt (or --prompt-file) as before."""
        return self._workload

    @property
    def trace_requests(self) -> Trace | None:
        """The trace to replay (--trace), read and checked whole before any load."""
        return self._trace

    @property
    def tokenizer_choice(self) -> str:
        """The tokenizer in effect: the workload's (which --tokenizer overrides), else
        --tokenizer alone, which then counts only replies the server sent no usage for."""
        workload = self._workload
        return workload.tokenizer if workload is not None else self.tokenizer

    @property
    def reports(self) -> tuple[Path, ...]:
        """--llm-report paths, then --llm-html's."""
        return self.llm_report + ((self.llm_html,) if self.llm_html else ())

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

    def for_report(self) -> dict[str, Any]:
        """The options as a report shows them: no secrets, no prompt texts."""
        data = self.model_dump(mode="json", exclude={"api_key", "prompt", "headers"})
        data["api_key_set"] = self.api_key is not None
        data["header_names"] = sorted(self.headers)
        data["prompt_count"] = len(self.prompts)
        data["reports"] = [str(path) for path in self.reports]
        data["workload"] = None if self.workload is None else self.workload.model_dump(mode="json")
        data["trace"] = None if self.trace is None else str(self.trace)
        return data

    # -- the ways in ---------------------------------------------------------------------
    @classmethod
    def from_namespace(cls, ns: Any) -> LLMOptions:
        """Validate Locust's parsed options; raise :class:`ConfigError` with one clear line."""
        return cls.checked(values_from_namespace(ns, cls))

    @classmethod
    def checked(cls, values: dict[str, Any]) -> LLMOptions:
        """Validate ``values`` (by field name; command-line text or typed values)."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_first_problem(exc)) from None

    @classmethod
    def from_form(cls, form: Any, ns: Any) -> tuple[LLMOptions, dict[str, Any]]:
        """The options the web UI's start form asks for, over ``ns`` (the launch options):
        the validated options and the ``ns`` attributes to change for them. Nothing is
        changed here, so a refused form leaves the next start as it found it."""
        changes, problems = form_changes(form, cls)
        if problems:
            raise ConfigError(problems[0])
        values = values_from_namespace(ns, cls)
        values.update(changes)
        return cls.checked(values), changes

    def to_namespace(self, ns: Any | None = None) -> Any:
        """These options as Locust's parsed-options attributes (on ``ns`` or a new one), in
        their command-line form: plain values a master can send its workers."""
        ns = argparse.Namespace() if ns is None else ns
        for option in declared(type(self)):
            setattr(ns, option.dest, _command_line_form(option.field, getattr(self, option.field)))
        return ns

    # -- field checks ---------------------------------------------------------------------
    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator(
        "prompt_file", "workload_file", "llm_records", "llm_html", "trace", mode="before"
    )
    @classmethod
    def _optional_path(cls, value: Any) -> Any:
        return None if value is None or str(value).strip() == "" else value

    @field_validator("min_tokens", "temperature", "seed", mode="before")
    @classmethod
    def _optional_number(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("request_timeout", mode="before")
    @classmethod
    def _no_limit(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return None if float(value) == 0 else value
        except (TypeError, ValueError):
            return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _api_key(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return str(value) if value else None

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> str:
        name = str(value or "openai")
        if name not in BACKENDS:
            known = ", ".join(sorted(BACKENDS))
            raise ConfigError(f"--backend: unknown backend {name!r}; choose one of {known}")
        return name

    @field_validator("model", "input_tokens", "output_tokens", "dataset", "tokenizer", "engine_log",
                     "step_users", "spike_users", "spike_at", "spike_hold", "sweep",
                     "sweep_settle", mode="before")  # fmt: skip
    @classmethod
    def _text(cls, value: Any) -> str:
        return "" if value is None else str(value).strip()

    @field_validator("stage_time", mode="before")
    @classmethod
    def _stage_time(cls, value: Any) -> str:
        text = "" if value is None else str(value).strip()
        return text or "30s"

    @field_validator("extra_body", mode="before")
    @classmethod
    def _extra_body(cls, value: Any) -> Any:
        if isinstance(value, str | bytes) or value is None:
            return _parse_extra_body(value)
        return value

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else _parse_headers(value or [])

    @field_validator("engine_args", mode="before")
    @classmethod
    def _engine_args(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else _parse_engine_args(value or [])

    @field_validator("mock_args", mode="before")
    @classmethod
    def _mock_args(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return () if value is None else tuple(str(v) for v in value)
        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            raise ConfigError(
                f"--mock-args: cannot split {value!r} as a shell would ({exc}); balance its quotes"
            ) from None

    @field_validator("max_header_size", "max_error_body", "max_event_size", mode="before")
    @classmethod
    def _size(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, str):
            return value
        flag = "--" + str(info.field_name).replace("_", "-")
        text = value.strip()
        return parse_size(text, flag) if text else _SIZE_DEFAULTS[str(info.field_name)]

    @field_validator("percentiles", mode="before")
    @classmethod
    def _percentiles(cls, value: Any) -> Any:
        if isinstance(value, str) or value is None:
            return _parse_percentiles(value or "")
        return tuple(sorted({float(v) for v in value}))

    @field_validator("percentiles")
    @classmethod
    def _percentile_range(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        for p in value:
            if not 0 < p <= 100:
                raise ConfigError(f"--llm-percentiles: {p:g} is outside 0 < p <= 100")
        return value or (50.0, 90.0, 95.0, 99.0)

    @field_validator("warmup", mode="before")
    @classmethod
    def _warmup(cls, value: Any) -> Any:
        return parse_warmup(value or "") if isinstance(value, str) or value is None else value

    @field_validator("llm_report", mode="before")
    @classmethod
    def _report_list(cls, value: Any) -> Any:
        if value is None:
            return ()
        return (value,) if isinstance(value, str | Path) else tuple(value)

    @field_validator("llm_html")
    @classmethod
    def _html(cls, value: Path | None) -> Path | None:
        if value is not None:
            if value.suffix.lower() != ".html":
                raise ConfigError(f"--llm-html {str(value)!r}: end the name in .html")
            check_report_path(value, "--llm-html")
        return value

    @field_validator("slo", mode="before")
    @classmethod
    def _slo(cls, value: Any) -> str:
        text = "" if value is None else str(value)
        parse_slos(text)  # raises ConfigError naming the bad clause
        return text

    @field_validator("ca_bundle", mode="before")
    @classmethod
    def _ca_bundle(cls, value: Any) -> str:
        return _checked_ca_bundle("" if value is None else str(value))

    @field_validator("vllm_model", "lmdeploy_model", "sagellm_model", mode="before")
    @classmethod
    def _engine_model(cls, value: Any, info: Any) -> str:
        flag = "--" + str(info.field_name).replace("_", "-")
        return _checked_model(flag, "" if value is None else str(value))

    @field_validator("engine_python", mode="before")
    @classmethod
    def _engine_python(cls, value: Any) -> str:
        return _checked_python("" if value is None else str(value))

    @field_validator("arrival", mode="before")
    @classmethod
    def _arrival(cls, value: Any) -> str:
        kind = str(value or "poisson")
        if kind not in ARRIVAL_KINDS:
            kinds = ", ".join(ARRIVAL_KINDS)
            raise ConfigError(f"--arrival: unknown kind {kind!r}; choose one of {kinds}")
        return kind

    @field_validator("burstiness", "request_rate", "trace_speed", mode="before")
    @classmethod
    def _unset_number(cls, value: Any, info: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return 0.0 if info.field_name == "request_rate" else 1.0
        return value

    @field_validator("trace_speed")
    @classmethod
    def _trace_speed(cls, value: float) -> float:
        if not value > 0 or not math.isfinite(value):
            raise ConfigError(
                f"--trace-speed: must be a number > 0 (1: as recorded, 2: twice as fast), "
                f"got {value:g}"
            )
        return value

    @field_validator("request_rate")
    @classmethod
    def _rate(cls, value: float) -> float:
        if value < 0:
            raise ConfigError(f"--request-rate: must be >= 0 (0 = closed loop), got {value:g}")
        return value

    @field_validator("burstiness")
    @classmethod
    def _burstiness(cls, value: float) -> float:
        if value <= 0:
            raise ConfigError(f"--burstiness: must be > 0 (1 = Poisson), got {value:g}")
        return value

    # -- checks across fields -------------------------------------------------------------
    @model_validator(mode="after")
    def _across_fields(self) -> LLMOptions:
        if self.prompt_file is not None:
            self._prompts = _read_prompts(str(self.prompt_file))
        elif not self.prompt.strip():
            raise ConfigError(
                "--prompt: empty; give the text every request sends, or leave --prompt out "
                "for the default"
            )
        if self.min_tokens is not None and self.min_tokens > self.max_tokens:
            raise ConfigError(
                f"--min-tokens {self.min_tokens} is more than --max-tokens {self.max_tokens}; "
                "lower it or raise --max-tokens"
            )
        self._check_arrivals()
        self._workload = self._workload_spec()
        self._check_trace()
        if self.request_rate > 0 and self._workload is not None and self._workload.session:
            raise ConfigError(
                "--request-rate: a multi-turn workload paces itself (think time between "
                "turns); drop --request-rate, or drop [session] from the workload"
            )
        if self.insecure and self.ca_bundle:
            raise ConfigError(
                "--insecure and --ca-bundle contradict each other: --ca-bundle verifies "
                "against your CA, --insecure verifies nothing; keep one"
            )
        if self.slo_early_stop and not self.slo.strip():
            raise ConfigError(
                "--slo-early-stop: there is no objective to watch; add --slo, "
                "e.g. --slo 'ttft_p99<=500ms'"
            )
        return self

    def _check_trace(self) -> None:
        """A trace decides when requests start and what they are: what would contradict it
        is refused, and the file is read whole (a bad line names itself) before any load."""
        if self.trace is None:
            if self.trace_speed != 1.0:
                raise ConfigError(
                    f"--trace-speed {self.trace_speed:g}: there is no trace to replay; add "
                    "--trace FILE, or drop --trace-speed"
                )
            return
        clashes = [
            (self.request_rate > 0, "--request-rate (the trace's timestamps set the rate)"),
            (self.workload_file is not None, "--workload (the trace sets prompts and lengths)"),
            (bool(self.input_tokens), "--input-tokens (the trace sets the prompts' lengths)"),
            (bool(self.output_tokens), "--output-tokens (the trace sets the answers' lengths)"),
            (bool(self.dataset), "--dataset (the trace sets the prompts)"),
        ]
        for clash, what in clashes:
            if clash:
                raise ConfigError(f"--trace replays a trace: drop {what}")
        self._trace = load_trace(self.trace)

    def _check_arrivals(self) -> None:
        # Closed-loop runs have no arrivals: shaping them would be silently ignored.
        if self.request_rate == 0 and self.arrival != "poisson":
            raise ConfigError(
                f"--arrival {self.arrival}: arrivals exist only in an open-loop run; add "
                "--request-rate R (requests per second), or drop --arrival"
            )
        if self.burstiness != 1.0 and self.arrival != "gamma":
            raise ConfigError(
                f"--burstiness {self.burstiness:g}: only gamma arrivals have a burstiness; add "
                "--arrival gamma (and --request-rate R), or drop --burstiness"
            )

    def _workload_spec(self) -> WorkloadSpec | None:
        """The workload the options describe, or None for the plain --prompt traffic."""
        overrides: dict[str, Any] = {
            key: value
            for key in ("input_tokens", "output_tokens", "dataset", "tokenizer")
            if (value := getattr(self, key))
        }
        if self.seed is not None:
            overrides["seed"] = self.seed
        if "dataset" in overrides:
            overrides.setdefault("input_tokens", None)
        elif "input_tokens" in overrides:
            overrides.setdefault("dataset", None)
        path = self.workload_file
        sourced = path is not None or "input_tokens" in overrides or "dataset" in overrides
        if self.prompt_file is not None and sourced:
            raise ConfigError(
                "--prompt-file: choose it or a workload (--workload, --input-tokens, "
                "--dataset), not both"
            )
        if path is not None:
            return load_workload(path, overrides)
        if not overrides.get("input_tokens") and not overrides.get("dataset"):
            # --tokenizer alone counts output tokens when the server sends no usage
            extra = sorted(set(overrides) - {"seed", "tokenizer"})
            if extra:
                flags = ", ".join(f"--{k.replace('_', '-')}" for k in extra)
                raise ConfigError(
                    f"{flags}: needs a prompt source; add --input-tokens N (synthetic "
                    "prompts), --dataset FILE or --workload FILE"
                )
            return None
        if overrides.get("dataset"):
            overrides["dataset"] = Path(overrides["dataset"])
        return validate_workload(overrides, where="options")


_SIZE_DEFAULTS = {
    "max_header_size": DEFAULT_HEADER_BYTES,
    "max_error_body": DEFAULT_ERROR_BODY_BYTES,
    "max_event_size": DEFAULT_EVENT_BYTES,
}
_FLAG_OF = {option.field: option.opt.flag for option in declared(LLMOptions)}


def flag_of(field: str) -> str:
    """The flag of an :class:`LLMOptions` field (``max_tokens`` -> ``--max-tokens``)."""
    return _FLAG_OF[field]


def _command_line_form(field: str, value: Any) -> Any:  # noqa: PLR0911 - one case per type
    """``value`` as the command line gives it (what :meth:`LLMOptions.checked` reads back)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Warmup):
        if value.requests:
            return f"{value.requests}req"
        return f"{value.seconds:g}s" if value.seconds else ""
    if field == "headers":
        return [f"{name}: {text}" for name, text in value.items()]
    if field == "engine_args":
        return [f"{key}={orjson.dumps(arg).decode()}" for key, arg in value.items()]
    if field == "extra_body":
        return orjson.dumps(value).decode() if value else ""
    if field == "percentiles":
        return ",".join(f"{p:g}" for p in value)
    if field == "mock_args":
        return shlex.join(value)
    return [str(item) for item in value]  # --llm-report paths


def add_arguments(parser: Any) -> None:
    """Add sagellm-locust's options (and ``--llm-help``) to Locust's argument parser."""
    register(parser, LLMOptions)
    parser.add_argument(
        LLM_HELP_FLAG,
        action=_LLMHelp,
        include_in_web_ui=False,
        help="List sagellm-locust's options, grouped, with their defaults, and exit",
    )


class _LLMHelp(argparse.Action):
    """``--llm-help``: Locust prints ``--help`` before it loads the locustfile that adds
    these options, so they get their own listing, printed as the command line is parsed."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.pop("default", None)
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        sys.stdout.write(
            "sagellm-locust options (also in a locust.conf file; the web form shows most):\n\n"
            + help_listing(LLMOptions)
        )
        sys.stdout.flush()
        parser.exit(0)


def _first_problem(exc: ValidationError) -> str:
    """One line for the first problem: a check's own message, or the flag and pydantic's."""
    error = exc.errors()[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        return str(cause)
    field = str(error["loc"][0]) if error["loc"] else "options"
    flag = _FLAG_OF.get(field, field)
    return f"{flag}: {error['msg'].lower()}, got {error.get('input')!r}"


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


def _parse_extra_body(text: str | bytes | None) -> dict[str, Any]:
    if not text or not text.strip():
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
