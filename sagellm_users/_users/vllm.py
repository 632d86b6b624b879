"""Users for vLLM's OpenAI server: its routes, with vLLM's extras (``--ignore-eos``,
``--min-tokens``, ``--extra-body '{"top_k": 20}'``) and its /metrics in the report."""

from __future__ import annotations

from sagellm_users._users.base import LLMUser

__all__ = ["VLLMCompletionsUser", "VLLMUser"]


class VLLMUser(LLMUser):
    """Streams vLLM's ``/v1/chat/completions``."""

    backend = "vllm"
    api = "chat"


class VLLMCompletionsUser(LLMUser):
    """Streams vLLM's ``/v1/completions``."""

    backend = "vllm"
    api = "completions"
