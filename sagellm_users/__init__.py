"""sagellm-locust: Locust-based load testing for LLM inference services.

The flat public API. Names that need Locust (users, ``install``) load on first access, so
``import sagellm_users._backends`` or the mock server never imports Locust and never
triggers gevent's monkey-patching.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sagellm_users._backends import (
    Chunk,
    Completion,
    EngineProcess,
    EngineSpec,
    GenerationRequest,
    HealthStatus,
    LMDeployClient,
    LocalEngineClient,
    OpenAIClient,
    SageLLMClient,
    Timeouts,
    Usage,
    VLLMClient,
    create_client,
)
from sagellm_users._errors import (
    ConfigError,
    ConnectError,
    ConnectTimeout,
    EngineError,
    EngineStartError,
    FeatureUnavailable,
    HTTPStatusError,
    LLMError,
    MalformedEventError,
    MissingDoneError,
    ProtocolError,
    ReadTimeout,
    RequestTimeout,
    ResponseTooLargeError,
    ServerErrorEvent,
    StreamCutError,
    TotalTimeout,
)
from sagellm_users._limits import ReadLimits
from sagellm_users._metrics import RequestRecord

if TYPE_CHECKING:
    from sagellm_users._aio import AsyncClient
    from sagellm_users._api import run_load_test
    from sagellm_users._report import LLMReport
    from sagellm_users._users import (
        AnthropicMessagesUser,
        LLMUser,
        LMDeployGenerateUser,
        LMDeployLocalCompletionsUser,
        LMDeployLocalUser,
        LMDeployUser,
        OpenAIChatUser,
        OpenAICompletionsUser,
        OpenAIResponsesUser,
        SageLLMLocalUser,
        SageLLMUser,
        VLLMCompletionsUser,
        VLLMLocalCompletionsUser,
        VLLMLocalUser,
        VLLMMessagesUser,
        VLLMResponsesUser,
        VLLMUser,
        install,
        runtime_of,
    )
    from sagellm_users._users.compare import compare_users
    from sagellm_users._users.options import LLMOptions

__version__ = "0.1.0"

__all__ = [
    "AnthropicMessagesUser",
    "AsyncClient",
    "Chunk",
    "Completion",
    "ConfigError",
    "ConnectError",
    "ConnectTimeout",
    "EngineError",
    "EngineProcess",
    "EngineSpec",
    "EngineStartError",
    "FeatureUnavailable",
    "GenerationRequest",
    "HTTPStatusError",
    "HealthStatus",
    "LLMError",
    "LLMOptions",
    "LLMReport",
    "LLMUser",
    "LMDeployClient",
    "LMDeployGenerateUser",
    "LMDeployLocalCompletionsUser",
    "LMDeployLocalUser",
    "LMDeployUser",
    "LocalEngineClient",
    "MalformedEventError",
    "MissingDoneError",
    "OpenAIChatUser",
    "OpenAIClient",
    "OpenAICompletionsUser",
    "OpenAIResponsesUser",
    "ProtocolError",
    "ReadLimits",
    "ReadTimeout",
    "RequestRecord",
    "RequestTimeout",
    "ResponseTooLargeError",
    "SageLLMClient",
    "SageLLMLocalUser",
    "SageLLMUser",
    "ServerErrorEvent",
    "StreamCutError",
    "Timeouts",
    "TotalTimeout",
    "Usage",
    "VLLMClient",
    "VLLMCompletionsUser",
    "VLLMLocalCompletionsUser",
    "VLLMLocalUser",
    "VLLMMessagesUser",
    "VLLMResponsesUser",
    "VLLMUser",
    "compare_users",
    "create_client",
    "install",
    "run_load_test",
    "runtime_of",
]

_LAZY = {
    "AnthropicMessagesUser",
    "LLMUser",
    "LMDeployGenerateUser",
    "LMDeployLocalCompletionsUser",
    "LMDeployLocalUser",
    "LMDeployUser",
    "OpenAIChatUser",
    "OpenAICompletionsUser",
    "OpenAIResponsesUser",
    "SageLLMLocalUser",
    "SageLLMUser",
    "VLLMCompletionsUser",
    "VLLMLocalCompletionsUser",
    "VLLMLocalUser",
    "VLLMMessagesUser",
    "VLLMResponsesUser",
    "VLLMUser",
    "install",
    "runtime_of",
}


_LAZY_FROM = {
    "AsyncClient": "sagellm_users._aio",
    "run_load_test": "sagellm_users._api",
    "LLMOptions": "sagellm_users._users.options",
    "LLMReport": "sagellm_users._report",
    "compare_users": "sagellm_users._users.compare",
}
"""Imported on first use: the options and the runner import Locust, a client alone not
(and the asyncio client is not loaded by a program that never asks for it)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY_FROM:
        return getattr(importlib.import_module(_LAZY_FROM[name]), name)
    if name in _LAZY:
        return getattr(importlib.import_module("sagellm_users._users"), name)
    raise AttributeError(f"module 'sagellm_users' has no attribute {name!r}")
