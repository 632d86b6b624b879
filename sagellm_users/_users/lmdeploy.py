"""Users for LMDeploy's ``api_server``: its OpenAI chat route, or its native ``/generate``
(exact token counts in every event)."""

from __future__ import annotations

from sagellm_users._users.base import LLMUser

__all__ = ["LMDeployGenerateUser", "LMDeployUser"]


class LMDeployUser(LLMUser):
    """Streams LMDeploy's ``/v1/chat/completions``."""

    backend = "lmdeploy"
    api = "chat"


class LMDeployGenerateUser(LLMUser):
    """Streams LMDeploy's native ``/generate`` (the prompt as plain text, no template)."""

    backend = "lmdeploy"
    api = "generate"
