"""The backend-neutral types every client speaks: requests, chunks, streams, health.

A backend client knows its wire format and transport and nothing about Locust, so it can be
used and tested alone. It turns a :class:`GenerationRequest` into a :class:`ResponseStream`
that yields :class:`Chunk` objects, each stamped with ``time.perf_counter()`` at the moment
its bytes were read from the socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from time import perf_counter
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from sagellm_users._errors import ConfigError, TotalTimeout
from sagellm_users._redact import scrub_secrets

__all__ = [
    "MESSAGE_APIS",
    "Api",
    "BackendClient",
    "Chunk",
    "Completion",
    "CompletionParts",
    "GenerationRequest",
    "HealthStatus",
    "HttpTimes",
    "ResponseStream",
    "Usage",
    "batch_timeout",
    "check_batch_args",
    "collect_completion",
]

Api = Literal["chat", "completions", "generate", "responses", "messages"]
"""``generate`` is LMDeploy's native ``/generate`` route; other backends refuse it.
``responses`` is OpenAI's Responses API (``/v1/responses``) and ``messages`` Anthropic's
Messages API (``/v1/messages``), both served by vLLM; LMDeploy and sageLLM refuse them."""

MESSAGE_APIS: frozenset[str] = frozenset({"chat", "responses", "messages"})
"""APIs whose request is a conversation (a list of messages), not one prompt."""


@dataclass(slots=True)
class GenerationRequest:
    """One generation to send, independent of the wire format.

    ``messages`` is used by chat APIs, ``prompt`` by completion APIs; a client given the
    other one converts (a prompt becomes one user message). ``extra_body`` is merged into
    the payload last, so it can set or override any field the server understands.
    """

    api: Api = "chat"
    model: str = ""
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    min_tokens: int | None = None
    temperature: float | None = None
    ignore_eos: bool = False
    stream: bool = True
    extra_body: dict[str, Any] = field(default_factory=dict)

    def prompt_text(self) -> str:
        """The prompt as plain text, for estimating input tokens when the server says nothing."""
        if self.prompt is not None:
            return self.prompt
        parts = [m.get("content") for m in self.messages or ()]
        return "\n".join(p for p in parts if isinstance(p, str))


@dataclass(slots=True, frozen=True)
class Usage:
    """Token counts the server reported."""

    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None = None
    """Of ``completion_tokens``, those spent reasoning (OpenAI's
    ``completion_tokens_details.reasoning_tokens``), when the server says."""
    cached_tokens: int | None = None
    """Of ``prompt_tokens``, those read from the server's prefix cache (OpenAI's
    ``prompt_tokens_details.cached_tokens``), when the server says."""


@dataclass(slots=True)
class Chunk:
    """One parsed stream event.

    ``t`` is the ``perf_counter()`` reading taken right after the read that completed this
    event. ``has_output`` is true when the event carries visible output (text, reasoning,
    tool-call deltas or token ids). ``step`` is true when the event is one decode step of
    the request: it carries a choice of this request other than chat's role-only opening
    (OpenAI), or a token (LMDeploy's ``/generate``, the in-process engines), even when its
    text is empty. vLLM sends one event per engine step, and an empty one is a token whose
    text is held back (part of a UTF-8 character, a special token; the first token too)
    or the EOS token that ends the stream, so every step is a token that TTFT (the first
    step), ITL, E2E and TPOT must count (docs/metrics.md). ``n_tokens`` is set
    when the server says how many tokens the event carries. ``reasoning`` marks a step
    whose output is the model's reasoning (vLLM's ``delta.reasoning``, older servers'
    ``reasoning_content``), not its answer. ``response_id`` is the
    server's id of the response (OpenAI's ``id``), to line records up with server logs.
    ``final`` marks the event that ends the answer in APIs that send no ``[DONE]``
    (Responses' ``response.completed``, Messages' ``message_stop``): the stream's reader
    stops there, as it does at ``[DONE]``.
    """

    t: float
    text: str = ""
    has_output: bool = False
    step: bool = False
    reasoning: bool = False
    n_tokens: int | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    response_id: str | None = None
    final: bool = False


@dataclass(slots=True)
class HttpTimes:
    """Where an HTTP request's time went before its answer came, as ``perf_counter()``
    readings (docs/metrics.md, "HTTP phases"): a slow first token is the network, the
    server's queue or its prefill, and these tell which. None where a phase did not happen
    (a pooled connection has no handshake; a request that failed early stops short)."""

    tls_s: float | None = None
    """Of the connection's setup seconds (``connect_s``), the TLS handshake's."""
    t_sent: float | None = None
    """The request's bytes were all written (``t_send`` is just before the first)."""
    t_headers: float | None = None
    """The read that completed the response's status line and headers."""
    t_body: float | None = None
    """The first read that carried body bytes (the same read as the headers', often)."""


