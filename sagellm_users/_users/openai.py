"""Users for any OpenAI-compatible server (vLLM, LMDeploy, sageLLM's gateway, ...)."""

from __future__ import annotations

from sagellm_users._users.base import LLMUser

__all__ = ["OpenAIChatUser", "OpenAICompletionsUser"]


class OpenAIChatUser(LLMUser):
    """Streams ``/v1/chat/completions``, one request after another, with the client
    ``--backend`` names (default: any OpenAI-compatible server)."""

    api = "chat"


class OpenAICompletionsUser(LLMUser):
    """Streams ``/v1/completions``, one request after another, with the client
    ``--backend`` names."""

    api = "completions"
