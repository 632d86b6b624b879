"""The mock server's settings: one frozen object, validated once.

The same object is built by the command line (:mod:`.cli`) and by programs that call
:func:`~sagellm_users.mock_server.serve` directly, so every rule lives here and a bad value
is rejected before a socket is bound, with a message that names both the field and the
command-line flag.
"""

from __future__ import annotations

import math
import os
import ssl
from dataclasses import dataclass, fields

from .faults import FAULT_RATE_FIELDS

__all__ = ["DIALECTS", "MockServerConfig", "parse_token_range"]

DIALECTS = ("vllm", "sagellm-gateway")
"""Whose server the mock answers as: vLLM's OpenAI server (the default), or sageLLM's
gateway (see :mod:`.sagellm_gateway`)."""


REASONING_FIELDS = ("reasoning", "reasoning_content")
"""The delta field of a reasoning token: vLLM's now, and the one servers used before."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_token_range(text: str) -> tuple[int, int] | None:
    """Parse ``MIN[:MAX]`` (for ``--natural-output-tokens``) into an inclusive range, or
    ``off`` into None.

    A single number means a fixed length. Raises ``ValueError`` with a readable message.
    """
    if text.strip().lower() == "off":
        return None
    parts = text.split(":")
    if len(parts) not in (1, 2) or not all(p.strip() for p in parts):
        raise ValueError(f"expected MIN, MIN:MAX or off, got {text!r}")
    try:
        low = int(parts[0])
        high = int(parts[-1])
    except ValueError:
        raise ValueError(f"expected integers in MIN[:MAX], got {text!r}") from None
    if low < 1 or high < low:
        raise ValueError(f"need 1 <= MIN <= MAX, got {text!r}")
    return low, high


def parse_spec_decode(text: str) -> tuple[int, float] | None:
    """Parse ``K:P`` (for ``--spec-decode``: K draft tokens a step, each accepted with
    probability P) or ``off``. Raises ``ValueError`` with a readable message."""
    if text.strip().lower() == "off":
        return None
    k, sep, p = text.partition(":")
    try:
        if not sep:
            raise ValueError
        drafts, acceptance = int(k), float(p)
    except ValueError:
        raise ValueError(f"expected K:P (e.g. 3:0.7) or off, got {text!r}") from None
    if not 1 <= drafts <= 16 or not 0.0 <= acceptance <= 1.0:
        raise ValueError(f"need 1 <= K <= 16 and 0 <= P <= 1, got {text!r}")
    return drafts, acceptance


@dataclass(frozen=True, slots=True)
class MockServerConfig:
    """Everything the mock server simulates, and where it listens.

    Times are in milliseconds. ``natural_output_tokens`` is the inclusive range from which
    the fake model's end-of-sequence position is drawn, counting the EOS token (``None``:
    it never stops early); by default a request that does not ignore EOS stops on it, like
    real chat traffic. ``held_back_rate`` is the share of tokens sent with empty
    text, as vLLM sends a token whose text it holds back.
    ``max_concurrency`` 0 means unlimited. Error rates (``error_rate_<fault>``, see
    :mod:`.faults`) are probabilities in [0, 1] whose sum must not exceed 1. ``port`` 0
    picks a free port; ``workers`` > 1 forks that many processes sharing one listening
    socket. ``tls_cert`` and ``tls_key`` (PEM files) make it serve https.
    """

    model: str = "mock-llm"
    max_model_len: int = 4096
    ttft_ms: float = 50.0
    ttft_jitter_ms: float = 0.0
    ttft_per_input_token_ms: float = 0.0
    tbt_ms: float = 10.0
    tbt_jitter_ms: float = 0.0
    tbt_per_running_ms: float = 0.0
    default_max_tokens: int = 64
    natural_output_tokens: tuple[int, int] | None = (8, 64)
    held_back_rate: float = 0.02
    reasoning_tokens: int = 0
    reasoning_field: str = "reasoning"
    prefix_cache_blocks: int = 0
    spec_decode: tuple[int, float] | None = None
    max_concurrency: int = 0
    error_rate_500: float = 0.0
    error_rate_429: float = 0.0
    error_rate_404: float = 0.0
    error_rate_reset: float = 0.0
    error_rate_stream: float = 0.0
    error_rate_malformed: float = 0.0
    error_rate_non_utf8: float = 0.0
    error_rate_cut: float = 0.0
    error_rate_huge_event: float = 0.0
    error_rate_stall: float = 0.0
    error_rate_no_done: float = 0.0
    error_rate_no_usage: float = 0.0
    error_rate_trickle: float = 0.0
    error_rate_continue_100: float = 0.0
    error_rate_done_no_end: float = 0.0
    error_rate_done_pings: float = 0.0
    error_rate_gzip: float = 0.0
    error_rate_empty_data: float = 0.0
    error_rate_huge_error: float = 0.0
    error_rate_endless_error: float = 0.0
    error_rate_huge_header: float = 0.0
    error_rate_502: float = 0.0
    error_rate_echo_401: float = 0.0
    retry_after_s: int = 1
    huge_event_bytes: int = 10_000_000
    huge_error_bytes: int = 10_000_000
    huge_header_bytes: int = 1_000_000
    trickle_interval_ms: float = 1000.0
    seed: int = 0
    send_timestamps: bool = False
    stream_usage_null: bool = False
    dialect: str = "vllm"
    drop_vendor_fields: bool = False
    send_log: str | None = None
    api_key: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_requests: bool = False
    exit_on_stdin_eof: bool = False

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ValueError("invalid mock server config: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        out: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                out.append(f"{f.name} ({_flag(f.name)}) must be a finite number, got {value}")

        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                out.append(f"{name} ({_flag(name)}) {rule}, got {getattr(self, name)!r}")

        need(bool(self.model.strip()), "model", "must not be empty")
        need(self.dialect in DIALECTS, "dialect", f"must be one of {', '.join(DIALECTS)}")
        need(self.max_model_len >= 1, "max_model_len", "must be >= 1")
        for name in (
            "ttft_ms",
            "ttft_jitter_ms",
            "ttft_per_input_token_ms",
            "tbt_ms",
            "tbt_jitter_ms",
            "tbt_per_running_ms",
        ):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(self.default_max_tokens >= 1, "default_max_tokens", "must be >= 1")
        nat = self.natural_output_tokens
        need(nat is None or 1 <= nat[0] <= nat[1], "natural_output_tokens", "needs 1 <= MIN <= MAX")
        need(0.0 <= self.held_back_rate <= 0.5, "held_back_rate", "must be within [0, 0.5]")
        need(self.reasoning_tokens >= 0, "reasoning_tokens", "must be >= 0 (0 = no reasoning)")
        need(
            self.reasoning_field in REASONING_FIELDS,
            "reasoning_field",
            f"must be one of {', '.join(REASONING_FIELDS)}",
        )
        need(self.prefix_cache_blocks >= 0, "prefix_cache_blocks", "must be >= 0 (0 = off)")
        spec = self.spec_decode
        need(
            spec is None or (1 <= spec[0] <= 16 and 0.0 <= spec[1] <= 1.0),
            "spec_decode",
            "needs 1 <= K <= 16 draft tokens and an acceptance P within [0, 1]",
        )
        need(self.max_concurrency >= 0, "max_concurrency", "must be >= 0 (0 = unlimited)")
        for name in FAULT_RATE_FIELDS:
            need(0.0 <= getattr(self, name) <= 1.0, name, "must be within [0, 1]")
        total = self.error_rate_total
        if total > 1.0 + 1e-9:
            out.append(f"the error rates must add up to at most 1, got {total:g}")
        need(self.retry_after_s >= 0, "retry_after_s", "must be >= 0")
        need(self.huge_event_bytes >= 1, "huge_event_bytes", "must be >= 1")
        need(self.huge_error_bytes >= 1, "huge_error_bytes", "must be >= 1")
        need(self.huge_header_bytes >= 1, "huge_header_bytes", "must be >= 1")
        need(self.trickle_interval_ms > 0, "trickle_interval_ms", "must be > 0")
        need(self.api_key is None or bool(self.api_key), "api_key", "must not be empty")
        need(
            self.send_log is None or os.path.isdir(os.path.dirname(self.send_log) or "."),
            "send_log",
            "must be a file in an existing directory",
        )
        out.extend(self._tls_problems())
        need(bool(self.host), "host", "must not be empty")
        need(0 <= self.port <= 65535, "port", "must be within [0, 65535]")
        need(self.workers >= 1, "workers", "must be >= 1")
        return out

    def _tls_problems(self) -> list[str]:
        if (self.tls_cert is None) != (self.tls_key is None):
            return ["--tls-cert and --tls-key go together: give both (PEM files) or neither"]
        missing = [
            f"{name} ({_flag(name)}) must be an existing PEM file, got {path!r}"
            for name, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key))
            if path is not None and not os.path.isfile(path)
        ]
        if missing:
            return missing
        try:
            self.ssl_context()
        except (ssl.SSLError, OSError) as exc:
            said = exc.args[-1] if exc.args else exc
            return [
                f"--tls-cert {self.tls_cert} and --tls-key {self.tls_key} are not a PEM "
                f"certificate chain and its matching private key (OpenSSL: {said})"
            ]
        return []

    @property
    def https(self) -> bool:
        """Serves https (``tls_cert`` and ``tls_key`` given)."""
        return self.tls_cert is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context when it serves https (``tls_cert`` and ``tls_key``)."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    @property
    def error_rate_total(self) -> float:
        """Probability that a generation request draws any injected fault."""
        return float(sum(getattr(self, name) for name in FAULT_RATE_FIELDS))
