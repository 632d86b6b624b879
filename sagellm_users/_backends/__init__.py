"""Backend clients: one per server family, registered by name, no Locust import here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sagellm_users._backends.base import (
    Api,
    BackendClient,
    Chunk,
    Completion,
    GenerationRequest,
    HealthStatus,
    ResponseStream,
    Usage,
)
from sagellm_users._backends.engine_process import EngineInfo, EngineProcess, EngineSpec
from sagellm_users._backends.http import PoolState, Timeouts
from sagellm_users._backends.lmdeploy import LMDeployClient
from sagellm_users._backends.local import LocalEngineClient
from sagellm_users._backends.openai import OpenAIClient
from sagellm_users._backends.sagellm import SageLLMClient
from sagellm_users._backends.vllm import VLLMClient
from sagellm_users._errors import ConfigError

__all__ = [
    "BACKENDS",
    "Api",
    "BackendClient",
    "Chunk",
    "Completion",
    "EngineInfo",
    "EngineProcess",
    "EngineSpec",
    "GenerationRequest",
    "HealthStatus",
    "LMDeployClient",
    "LocalEngineClient",
    "OpenAIClient",
    "PoolState",
    "ResponseStream",
    "SageLLMClient",
    "Timeouts",
    "Usage",
    "VLLMClient",
    "create_client",
]

BACKENDS: dict[str, Callable[..., BackendClient]] = {
    "lmdeploy": LMDeployClient,
    "openai": OpenAIClient,
    "sagellm": SageLLMClient,
    "vllm": VLLMClient,
}
"""Client factories by backend name (``--backend``)."""


def create_client(backend: str, base_url: str, **options: Any) -> BackendClient:
    """A client for ``backend`` at ``base_url``, with a clear error for an unknown name."""
    try:
        factory = BACKENDS[backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown backend {backend!r}: choose one of {known}") from None
    return factory(base_url, **options)
