"""Locust User classes and the plugin that wires sagellm-locust into Locust."""

from __future__ import annotations

from sagellm_users._users.anthropic import AnthropicMessagesUser
from sagellm_users._users.base import LLMUser
from sagellm_users._users.lmdeploy import LMDeployGenerateUser, LMDeployUser
from sagellm_users._users.local import (
    LMDeployLocalCompletionsUser,
    LMDeployLocalUser,
    LocalEngineUser,
    SageLLMLocalUser,
    VLLMLocalCompletionsUser,
    VLLMLocalUser,
)
from sagellm_users._users.openai import (
    OpenAIChatUser,
    OpenAICompletionsUser,
    OpenAIResponsesUser,
)
from sagellm_users._users.options import LLMOptions
from sagellm_users._users.plugin import install
from sagellm_users._users.runtime import LLMRuntime, runtime_of
from sagellm_users._users.sagellm import SageLLMUser
from sagellm_users._users.vllm import (
    VLLMCompletionsUser,
    VLLMMessagesUser,
    VLLMResponsesUser,
    VLLMUser,
)

__all__ = [
    "AnthropicMessagesUser",
    "LLMOptions",
    "LLMRuntime",
    "LLMUser",
    "LMDeployGenerateUser",
    "LMDeployLocalCompletionsUser",
    "LMDeployLocalUser",
    "LMDeployUser",
    "LocalEngineUser",
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
]
