"""Where a client connects and how long it waits: base URL parsing and timeouts."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from sagellm_users._errors import ConfigError

__all__ = ["Origin", "Timeouts", "parse_base_url"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``read`` bounds the silence between two reads, ``total`` the whole request."""

    connect: float = 10.0
    read: float = 300.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} timeout must be > 0 seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: scheme, host, port, and the base URL's path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def target(self, path: str) -> str:
        """``path`` (from the server root: ``/v1/...``, ``/health``) under the base URL's
        prefix. A prefix ending in ``/v1`` names the API root, so ``/v1`` is dropped from it:
        ``http://h/v1`` + ``/health`` is ``/health``, as vLLM serves it."""
        prefix = self.prefix
        if prefix.endswith("/v1"):
            prefix = prefix[:-3]
        return prefix + path

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host_header}{self.target(path)}"


def parse_base_url(url: str) -> Origin:
    """Split a base URL into origin and path prefix, with a clear error for bad input."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"host {url!r} is not an http(s) URL: give scheme and host, e.g. http://127.0.0.1:8000"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ConfigError(f"host {url!r} has an invalid port: {exc}") from None
    return Origin(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def tls_context(
    verify: bool | str, context_class: type[ssl.SSLContext] = ssl.SSLContext
) -> ssl.SSLContext:
    """A client TLS context: certificates verified against the system's CAs, or the CA
    bundle ``verify`` names, or not at all when ``verify`` is False. ``context_class`` is
    gevent's for the cooperative client (its sockets must not block the event loop)."""
    context = context_class(ssl.PROTOCOL_TLS_CLIENT)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        context.load_verify_locations(cafile=verify)
    else:
        context.load_default_certs()
    return context
