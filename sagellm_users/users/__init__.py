"""Locust User classes and the plugin that wires sagellm-locust into Locust."""

from __future__ import annotations

from sagellm_users.users.base import LLMUser
from sagellm_users.users.lmdeploy import LMDeployGenerateUser, LMDeployUser
from sagellm_users.users.local import (
    LMDeployLocalCompletionsUser,
    LMDeployLocalUser,
    LocalEngineUser,
    SageLLMLocalUser,
    VLLMLocalCompletionsUser,
    VLLMLocalUser,
)
from sagellm_users.users.openai import OpenAIChatUser, OpenAICompletionsUser
from sagellm_users.users.options import LLMOptions
from sagellm_users.users.plugin import install
from sagellm_users.users.runtime import LLMRuntime, runtime_of
from sagellm_users.users.sagellm import SageLLMUser
from sagellm_users.users.vllm import VLLMCompletionsUser, VLLMUser

__all__ = [
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
    "SageLLMLocalUser",
    "SageLLMUser",
    "VLLMCompletionsUser",
    "VLLMLocalCompletionsUser",
    "VLLMLocalUser",
    "VLLMUser",
    "install",
    "runtime_of",
]
