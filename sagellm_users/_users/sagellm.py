"""Users for a sageLLM gateway: OpenAI chat behind a Bearer key, models from ``/info``."""

from __future__ import annotations

from sagellm_users._users.base import LLMUser

__all__ = ["SageLLMUser"]


class SageLLMUser(LLMUser):
    """Streams a sageLLM gateway's ``/v1/chat/completions``."""

    backend = "sagellm"
    api = "chat"