@dataclass(slots=True)
class Completion:
    """A whole generation, for callers that do not care about the stream.

    From :meth:`generate_batch` a failed request is a Completion too, with ``error`` and
    ``error_class`` set, no text and ``t_send`` None, so one failure never ends a batch.
    """

    text: str
    usage: Usage | None
    finish_reason: str | None
    t_send: float | None
    t_first_output: float | None
    t_done: float
    chunks: int
    error: str | None = None
    error_class: str | None = None

    @classmethod
    def failed(cls, exc: BaseException) -> Completion:
        """A batch's result for a request that failed with ``exc`` (any exception, not only
        an LLMError), its message scrubbed of secrets."""
        return cls(
            text="",
            usage=None,
            finish_reason=None,
            t_send=None,
            t_first_output=None,
            t_done=perf_counter(),
            chunks=0,
            error=scrub_secrets(str(exc) or repr(exc)),
            error_class=type(exc).__name__,
        )

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft(self) -> float | None:
        """Seconds from send to the first output, when both happened."""
        if self.t_send is None or self.t_first_output is None:
            return None
        return self.t_first_output - self.t_send


@dataclass(slots=True)
class HealthStatus:
    """What a health check found; ``error`` says why when ``healthy`` is false."""

    healthy: bool
    endpoint: str
    models: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    error: str | None = None
    version: str | None = None
    """The server's version, where it tells (vLLM's ``/version``)."""
    pool: dict[str, int | bool] = field(default_factory=dict)
    """The client's connection pool: idle, in_use, opened, max_idle, closed."""


class Closing(Protocol):
    """Owns sockets: ``close()`` releases them, and ``with`` closes on the way out."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ResponseStream(Closing, Protocol):
    """An in-flight request. Creating one does no I/O; iterating sends and reads.

    The timing attributes stay readable after the iteration ends, also when it raised, so a
    failed request is still timed.
    """

    t_send: float | None
    """perf_counter() just before the request bytes were written (after connection setup)."""
    connect_s: float | None
    """Seconds spent opening a new connection, or None when a pooled one was reused."""

    @property
    def times(self) -> HttpTimes | None:
        """The request's HTTP phases; None for in-process engines (no HTTP)."""

    t_done: float | None
    """perf_counter() when the response ended (stream closed or failed)."""
    status: int | None
    """HTTP status, once headers arrived."""

    def __iter__(self) -> Iterator[Chunk]: ...


class BackendClient(Closing, Protocol):
    """What every backend offers; see :class:`sagellm_users._backends.openai.OpenAIClient`."""

    backend: str

    def stream(self, request: GenerationRequest) -> ResponseStream: ...

    def generate(self, request: GenerationRequest) -> Completion: ...

    def generate_batch(
        self,
        requests: Iterable[GenerationRequest],
        *,
        max_concurrent: int = 8,
        timeout: float | None = None,
    ) -> list[Completion]: ...

    def health_check(self) -> HealthStatus: ...

    def list_models(self) -> list[str]: ...

    def endpoint_path(self, api: Api) -> str: ...

    def pool(self) -> dict[str, int | bool]: ...


def collect_completion(stream: ResponseStream) -> Completion:
    """Run ``stream`` to its end and gather it into one :class:`Completion` (then close it):
    what every client's ``generate`` returns, whatever its transport."""
    parts = CompletionParts()
    with stream:
        for chunk in stream:
            parts.add(chunk)
    assert stream.t_done is not None
    return parts.completion(stream.t_send, stream.t_done)


class CompletionParts:
    """A :class:`Completion` gathered chunk by chunk (by either transport)."""

    __slots__ = ("chunks", "finish", "first", "texts", "usage")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.usage: Usage | None = None
        self.finish: str | None = None
        self.first: float | None = None
        self.chunks = 0

    def add(self, chunk: Chunk) -> None:
        if chunk.step or chunk.has_output:
            self.chunks += 1
            self.texts.append(chunk.text)
            if self.first is None:
                self.first = chunk.t
        self.usage = chunk.usage or self.usage
        self.finish = chunk.finish_reason or self.finish

    def completion(self, t_send: float | None, t_done: float) -> Completion:
        text = "".join(self.texts)
        return Completion(text, self.usage, self.finish, t_send, self.first, t_done, self.chunks)


def check_batch_args(max_concurrent: int, timeout: float | None) -> None:
    """The arguments every client's batch runner takes (gevent's and asyncio's)."""
    if max_concurrent < 1:
        raise ConfigError(f"max_concurrent must be >= 1, got {max_concurrent}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {timeout!r}")


def batch_timeout(timeout: float) -> TotalTimeout:
    """The failure of a batch's request that ran past its ``timeout``."""
    return TotalTimeout(f"the request took longer than {timeout:g} s")
