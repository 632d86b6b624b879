"""The one error hierarchy of sagellm-locust.

Every failure a request can meet is one of these classes, so reports can group failures by
class name and a load test never has to catch transport-specific exceptions. Transport errors
are mapped to these in exactly one place (:mod:`sagellm_users._backends.http`).

::

    LLMError
    ├── ConnectError            the server could not be reached (refused, DNS, TLS)
    ├── RequestTimeout
    │   ├── ConnectTimeout      connection setup took longer than the connect timeout
    │   ├── ReadTimeout         no byte arrived for longer than the read timeout
    │   └── TotalTimeout        the whole request took longer than the request timeout
    ├── HTTPStatusError         a non-2xx answer (status, reason, body excerpt, Retry-After)
    ├── ProtocolError           the bytes broke HTTP or the stream format
    │   ├── MalformedEventError an SSE event whose data is not the expected JSON
    │   ├── StreamCutError      the connection closed before the response was complete
    │   ├── MissingDoneError    the stream ended without ``data: [DONE]``
    │   └── ResponseTooLargeError  headers or an SSE event passed a read limit
    ├── ServerErrorEvent        an error object sent inside a 200 stream
    ├── FeatureUnavailable      an optional route the server lacks (/metrics, /tokenize)
    └── EngineError             an in-process engine refused a request or its process ended
        └── EngineStartError    the in-process engine did not start
"""

from __future__ import annotations

from typing import Any

from sagellm_users._redact import scrub_secrets

__all__ = [
    "ConfigError",
    "ConnectError",
    "ConnectTimeout",
    "EngineError",
    "EngineStartError",
    "FeatureUnavailable",
    "HTTPStatusError",
    "LLMError",
    "MalformedEventError",
    "MissingDoneError",
    "ProtocolError",
    "ReadTimeout",
    "RequestTimeout",
    "ResponseTooLargeError",
    "ServerErrorEvent",
    "StreamCutError",
    "TotalTimeout",
    "excerpt",
]

_EXCERPT_CHARS = 200


def excerpt(data: bytes | str, limit: int = _EXCERPT_CHARS) -> str:
    """A short, printable excerpt of a body, so error messages stay one readable line.
    Secrets are scrubbed from the whole text before it is cut (a cut key would survive)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = scrub_secrets(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConfigError(ValueError):
    """An invalid option or configuration value, found before any load is sent."""


class LLMError(Exception):
    """Base class of every request failure; ``str()`` is a one-line, human-readable reason.

    Every text argument is scrubbed of the secrets clients send (see
    :mod:`sagellm_users._redact`) here, where each error is built, so no subclass, client or
    engine can put a server's echo of a key into a record, report, page or log line."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(scrub_secrets(a) if isinstance(a, str) else a for a in args))


class ConnectError(LLMError):
    """The server could not be reached: refused, unresolvable, reset during setup, TLS failure."""


class RequestTimeout(LLMError):
    """A timeout; the subclass says which of the three limits was passed."""


class ConnectTimeout(RequestTimeout):
    """Connection setup (DNS, TCP, TLS) took longer than the connect timeout."""


class ReadTimeout(RequestTimeout):
    """No byte arrived for longer than the read timeout."""


class TotalTimeout(RequestTimeout):
    """The whole request took longer than the request timeout."""


class HTTPStatusError(LLMError):
    """A non-2xx response. Keeps the status, reason and a short body excerpt."""

    def __init__(
        self,
        status: int,
        reason: str,
        body: bytes | str = b"",
        retry_after: float | None = None,
        *,
        body_cut: str | None = None,
    ) -> None:
        self.status = status
        self.reason = reason = scrub_secrets(reason)
        self.body_excerpt = excerpt(body)
        self.retry_after = retry_after
        self.body_cut = body_cut
        """Why the body was not read to its end (it passed the read limit), or None."""
        message = f"HTTP {status} {reason}".rstrip()
        if self.body_excerpt:
            message += f": {self.body_excerpt}"
        if retry_after is not None:
            message += f" (Retry-After {retry_after:g} s)"
        if body_cut is not None:
            message += f" ({body_cut})"
        super().__init__(message)


class ProtocolError(LLMError):
    """The response broke HTTP/1.1 or the streaming format."""


class MalformedEventError(ProtocolError):
    """An SSE event whose data is not the JSON the protocol promises."""


class StreamCutError(ProtocolError):
    """The connection closed before the response was complete."""


class MissingDoneError(ProtocolError):
    """The HTTP response ended cleanly but the stream never sent ``data: [DONE]``."""


class ResponseTooLargeError(ProtocolError):
    """The response's head, or one SSE event, passed its read limit (see
    :mod:`sagellm_users._limits`); the request fails and its connection is closed, so what
    the client holds stays bounded. A class of its own because the fix is the user's (raise
    the option the message names, or find what bloats the server's answers), unlike a
    response that breaks the protocol."""


class ServerErrorEvent(LLMError):
    """An error object inside a 200 stream (vLLM sends ``data: {"error": {...}}``)."""

    def __init__(self, message: str, error_type: str | None = None, code: int | None = None):
        self.error_type = error_type = None if error_type is None else scrub_secrets(error_type)
        self.code = code
        parts = [p for p in (error_type, str(code) if code is not None else None) if p]
        prefix = f"[{' '.join(parts)}] " if parts else ""
        super().__init__(f"error event in stream: {prefix}{excerpt(message)}")


class FeatureUnavailable(LLMError):
    """An optional route is missing or answers in another format: the feature that needs it
    (server metrics, exact-length prompts, model discovery) degrades with a warning."""


class EngineError(LLMError):
    """An in-process engine (``--vllm-model``, ``--lmdeploy-model``) refused a request or its
    process ended; the message carries the engine's own reason or the tail of its log."""


class EngineStartError(EngineError):
    """The in-process engine did not start: before any load, with the reason and its log."""
