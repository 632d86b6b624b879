"""Users for any OpenAI-compatible server (vLLM, LMDeploy, sageLLM's gateway, ...), and for
OpenAI's Responses API where the server has it (vLLM, OpenAI)."""

from __future__ import annotations

from sagellm_users._users.base import LLMUser

__all__ = ["OpenAIChatUser", "OpenAICompletionsUser", "OpenAIResponsesUser"]


class OpenAIChatUser(LLMUser):
    """Streams ``/v1/chat/completions``, one request after another, with the client
    ``--backend`` names (default: any OpenAI-compatible server)."""

    api = "chat"


class OpenAICompletionsUser(LLMUser):
    """Streams ``/v1/completions``, one request after another, with the client
    ``--backend`` names."""

    api = "completions"


class OpenAIResponsesUser(LLMUser):
    """Streams OpenAI's Responses API (``/v1/responses``), one request after another, with
    the client ``--backend`` names (``openai`` or ``vllm``: LMDeploy and sageLLM's gateway
    do not serve it). The conversation goes as ``input``, ``--max-tokens`` as
    ``max_output_tokens``; ``--min-tokens`` is refused (the route has no such field)."""

    api = "responses"
