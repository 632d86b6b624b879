"""Command-line flags of ``python -m sagellm_users.mock_server`` (``sagellm-mock-server``).

Flags map one to one onto :class:`MockServerConfig` fields (``--tbt-ms`` -> ``tbt_ms``), so
the command line and the programmatic config cannot drift apart; validation stays in the
config, and its message is reported through ``argparse`` (exit status 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields
from typing import NoReturn

from sagellm_users._errors import ConfigError

from .config import (
    DIALECTS,
    REASONING_FIELDS,
    MockServerConfig,
    parse_spec_decode,
    parse_token_range,
)
from .faults import FAULT_RATE_FIELDS

__all__ = ["build_parser", "check_mock_args", "parse_config"]

_FAULT_HELP = {
    "error_rate_500": "HTTP 500 with vLLM's JSON error body",
    "error_rate_429": "HTTP 429 with Retry-After: --retry-after-s",
    "error_rate_404": "HTTP 404, vLLM's unknown-model body",
    "error_rate_reset": "the connection is reset (RST) once the request arrives; no answer",
    "error_rate_stream": "200 streams that fail about halfway with an in-stream error event",
    "error_rate_malformed": "an event whose JSON is cut short, about halfway",
    "error_rate_non_utf8": "a token whose bytes are not UTF-8, about halfway",
    "error_rate_cut": "the connection closes in the middle of a token's event",
    "error_rate_huge_event": "one token of --huge-event-bytes text (the stream ends well)",
    "error_rate_stall": "the stream stops about halfway and the connection stays open",
    "error_rate_no_done": "the stream ends without data: [DONE]",
    "error_rate_no_usage": "no usage chunk although include_usage asked for one",
    "error_rate_trickle": "the whole body trickles, one byte per --trickle-interval-ms",
    "error_rate_continue_100": "interim 100 Continue and 103 Early Hints before the 200",
    "error_rate_done_no_end": "data: [DONE], then no end of the chunked body; connection held",
    "error_rate_done_pings": "comment pings (: ping) after data: [DONE] until the client leaves",
    "error_rate_gzip": "the body gzip-encoded whatever the request's Accept-Encoding",
    "error_rate_empty_data": "a 'data: ' keep-alive with no payload before every token",
    "error_rate_huge_error": "HTTP 500 whose JSON body is --huge-error-bytes long",
    "error_rate_endless_error": "HTTP 502 whose chunked HTML body never ends",
    "error_rate_huge_header": "HTTP 502 whose head has one header line of --huge-header-bytes",
    "error_rate_502": "HTTP 502, a gateway's body with ids unique to each response",
    "error_rate_echo_401": "HTTP 401 whose body quotes the request's Authorization header",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _spec_decode(text: str) -> tuple[int, float] | None:
    try:
        return parse_spec_decode(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _token_range(text: str) -> tuple[int, int] | None:
    try:
        return parse_token_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _RaisingParser(argparse.ArgumentParser):
    """Reports a bad flag as a ValueError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def build_parser(
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The argument parser; defaults come from :class:`MockServerConfig`."""
    d = MockServerConfig()
    p = parser_class(
        prog="sagellm-mock-server",
        description=(
            "OpenAI-compatible mock LLM server speaking vLLM's streaming wire format. "
            'Prints one JSON line {"event": "ready", "url": ..., "pid": ...} on stdout '
            "once it listens; logs go to stderr."
        ),
    )
    model = p.add_argument_group("model")
    model.add_argument("--model", default=d.model, help="served model name (%(default)s)")
    model.add_argument("--max-model-len", type=int, default=d.max_model_len)
    model.add_argument(
        "--default-max-tokens",
        type=int,
        default=d.default_max_tokens,
        help="output length when a request sets no max_tokens (%(default)s)",
    )
    natural = d.natural_output_tokens
    shown = "off" if natural is None else f"{natural[0]}:{natural[1]}"
    model.add_argument(
        "--natural-output-tokens",
        type=_token_range,
        default=natural,
        metavar="MIN[:MAX]|off",
        help=f"where the fake model emits EOS, counting it, uniform in the range ({shown}); "
        "a request with ignore_eos runs to max_tokens; off: every request does",
    )
    model.add_argument(
        "--held-back-rate",
        type=float,
        default=d.held_back_rate,
        help="share of tokens sent with empty text, as vLLM holds back part of "
        "a multi-byte character (%(default)s)",
    )
    model.add_argument(
        "--reasoning-tokens",
        type=int,
        default=d.reasoning_tokens,
        metavar="N",
        help="a reasoning model: the first N tokens of every chat answer stream as reasoning "
        "deltas and usage counts them in completion_tokens_details.reasoning_tokens, as vLLM "
        "with a --reasoning-parser does (0: none)",
    )
    model.add_argument(
        "--reasoning-field",
        choices=REASONING_FIELDS,
        default=d.reasoning_field,
        help="the delta field reasoning streams in: vLLM's 'reasoning', or "
        "'reasoning_content' as servers before it did (%(default)s)",
    )
    model.add_argument(
        "--prefix-cache-blocks",
        type=int,
        default=d.prefix_cache_blocks,
        metavar="N",
        help="simulate a prefix cache of N blocks of 16 prompt tokens (least recently used "
        "out): a prompt's cached blocks skip --ttft-per-input-token-ms and usage reports "
        "them as prompt_tokens_details.cached_tokens, as vLLM with "
        "--enable-prompt-tokens-details does (0: off)",
    )
    model.add_argument(
        "--spec-decode",
        type=_spec_decode,
        default=d.spec_decode,
        metavar="K:P|off",
        help="speculative decoding: each step proposes K draft tokens, accepted in order with "
        "probability P each until one is rejected, so a streamed chunk carries 1 to K+1 "
        "tokens; vLLM's spec_decode counters in /metrics (off)",
    )
    timing = p.add_argument_group("timing (milliseconds)")
    timing.add_argument("--ttft-ms", type=float, default=d.ttft_ms)
    timing.add_argument("--ttft-jitter-ms", type=float, default=d.ttft_jitter_ms)
    timing.add_argument(
        "--ttft-per-input-token-ms",
        type=float,
        default=d.ttft_per_input_token_ms,
        help="prefill cost added to TTFT per prompt token",
    )
    timing.add_argument("--tbt-ms", type=float, default=d.tbt_ms)
    timing.add_argument("--tbt-jitter-ms", type=float, default=d.tbt_jitter_ms)
    timing.add_argument(
        "--tbt-per-running-ms",
        type=float,
        default=d.tbt_per_running_ms,
        help="each token gap grows by this times the number of running sequences",
    )
    cap = p.add_argument_group("capacity")
    cap.add_argument(
        "--max-concurrency",
        type=int,
        default=d.max_concurrency,
        help="sequences generating at once; excess waits FIFO (0 = unlimited)",
    )
    err = p.add_argument_group(
        "fault injection (probabilities per generation request, seeded; they add up to <= 1)"
    )
    for name in FAULT_RATE_FIELDS:
        err.add_argument(_flag(name), type=float, default=getattr(d, name), help=_FAULT_HELP[name])
    err.add_argument(
        "--retry-after-s", type=int, default=d.retry_after_s, help="Retry-After of a 429"
    )
    err.add_argument(
        "--huge-event-bytes",
        type=int,
        default=d.huge_event_bytes,
        help="text length of a huge_event token (%(default)s)",
    )
    err.add_argument(
        "--huge-error-bytes",
        type=int,
        default=d.huge_error_bytes,
        help="body length of a huge_error 500 (%(default)s)",
    )
    err.add_argument(
        "--huge-header-bytes",
        type=int,
        default=d.huge_header_bytes,
        help="length of a huge_header response's one big header line (%(default)s)",
    )
    err.add_argument(
        "--trickle-interval-ms",
        type=float,
        default=d.trickle_interval_ms,
        help="a trickled body sends one byte per this interval (%(default)s)",
    )
    err.add_argument("--seed", type=int, default=d.seed)
    srv = p.add_argument_group("server")
    srv.add_argument("--host", default=d.host)
    srv.add_argument("--port", type=int, default=d.port, help="0 picks a free port")
    srv.add_argument("--workers", type=int, default=d.workers)
    srv.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1")
    srv.add_argument(
        "--tls-cert", metavar="PEM", default=None, help="serve https with this certificate chain"
    )
    srv.add_argument("--tls-key", metavar="PEM", default=None, help="the certificate's key")
    srv.add_argument(
        "--send-timestamps",
        action="store_true",
        help="add mock_t_request / mock_t_send (time.perf_counter) to every JSON chunk",
    )
    srv.add_argument(
        "--stream-usage-null",
        action="store_true",
        help='stream "usage": null in every chunk and no usage chunk, as LMDeploy servers '
        "before 0.7 did (clients must count output tokens another way)",
    )
    srv.add_argument(
        "--drop-vendor-fields",
        action="store_true",
        help="ignore ignore_eos and min_tokens, as a proxy that forwards only OpenAI's own "
        "fields does: answers end on EOS whatever the client asked",
    )
    srv.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=d.dialect,
        help="answer as vLLM's OpenAI server (the default) or as sageLLM's gateway: no usage "
        "when streaming, no empty chunks, the end in a chunk of its own that always says "
        "'stop', streamed /v1/completions refused, /info with its engines, only its own HTTP "
        "metrics",
    )
    srv.add_argument(
        "--send-log",
        metavar="PATH",
        default=None,
        help="append one JSON line per streamed response: its id, when the request arrived "
        "and when each output event was written (time.perf_counter seconds), to measure a "
        "client's timestamps against the truth",
    )
    srv.add_argument("--log-requests", action="store_true", help="one stderr line per request")
    srv.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin closes (dies with the process that launched it)",
    )
    return p


def check_mock_args(argv: Sequence[str]) -> None:
    """Check mock server flags (a load test's ``--mock-args``) in this process, so a bad
    one stops the run with one line instead of the server's usage text."""
    try:
        ns = build_parser(_RaisingParser).parse_args(list(argv))
        MockServerConfig(**{f.name: getattr(ns, f.name) for f in fields(MockServerConfig)})
    except ValueError as exc:
        raise ConfigError(
            f"--mock-args: {exc}; see python -m sagellm_users.mock_server --help"
        ) from None


def parse_config(argv: Sequence[str] | None = None) -> MockServerConfig:
    """Parse ``argv`` into a validated config; exits with status 2 on bad input."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    kwargs = {f.name: getattr(ns, f.name) for f in fields(MockServerConfig)}
    try:
        return MockServerConfig(**kwargs)
    except ValueError as exc:
        parser.error(str(exc))
