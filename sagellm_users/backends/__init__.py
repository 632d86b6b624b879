"""Backend clients: one per server family, registered by name, no Locust import here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sagellm_users.backends.base import (
    Api,
    BackendClient,
    Chunk,
    Completion,
    GenerationRequest,
    HealthStatus,
    ResponseStream,
    Usage,
)
from sagellm_users.backends.http import Timeouts
from sagellm_users.backends.openai import OpenAIClient
from sagellm_users.errors import ConfigError

__all__ = [
    "BACKENDS",
    "Api",
    "BackendClient",
    "Chunk",
    "Completion",
    "GenerationRequest",
    "HealthStatus",
    "OpenAIClient",
    "ResponseStream",
    "Timeouts",
    "Usage",
    "create_client",
]

BACKENDS: dict[str, Callable[..., BackendClient]] = {"openai": OpenAIClient}
"""Client factories by backend name; later backends register here."""


def create_client(backend: str, base_url: str, **options: Any) -> BackendClient:
    """A client for ``backend`` at ``base_url``, with a clear error for an unknown name."""
    try:
        factory = BACKENDS[backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown backend {backend!r}: choose one of {known}") from None
    return factory(base_url, **options)
