"""Users for vLLM's OpenAI server: its routes, with vLLM's extras (``--ignore-eos``,
``--min-tokens``, ``--extra-body '{"top_k": 20}'``) and its /metrics in the report."""

from __future__ import annotations

from sagellm_users._users.base import LLMUser

__all__ = ["VLLMCompletionsUser", "VLLMMessagesUser", "VLLMResponsesUser", "VLLMUser"]


class VLLMUser(LLMUser):
    """Streams vLLM's ``/v1/chat/completions``."""

    backend = "vllm"
    api = "chat"


class VLLMCompletionsUser(LLMUser):
    """Streams vLLM's ``/v1/completions``."""

    backend = "vllm"
    api = "completions"


class VLLMResponsesUser(LLMUser):
    """Streams vLLM's OpenAI Responses route (``/v1/responses``): ``--ignore-eos`` is sent,
    ``--min-tokens`` refused (vLLM's ``ResponsesRequest`` has no such field)."""

    backend = "vllm"
    api = "responses"


class VLLMMessagesUser(LLMUser):
    """Streams vLLM's Anthropic Messages route (``/v1/messages``): neither ``--ignore-eos``
    nor ``--min-tokens`` is accepted there, so both are refused before load."""

    backend = "vllm"
    api = "messages"
